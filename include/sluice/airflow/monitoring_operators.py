"""The monitoring DAG's sensors and operators, thin over ``sluice.monitoring.job``.

drift (deferrable: waits in the triggerer for the interval's predictions, which exist only once its
features were scored) -> retrain_on_drift; wait_for_labels (deferrable, N days later) -> performance ->
retrain_on_decay. A retrain triggers ``<model>_training`` with the reason and the report in its conf and
mails the owners; the cooldown and a per-interval record keep a storm of signals to one retraining.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from sluice.airflow.hooks import AlertHook, LakeHook, MlflowHook
from sluice.airflow.links import DriftReportLink, keep_link
from sluice.airflow.operators import _TrainingOperator, lake_link
from sluice.airflow.sensors import PartitionSensor


def _config(model: str):
    from sluice.config import get_model_config

    return get_model_config(model)


class DriftSensor(PartitionSensor):
    """Waits (deferred, no worker slot) for the interval's predictions, then checks drift against the profile of
    the version that scored them; writes the JSON + HTML report to the lake and MLflow; returns the verdict."""

    ui_color = "#e8f0fe"
    operator_extra_links = (DriftReportLink(),)

    def __init__(self, *, model: str, mlflow_conn_id: str = "mlflow_default", **kwargs: Any) -> None:
        kwargs.setdefault("key", f"predictions/{model}/ds={{{{ ds }}}}/_manifest.json")
        super().__init__(**kwargs)
        self.model = model
        self.mlflow_conn_id = mlflow_conn_id

    def ready(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from sluice.monitoring.job import check_drift

        ds = context["ds"]
        lake = LakeHook(self.lake_root, self.aws_conn_id).get_conn()
        links = {"Airflow task log": context["ti"].log_url}
        out = check_drift(_config(self.model), lake, MlflowHook(self.mlflow_conn_id).get_conn(), ds, links=links)
        out["report_link"] = lake_link(out["report_html"])
        keep_link(self, DriftReportLink.name, out["report_link"])
        context["ti"].xcom_push(key="drift", value=out)
        self.log.info("%s; report %s", out["reason"], out["report_link"])
        return out


class PerformanceOperator(_TrainingOperator):
    """Live performance of the interval once its labels arrived, against the serving version's test metric."""

    template_fields = ("ds",)

    def __init__(self, *, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(ds=ds, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.monitoring.job import check_performance

        out = check_performance(self.config(), self.lake_hook.get_conn(), self.registry, self.ds)
        out["report_link"] = lake_link(out["report_json"])
        self.log.info("%s", out["reason"])
        return out


class RetrainOperator(TriggerDagRunOperator):
    """Starts ``<model>_training`` when the upstream signal calls for it (persistence, cooldown, once per
    interval), with the reason and the report in the run conf, and tells the owners; otherwise skips."""

    template_fields = (*TriggerDagRunOperator.template_fields, "ds")
    ui_color = "#fde9c9"

    def __init__(
        self,
        *,
        model: str,
        source: str,
        signal_task: str,
        ds: str = "{{ ds }}",
        lake_root: str | None = None,
        aws_conn_id: str = "aws_default",
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(trigger_dag_id=f"{model}_training", skip_when_already_exists=True, **kwargs)
        self.model = model
        self.source = source
        self.signal_task = signal_task
        self.ds = ds
        self.lake_root = lake_root
        self.aws_conn_id = aws_conn_id
        self.smtp_conn_id = smtp_conn_id

    @cached_property
    def lake(self):
        return LakeHook(self.lake_root, self.aws_conn_id).get_conn()

    def execute(self, context: Context):
        from sluice.alerts.email import retrain_alert
        from sluice.monitoring.job import decide_on_performance, decide_retrain, record_retrain

        cfg = _config(self.model)
        signal = context["ti"].xcom_pull(task_ids=self.signal_task) or {}
        if self.source == "drift":
            decision = decide_retrain(cfg, self.lake, self.ds, signal)
        else:
            decision = decide_on_performance(cfg, self.lake, self.ds, signal)
        prior = decision.get("prior") or {}
        # Deterministic per monitoring run: a retry re-sends the same id (Airflow dedups); a new run of the
        # interval is stopped above by the interval's retrain record.
        run_id = f"{self.source}__{self.ds}__{context['run_id']}"[:250]
        if not decision["retrain"] and prior.get("training_run_id") != run_id:
            context["ti"].xcom_push(key="why", value=decision["reason"])
            raise AirflowSkipException(decision["reason"])
        reason = f"{self.source} on ds={self.ds}: {signal.get('reason', '')}"
        report = signal.get("report_html") or signal.get("report_json") or ""
        if not prior:  # a retry after a failed trigger re-sends the same run id; skip_when_already_exists dedups
            record_retrain(cfg, self.lake, self.ds, source=self.source, reason=reason, report=report, run_id=run_id)
            links = {"Report": lake_link(report), "Airflow task log": context["ti"].log_url}
            AlertHook(self.smtp_conn_id).send(
                retrain_alert(cfg.name, self.source, self.ds, signal, decision, cfg.dag_id("training"), links),
                cfg.alerts.emails,
            )
        # Trained as of the day the signal was known: drift on its interval, decay on the day its labels landed
        # (the window must hold them). A backfilled or late monitoring run retrains on the data of that day,
        # not on whatever was published since, so the run is the same whenever it runs.
        known = str(self.ds) if self.source == "drift" else str(signal.get("label_ds") or self.ds)
        self.conf = {"reason": reason[:480], "report": report, "end_ds": known}
        self.trigger_run_id = run_id
        context["ti"].xcom_push(
            key="return_value", value={"dag_id": self.trigger_dag_id, "run_id": run_id, "conf": self.conf}
        )
        self.log.info("starting %s (%s): %s", self.trigger_dag_id, run_id, reason)
        return super().execute(context)
