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
from sluice.airflow.links import DataDocsLink, QuarantineLink, keep_link


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
    operator_extra_links = (DataDocsLink(), QuarantineLink())

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
        keep_link(self, DataDocsLink.name, links["Data Docs"])
        keep_link(self, QuarantineLink.name, links["Quarantine record"])
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


# ------------------------------------------------------------------------------------------ training


class _TrainingOperator(_ModelOperator):
    """Training-side operators: the registry comes from the ``mlflow_default`` connection."""

    template_fields = ()

    def __init__(self, *, mlflow_conn_id: str = "mlflow_default", **kwargs: Any) -> None:
        kwargs.setdefault("ds", "")
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def registry(self):
        from sluice.airflow.hooks import MlflowHook

        return MlflowHook(self.mlflow_conn_id).get_conn()

    @staticmethod
    def upstream(context: Context, task_id: str) -> dict[str, Any]:
        return context["ti"].xcom_pull(task_ids=task_id) or {}


class PlanTrainingOperator(_TrainingOperator):
    """Decides whether this run trains (config rule on new partitions, or forced, or a monitoring reason)."""

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from sluice.training.job import plan_training

        params = context["params"]
        conf = (context["dag_run"].conf or {}) if context.get("dag_run") else {}
        reason = str(conf.get("reason") or params.get("reason") or "")
        end = params.get("end_ds")
        plan = plan_training(
            self.config(),
            self.lake_hook.get_conn(),
            self.registry,
            end_ds=dt.date.fromisoformat(end) if end else None,
            force=bool(params.get("force")),
            reason=reason,
        )
        plan.update(
            window_days=int(params.get("window_days") or self.config().training.window_days),
            note=str(params.get("note") or ""),
            reason=reason,
            report=conf.get("report"),
        )
        self.log.info("plan: %s", plan)
        if not plan["train"]:
            context["ti"].xcom_push(key="why", value=f"not training: {plan['why']}")
            raise AirflowSkipException(f"not training: {plan['why']}")
        return plan


class TrainModelOperator(_TrainingOperator):
    """Snapshot + training-set suite + fit, logged as one MLflow run with lineage tags."""

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.training.job import train

        plan = self.upstream(context, "plan")
        cfg = self.config()
        out = train(
            cfg,
            self.lake_hook.get_conn(),
            self.registry,
            end_ds=dt.date.fromisoformat(plan["end_ds"]),
            window_days=int(plan["window_days"]),
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            note=plan.get("note", ""),
            reason=plan.get("reason", ""),
        )
        self.log.info("MLflow run %s (suite passed: %s)", out["run_id"], out["suite_passed"])
        return out


class EvaluateModelOperator(_TrainingOperator):
    """Candidate vs champion on the same test rows: metrics, slices, paired bootstrap CI."""

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.training.job import evaluate

        return evaluate(self.config(), self.lake_hook.get_conn(), self.registry, self.upstream(context, "train"))


class GateOperator(_TrainingOperator):
    """The promotion gate: PASS lets promotion run; FAIL / INCONCLUSIVE mails why and fails red."""

    ui_color = "#fde9c9"

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.alerts.email import gate_alert
        from sluice.training.job import decide

        cfg = self.config()
        trained, evaluation = self.upstream(context, "train"), self.upstream(context, "evaluate")
        decision = decide(cfg, self.registry, trained, evaluation)
        record = decision.to_dict()
        if decision.decision.value == "PASS":
            return record
        links = {
            "Airflow task log": context["ti"].log_url,
            "MLflow run": f"{self.registry.tracking_uri}/#/experiments/"
            f"{self.registry.experiment_id(cfg.name)}/runs/{trained['run_id']}",
        }
        alert = gate_alert(cfg.name, decision, links, candidate=f"run {trained['run_id'][:8]}")
        try:
            self.alert_hook.send(alert, cfg.alerts.emails)
        except Exception as exc:
            raise AirflowFailException(f"gate {decision.decision.value} (and the alert email failed: {exc})") from exc
        failing = "; ".join(f"{r.rule}: {r.detail}" for r in decision.failing_rules)
        raise AlertedFailure(f"{cfg.name}: gate {decision.decision.value}, champion untouched. {failing}")


class PromoteModelOperator(_TrainingOperator):
    """Register the version and set ``challenger`` (serialized: pool of one slot + a lock); emit the model Asset."""

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.training.job import promote

        cfg = self.config()
        out = promote(
            cfg,
            self.registry,
            self.upstream(context, "train"),
            self.upstream(context, "evaluate"),
            self.upstream(context, "gate"),
            run_type=str(getattr(context.get("dag_run"), "run_type", "")),
        )
        self.log.info("promotion: %s", out)
        if out.get("promoted"):
            for asset in self.outlets:
                context["outlet_events"][asset].extra = {"model": cfg.name, **out}
        return out
