"""Triggers: wait in the triggerer's event loop, holding no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class PartitionReadyTrigger(BaseTrigger):
    """Fires when a lake key exists (a landing ``_SUCCESS`` marker or a partition manifest).

    The blocking existence check (a stat or an S3 HEAD) runs in a thread, so the event loop keeps serving
    every other trigger while it waits.
    """

    def __init__(
        self, key: str, lake_root: str | None = None, aws_conn_id: str = "aws_default", poll_interval: float = 30.0
    ):
        super().__init__()
        self.key = key
        self.lake_root = lake_root
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "key": self.key,
                "lake_root": self.lake_root,
                "aws_conn_id": self.aws_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from sluice.airflow.hooks import LakeHook

        try:
            lake = await asyncio.to_thread(LakeHook(self.lake_root, self.aws_conn_id).get_conn)
            polls = 0
            while not await asyncio.to_thread(lake.storage.exists, self.key):
                polls += 1
                await asyncio.sleep(self.poll_interval)
            yield TriggerEvent({"status": "ready", "key": self.key, "uri": lake.uri(self.key), "polls": polls})
        except Exception as exc:  # report, so the task fails with the reason instead of a silent retry
            yield TriggerEvent({"status": "error", "key": self.key, "message": f"{type(exc).__name__}: {exc}"})


class SageMakerEndpointTrigger(BaseTrigger):
    """Fires when a SageMaker endpoint settles: it leaves Creating, Updating, SystemUpdating and RollingBack.

    DescribeEndpoint runs in a thread with a client from the Airflow AWS connection. The event's ``status``
    is where the endpoint settled (``InService``, ``Failed``, ...), ``timeout`` or ``error``; ``config`` is
    the endpoint config it settled on, which the operator compares with the one it deployed (SageMaker
    often answers a failed update with InService on the previous config and a ``failure_reason``).
    """

    def __init__(
        self,
        model: str,
        endpoint_name: str,
        region: str | None = None,
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 30.0,
        timeout: float = 1800.0,
    ):
        super().__init__()
        self.model = model
        self.endpoint_name = endpoint_name
        self.region = region
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model": self.model,
                "endpoint_name": self.endpoint_name,
                "region": self.region,
                "aws_conn_id": self.aws_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
            },
        )

    def _client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="sagemaker", region_name=self.region).get_conn()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import time

        from sluice.deployment.sagemaker import TRANSITIONAL

        base = {"model": self.model, "endpoint": self.endpoint_name}
        polls = 0
        try:
            client = await asyncio.to_thread(self._client)
            t0 = time.monotonic()
            while True:
                desc = await asyncio.to_thread(client.describe_endpoint, EndpointName=self.endpoint_name)
                polls += 1
                status = desc["EndpointStatus"]
                settled = status not in TRANSITIONAL
                if settled or time.monotonic() - t0 >= self.timeout:
                    yield TriggerEvent(
                        {
                            **base,
                            "status": status if settled else "timeout",
                            "endpoint_status": status,
                            "config": desc.get("EndpointConfigName"),
                            "failure_reason": desc.get("FailureReason"),
                            "polls": polls,
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:  # report, so the task fails with the reason instead of a silent retry
            yield TriggerEvent(
                {
                    **base,
                    "status": "error",
                    "failure_reason": None,
                    "message": f"{type(exc).__name__}: {exc}",
                    "polls": polls,
                }
            )
