"""Thin operators over the plain-Python jobs of the core package.

``__init__`` only assigns; heavy imports (pandas, GX) happen in ``execute`` so DAG files parse fast.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from sluice.airflow.callbacks import AlertedFailure
from sluice.airflow.hooks import AlertHook, LakeHook


def lake_link(uri: str | None) -> str:
    """A clickable address for a lake object: through the Sluice plugin of the Airflow UI when it runs."""
    if not uri:
        return ""
    base = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    root = os.environ.get("SLUICE_LAKE", "").rstrip("/")
    if base and root and uri.startswith(root + "/"):
        return f"{base}/sluice/lake/{uri[len(root) + 1 :]}"
    return uri if "://" in uri else f"file://{uri}"


class _ModelOperator(BaseOperator):
    template_fields = ("ds",)

    def __init__(
        self,
        *,
        model: str,
        ds: str = "{{ ds }}",
        lake_root: str | None = None,
        aws_conn_id: str = "aws_default",
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.ds = ds
        self.lake_root = lake_root
        self.aws_conn_id = aws_conn_id
        self.smtp_conn_id = smtp_conn_id

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(self.lake_root, self.aws_conn_id)

    @cached_property
    def alert_hook(self) -> AlertHook:
        return AlertHook(self.smtp_conn_id)

    def config(self):
        from sluice.config import get_model_config

        return get_model_config(self.model)


class ValidateLandingOperator(_ModelOperator):
    """GX suite on the interval's landing partition; on failure: quarantine, alert email, task fails red."""

    ui_color = "#fde9c9"

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.alerts.email import data_quality_alert
        from sluice.features.job import check_landing

        cfg = self.config()
        ds = dt.date.fromisoformat(self.ds)
        links = {"Airflow task log": context["ti"].log_url}
        result = check_landing(cfg, self.lake_hook.get_conn(), ds, links)
        if result.success:
            self.log.info("ds=%s: %s rows passed suite %s", ds, result.rows, cfg.validation.suite)
            return result.to_dict()
        links["Data Docs"] = lake_link(result.data_docs_uri)
        links["Quarantine record"] = lake_link(result.quarantine_uri)
        context["ti"].xcom_push(key="quarantine", value=result.to_dict())
        message = f"{cfg.dataset.name} ds={ds} quarantined at {result.quarantine_uri}: {result.reason}"
        alert = data_quality_alert(cfg.name, cfg.dataset.name, ds.isoformat(), result.failures, result.rows, links)
        try:
            self.alert_hook.send(alert, cfg.alerts.emails)
        except Exception as exc:
            self.log.exception("the quarantine alert could not be sent")
            raise AirflowFailException(f"{message} (and the alert email failed: {exc})") from exc
        raise AlertedFailure(message)


class PublishFeaturesOperator(_ModelOperator):
    """Transforms from config -> ``features/<feature_set>/ds=D`` (atomic), and the feature-set Asset event."""

    ui_color = "#d5f0dd"

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.features.job import publish_features

        manifest = publish_features(self.config(), self.lake_hook.get_conn(), dt.date.fromisoformat(self.ds))
        extra = {k: manifest[k] for k in ("feature_set", "ds", "rows", "content_sha256", "config_hash", "files")}
        for asset in self.outlets:
            context["outlet_events"][asset].extra = extra
        return extra
