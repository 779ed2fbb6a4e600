"""Deferrable sensors: poke once in the worker, then hand the waiting to a trigger."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowException

from sluice.airflow.hooks import LakeHook
from sluice.airflow.triggers import PartitionReadyTrigger


class PartitionSensor(BaseSensorOperator):
    """Waits for ``<lake>/<key>`` (templated), e.g. ``landing/loans/ds={{ ds }}/_SUCCESS``."""

    template_fields = ("key",)

    def __init__(
        self,
        *,
        key: str,
        lake_root: str | None = None,
        aws_conn_id: str = "aws_default",
        poll_interval: float = 30.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.key = key
        self.lake_root = lake_root
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval

    def poke(self, context: Context) -> bool:
        return LakeHook(self.lake_root, self.aws_conn_id).get_conn().storage.exists(self.key)

    def execute(self, context: Context) -> dict[str, Any] | None:
        lake = LakeHook(self.lake_root, self.aws_conn_id).get_conn()
        if lake.storage.exists(self.key):
            self.log.info("%s is already there", lake.uri(self.key))
            return self.ready(
                context, {"status": "ready", "key": self.key, "uri": lake.uri(self.key), "deferred": False}
            )
        if not self.deferrable:
            return super().execute(context)
        self.log.info(
            "waiting for %s in the triggerer (every %ss, up to %ss)",
            lake.uri(self.key),
            self.poll_interval,
            self.timeout,
        )
        self.defer(
            trigger=PartitionReadyTrigger(self.key, self.lake_root, self.aws_conn_id, self.poll_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") != "ready":
            raise AirflowException(f"waiting for {self.key} failed: {event}")
        return self.ready(context, {**event, "deferred": True})

    def ready(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """What the sensor does once the key is there (subclasses compute on it); returns the XCom value."""
        return event
