"""Thin operators over the plain-Python jobs of the core package.

``__init__`` only assigns; heavy imports (pandas, GX) happen in ``execute`` so DAG files parse fast.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NoReturn

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator, Context, Param
from airflow.sdk.exceptions import AirflowFailException

from sluice.airflow.callbacks import AlertedFailure, AlertNotSent
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


def waiting_shadow(registry: Any, lake_hook: LakeHook, model: str) -> dict[str, Any] | None:
    """The live shadow evidence of the challenger waiting for deployment, for the gate and approval mails (a new
    candidate would replace it); None when none waits, it has no evidence yet, or a store cannot say."""
    from sluice.deployment.shadow import read_evidence
    from sluice.registry.mlflow_registry import CHALLENGER

    try:
        waiting = registry.by_alias(model, CHALLENGER)
        return read_evidence(lake_hook.get_conn(), model, waiting.version) if waiting is not None else None
    except Exception:  # the mail goes out without it rather than not at all
        return None


class _ModelOperator(BaseOperator):
    template_fields: Sequence[str] = ("ds",)

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

    def alert_and_fail(self, alert: Any, recipients: Sequence[str], failure: str) -> NoReturn:
        """Mail ``alert`` and fail red without retry (:class:`AlertedFailure`); when the mail cannot be sent, fail
        retryably (:class:`AlertNotSent`) so that the retry sends it: a failed gate never ends without its alert."""
        try:
            self.alert_hook.send(alert, recipients)
        except Exception as exc:
            self.log.exception("the alert mail could not be sent; the task fails retryably so a retry sends it")
            raise AlertNotSent(f"{failure} (the alert email failed: {exc}; a retry sends it)") from exc
        raise AlertedFailure(failure)


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
        self.alert_and_fail(alert, cfg.alerts.emails, message)


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

    template_fields: Sequence[str] = ()

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

    def __init__(self, *, plan_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task = plan_task

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.training.job import train

        plan = self.upstream(context, self.plan_task)
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

    def __init__(self, *, train_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_task = train_task

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.training.job import evaluate

        trained = self.upstream(context, self.train_task)
        return evaluate(self.config(), self.lake_hook.get_conn(), self.registry, trained)


def mlflow_links(registry, model: str, run_id: str) -> dict[str, str]:
    """The MLflow run of a candidate and its gate report, as UI addresses."""
    run = f"{registry.tracking_uri}/#/experiments/{registry.experiment_id(model)}/runs/{run_id}"
    return {"MLflow run": run, "Gate report": f"{run}/artifacts/gate_report.html"}


class GateOperator(_TrainingOperator):
    """The promotion gate: PASS lets promotion run; INCONCLUSIVE goes to a person (``approve``) unless approval is
    disabled; FAIL (or INCONCLUSIVE without approval) mails why and fails red, champion untouched."""

    ui_color = "#fde9c9"

    def __init__(self, *, train_task: str, evaluate_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_task = train_task
        self.evaluate_task = evaluate_task

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.alerts.email import gate_alert
        from sluice.training.job import decide

        cfg = self.config()
        trained, evaluation = self.upstream(context, self.train_task), self.upstream(context, self.evaluate_task)
        decision = decide(cfg, self.registry, trained, evaluation)
        record = decision.to_dict()
        value = decision.decision.value
        if value == "PASS":
            return record
        if value == "INCONCLUSIVE" and cfg.gate.approval.enabled:
            self.log.info(
                "gate INCONCLUSIVE: the approval task waits for a person (%s h)", cfg.gate.approval.timeout_hours
            )
            return record
        links = {"Airflow task log": context["ti"].log_url, **mlflow_links(self.registry, cfg.name, trained["run_id"])}
        alert = gate_alert(
            cfg.name,
            decision,
            links,
            candidate=f"run {trained['run_id'][:8]}",
            champion=self.serving_champion(cfg),
            shadow=waiting_shadow(self.registry, self.lake_hook, cfg.name),
        )
        failing = "; ".join(f"{r.rule}: {r.detail}" for r in decision.failing_rules)
        self.alert_and_fail(alert, cfg.alerts.emails, f"{cfg.name}: gate {value}, champion untouched. {failing}")

    def serving_champion(self, cfg: Any) -> str | None:
        """The version the registry's ``champion`` alias names now (the mail says who keeps serving); None when
        there is none, or when the registry cannot say (the mail then names no champion rather than fail)."""
        from sluice.registry.mlflow_registry import CHAMPION

        try:
            current = self.registry.by_alias(cfg.name, CHAMPION)
        except Exception:
            self.log.exception("could not read the champion of %s for the gate mail", cfg.name)
            return None
        return None if current is None else str(current.version)


class ApprovePromotionOperator(ApprovalOperator):
    """Human in the loop for an INCONCLUSIVE gate (Airflow's HITL approval: Browse > Required Actions).

    PASS: returns at once, nothing to approve. INCONCLUSIVE: mails the owners the evidence and the address of
    the form, then waits (task state ``awaiting_input``; no worker slot) for Approve / Reject with a "why";
    no answer within ``gate.approval.timeout_hours`` is Reject. Reject skips ``promote``. The answer (who, why)
    goes on the MLflow run, to the ledger and to the owners.
    """

    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        model: str,
        timeout_hours: float,
        train_task: str,
        evaluate_task: str,
        gate_task: str,
        mlflow_conn_id: str = "mlflow_default",
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("params", None)  # the DAG's params (apply_defaults passes them): not fields of this form
        super().__init__(
            subject=f"Promote the {model} candidate? The gate was INCONCLUSIVE",
            defaults=ApprovalOperator.REJECT,
            response_timeout=dt.timedelta(hours=timeout_hours),
            params={
                "why": Param(
                    None,
                    type=["null", "string"],
                    title="Why",
                    description="your reason; it is kept in the alias ledger with your name",
                )
            },
            **kwargs,
        )
        self.model = model
        self.timeout_hours = timeout_hours
        self.train_task = train_task
        self.evaluate_task = evaluate_task
        self.gate_task = gate_task
        self.mlflow_conn_id = mlflow_conn_id
        self.smtp_conn_id = smtp_conn_id

    @cached_property
    def registry(self):
        from sluice.airflow.hooks import MlflowHook

        return MlflowHook(self.mlflow_conn_id).get_conn()

    def _evidence(self, context: Context):
        from sluice.config import get_model_config
        from sluice.evaluation.gate import GateDecision

        ti = context["ti"]
        cfg = get_model_config(self.model)
        trained = ti.xcom_pull(task_ids=self.train_task) or {}
        evaluation = ti.xcom_pull(task_ids=self.evaluate_task) or {}
        champ = (evaluation.get("champion") or {}).get("version")
        links = {
            "Airflow task log": ti.log_url,
            **mlflow_links(self.registry, cfg.name, trained.get("run_id", "")),
        }
        return cfg, trained, GateDecision.from_dict(ti.xcom_pull(task_ids=self.gate_task) or {}), champ, links

    def execute(self, context: Context) -> Any:
        from sluice.alerts.email import approval_requested_alert
        from sluice.evaluation.report import render_markdown

        gate = context["ti"].xcom_pull(task_ids=self.gate_task) or {}
        if gate.get("decision") == "PASS":
            self.log.info("gate PASS: promotion needs no approval")
            return {"decision": "PASS", "approved": True, "outcome": "passed", "by": "gate", "why": "gate PASS"}
        if gate.get("decision") != "INCONCLUSIVE":
            raise AirflowFailException(f"gate decision {gate.get('decision')!r}: only PASS or INCONCLUSIVE reach here")
        cfg, trained, decision, champ, links = self._evidence(context)
        candidate = f"run {trained['run_id'][:8]}"
        self.body = render_markdown(
            decision, model=cfg.name, candidate_label=candidate, champion_label=f"v{champ}", links=links
        ) + (
            "\nApprove: the candidate becomes the challenger and the deployment DAG deploys it. "
            f"Reject: nothing moves. No answer within {self.timeout_hours:g} h counts as Reject.\n"
        )
        url = required_action_url(context)
        deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=self.timeout_hours)).isoformat(timespec="minutes")
        alert = approval_requested_alert(
            cfg.name,
            decision,
            candidate=candidate,
            approve_url=url,
            links=links,
            deadline=deadline,
            shadow=waiting_shadow(self.registry, LakeHook(), cfg.name),
        )
        AlertHook(self.smtp_conn_id).send(alert, cfg.alerts.emails)
        self.registry.client.set_tag(trained["run_id"], "approval.requested", url)
        self.log.info("gate INCONCLUSIVE: waiting for Approve/Reject at %s until %s", url, deadline)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from sluice.alerts.email import approval_decided_alert
        from sluice.training.job import record_approval

        if "error" in event:
            return super().execute_complete(context=context, event=event)  # raises: no answer, no defaults
        # Recorded before the base class acts: on Reject it skips promote by raising, so nothing after it runs.
        answer = event
        self.validate_chosen_options(answer["chosen_options"])
        user = answer.get("responded_by_user") or {}
        approved = answer["chosen_options"] == [self.APPROVE]
        timed_out = bool(event.get("timedout")) or not user
        why = str((answer.get("params_input") or {}).get("why") or "").strip()
        if timed_out:
            why = why or f"no answer within {self.timeout_hours:g} h: rejected by default"
        record = {
            "decision": "INCONCLUSIVE",
            "approved": approved,
            "outcome": "approved" if approved else ("timed out" if timed_out else "rejected"),
            "by": f"airflow:{user.get('name') or user.get('id')}" if user else "airflow:timeout",
            "why": why,
            "responded_at": str(answer.get("responded_at") or ""),
        }
        cfg, trained, _, _, links = self._evidence(context)
        record_approval(cfg, self.registry, trained, record, dag_id=context["dag"].dag_id, run_id=context["run_id"])
        self.log.info("approval: %s", record)
        alert = approval_decided_alert(cfg.name, f"run {trained['run_id'][:8]}", record, links)
        try:
            AlertHook(self.smtp_conn_id).send(alert, cfg.alerts.emails)
        except Exception:  # the decision is recorded; a broken relay must not undo it
            self.log.exception("the approval-decided mail could not be sent")
        context["ti"].xcom_push(key="approval", value=record)
        super().execute_complete(context=context, event=event)  # Reject: skips promote (and ends the task here)
        return record


def required_action_url(context: Context) -> str:
    """The Airflow UI page where this task's approval form is (the task's Required Actions tab)."""
    from urllib.parse import quote

    ti = context["ti"]
    base = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    run = quote(ti.run_id, safe="")
    return f"{base}/dags/{ti.dag_id}/runs/{run}/tasks/{ti.task_id}/required_actions"


class PromoteModelOperator(_TrainingOperator):
    """Register the version and set ``challenger`` (serialized: pool of one slot + a lock); emit the model Asset.
    A run not promoted (superseded by a rival on the same snapshot, or a backfill) is skipped with the reason:
    no Asset event, so no deployment."""

    def __init__(
        self, *, train_task: str, evaluate_task: str, gate_task: str, approve_task: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.train_task = train_task
        self.evaluate_task = evaluate_task
        self.gate_task = gate_task
        self.approve_task = approve_task

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.training.job import promote

        cfg = self.config()
        out = promote(
            cfg,
            self.registry,
            self.upstream(context, self.train_task),
            self.upstream(context, self.evaluate_task),
            self.upstream(context, self.gate_task),
            run_type=str(getattr(context.get("dag_run"), "run_type", "")),
            approval=self.upstream(context, self.approve_task),
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
        )
        self.log.info("promotion: %s", out)
        if not out.get("promoted"):
            # a successful task emits its outlets' Asset events whatever it did: a run that was superseded (a
            # rival on the same snapshot won) or a backfill skips, so only the alias move starts a deployment
            from airflow.sdk.exceptions import AirflowSkipException

            context["ti"].xcom_push(key="return_value", value=out)
            raise AirflowSkipException(f"not promoted: {out.get('why')}")
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {"model": cfg.name, **out}
        return out
