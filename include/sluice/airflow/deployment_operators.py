"""Thin operators of the deployment and batch inference DAGs over ``sluice.deployment`` and ``sluice.serving``.

resolve -> infra_validate -> deploy (deferrable on SageMaker) -> smoke_test (rolls back on failure)
-> set_champion. A refused or rolled-back version mails the owners why and what still serves, and fails
the task red without a second, generic failure mail.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from sluice.airflow.callbacks import AlertedFailure
from sluice.airflow.operators import _TrainingOperator, lake_link


def who(context: Context) -> str:
    run = context.get("dag_run")
    user = getattr(run, "triggering_user_name", None) if run is not None else None
    if user:
        return f"airflow:{user}"
    run_type = getattr(run, "run_type", None) or "run"
    return f"airflow:{getattr(run_type, 'value', run_type)}"  # the enum's value (asset_triggered), not its repr


class _DeploymentOperator(_TrainingOperator):
    """``resolve_task``: the task whose XCom is the plan (release, champion, why) every later step acts on."""

    def __init__(self, *, resolve_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolve_task = resolve_task

    @cached_property
    def target(self):
        from sluice.airflow.hooks import DeploymentHook

        return DeploymentHook(self.aws_conn_id).get_target(self.config())

    def plan(self, context: Context) -> dict[str, Any]:
        return self.upstream(context, self.resolve_task)

    def release(self, context: Context):
        from sluice.deployment.targets import Release

        return Release(**self.plan(context)["release"])

    def previous(self, context: Context):
        from sluice.deployment.job import previous_release

        return previous_release(self.registry, self.model, self.plan(context).get("champion"))

    def serving(self) -> str:
        live = self.target.current()
        return f"v{live.version} at {live.address or live.target}" if live and live.version else "nothing"

    def fail_with_alert(self, context: Context, stage: str, reasons: list[str], checks=(), links=None) -> None:
        from sluice.alerts.email import deployment_alert

        cfg, release = self.config(), self.release(context)
        links = {"Airflow task log": context["ti"].log_url, **(links or {})}
        alert = deployment_alert(
            cfg.name,
            release.version,
            stage,
            reasons,
            links,
            serving=self.serving(),
            checks=checks,
            shadow=(self.plan(context).get("shadow") or {}).get("evidence"),
        )
        try:
            self.alert_hook.send(alert, cfg.alerts.emails)
        except Exception as exc:
            raise AirflowFailException(f"{stage} failed (and the alert email failed: {exc}): {reasons}") from exc
        raise AlertedFailure(f"{cfg.name} v{release.version}: {stage} failed; {'; '.join(reasons)}")


class ResolveReleaseOperator(_TrainingOperator):
    """Which version to deploy: Params ``version``, else the new challenger; ``action=rollback``: the earlier
    champion named by ``version``, else the previous one. The choice is logged, returned (XCom) and becomes the
    ledger's reason."""

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from sluice.deployment.job import ShadowRefused, resolve, shadow_check

        params = context["params"]
        cfg = self.config()
        plan = resolve(cfg, self.registry, action=str(params.get("action") or "deploy"), version=params.get("version"))
        try:
            plan = shadow_check(
                cfg,
                self.lake_hook.get_conn(),
                self.registry,
                plan,
                who=who(context),
                dag_id=getattr(context.get("dag"), "dag_id", ""),
                run_id=str(context.get("run_id") or ""),
            )
        except ShadowRefused as exc:
            self._refuse(context, plan, exc)
        if not plan["deploy"]:
            self.log.info("nothing to deploy: %s", plan["why"])
            raise AirflowSkipException(plan["why"])
        self.log.info("chosen: v%s (%s): %s", plan["version"], plan["action"], plan["why"])
        if plan.get("shadow"):
            self.log.info("shadow evidence: %s", plan["shadow"]["reason"])
        return plan

    def _refuse(self, context: Context, plan: dict[str, Any], exc: Any) -> None:
        """The live shadow comparison refused the version: mail why (with the evidence), fail red."""
        from sluice.alerts.email import SHADOW_STAGE, deployment_alert
        from sluice.deployment.shadow import report_key

        cfg = self.config()
        lake = self.lake_hook.get_conn()
        links = {
            "Airflow task log": context["ti"].log_url,
            "Shadow comparison (JSON)": lake_link(lake.uri(report_key(cfg.name, plan["version"]))),
        }
        champion = plan.get("champion")
        serving = f"the champion v{champion}" if champion else "nothing"
        alert = deployment_alert(
            cfg.name, str(plan["version"]), SHADOW_STAGE, [exc.reason], links, serving=serving, shadow=exc.evidence
        )
        try:
            self.alert_hook.send(alert, cfg.alerts.emails)
        except Exception as err:
            raise AirflowFailException(f"{exc} (and the alert email failed: {err})") from err
        raise AlertedFailure(str(exc))


class InfraValidateOperator(_DeploymentOperator):
    """The exact version in a fresh serving process against the budget; a failure is never deployed."""

    ui_color = "#fde9c9"

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.deployment.job import InfraValidationFailed, validate

        try:
            report, uri = validate(self.config(), self.lake_hook.get_conn(), self.registry, self.release(context))
        except InfraValidationFailed as exc:
            key = f"reports/{self.model}/deployments/v{exc.report['version']}/infra_validation.json"
            link = lake_link(self.lake_hook.get_conn().uri(key))
            self.fail_with_alert(
                context,
                "infra validation",
                exc.report["failed"],
                exc.report["checks"],
                {"Infra validation report": link},
            )
        self.log.info("infra validation PASS: latency %s, report %s", report.get("latency_ms"), uri)
        return {"report_uri": uri, "latency_ms": report.get("latency_ms")}


class DeployOperator(_DeploymentOperator):
    """Switch the target to the release (blue/green locally; UpdateEndpoint on SageMaker, waited for by a trigger)."""

    def execute(self, context: Context) -> dict[str, Any] | None:
        from sluice.deployment.targets import DeploymentError

        release = self.release(context)
        if self.target.name == "sagemaker":
            self._start_and_defer(context, release)
        try:
            endpoint = self.target.deploy(release)
        except DeploymentError as exc:
            self.fail_with_alert(context, "deployment", [str(exc)])
        self.log.info("deployed: %s", endpoint)
        return endpoint.to_dict()

    def _start_and_defer(self, context: Context, release) -> None:
        from sluice.airflow.triggers import SageMakerEndpointTrigger
        from sluice.deployment.targets import DeploymentError

        try:
            handle = self.target.start(release)
        except DeploymentError as exc:
            self.fail_with_alert(context, "deployment", [str(exc)])
        sm = self.config().deploy.sagemaker
        trigger = SageMakerEndpointTrigger(
            model=self.model,
            endpoint_name=sm.endpoint_name,
            region=sm.region,
            aws_conn_id=self.aws_conn_id,
            poll_interval=sm.poll_interval_s,
            timeout=sm.wait_timeout_s,
        )
        self.defer(trigger=trigger, method_name="execute_complete", kwargs={"handle": handle})

    def execute_complete(self, context: Context, event: dict[str, Any], handle: dict[str, Any]) -> dict[str, Any]:
        from sluice.deployment.targets import DeploymentError

        self.log.info("endpoint settled: %s", event)
        try:
            endpoint = self.target.finish(handle, event)
        except DeploymentError as exc:
            self.fail_with_alert(context, "deployment", [str(exc)])
        return endpoint.to_dict()


class SmokeTestOperator(_DeploymentOperator):
    """Sampled rows through the live address; on failure the previous champion is redeployed and mail goes out."""

    ui_color = "#fde9c9"

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.deployment.job import SmokeTestFailed, rollback_after_failure, smoke_test

        cfg, release = self.config(), self.release(context)
        smoke = smoke_test(cfg, self.lake_hook.get_conn(), self.target, release)
        self.log.info("smoke test: %s", smoke)
        if smoke["passed"]:
            return smoke
        try:
            rollback_after_failure(cfg, self.target, release, self.previous(context), "; ".join(smoke["problems"]))
        except SmokeTestFailed as exc:
            self.fail_with_alert(context, "smoke test", [*smoke["problems"], str(exc)])
        raise AirflowFailException("unreachable: rollback_after_failure always raises")


class SetChampionOperator(_DeploymentOperator):
    """Move ``champion`` to the deployed version, clear ``challenger``; both moves go to the ledger."""

    def __init__(self, *, infra_validate_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.infra_validate_task = infra_validate_task

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.deployment.job import set_champion

        plan = self.plan(context)
        out = set_champion(
            self.config(),
            self.registry,
            self.release(context),
            why=plan["why"],
            who=who(context),
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            evidence=self.upstream(context, self.infra_validate_task).get("report_uri", ""),
        )
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {"model": self.model, "champion": out["champion"]}
        return out


class BatchScoreOperator(_TrainingOperator):
    """Score ``features/<feature_set>/ds=D`` with the champion into ``predictions/<model>/ds=D`` (atomic)."""

    template_fields = ("ds",)

    def __init__(self, *, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(ds=ds, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        from sluice.registry.artifact import fetch_release, load_model, release_of
        from sluice.registry.mlflow_registry import CHAMPION
        from sluice.serving.batch import score_partition

        cfg = self.config()
        champ = self.registry.by_alias(cfg.name, CHAMPION)
        if champ is None:
            raise AirflowFailException(
                f"{cfg.name} has no '{CHAMPION}' yet, so ds={self.ds} cannot be scored: deploy one with "
                f"{cfg.dag_id('deployment')}, then clear this task"
            )
        release = release_of(self.registry, cfg.name, champ.version)
        model = load_model(fetch_release(release))
        out = score_partition(
            cfg, self.lake_hook.get_conn(), self.ds, model, model_version=release.version, run_id=release.run_id
        )
        self.log.info("scored ds=%s with v%s: %s", self.ds, release.version, out)
        return out


class ShadowScoreOperator(_TrainingOperator):
    """Score ``features/<feature_set>/ds=D`` with each shadowed version (``deploy.shadow``: the waiting challenger,
    with ``always`` also the previous champion) into ``shadow/<model>/v<version>/ds=D`` (atomic, idempotent),
    then refresh each version's live comparison with the labels that have arrived. Skipped when nothing shadows.
    Never touches the predictions the champion served."""

    template_fields = ("ds",)

    def __init__(self, *, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(ds=ds, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from sluice.deployment import shadow
        from sluice.registry.artifact import fetch_release, load_model, release_of

        cfg, lake = self.config(), self.lake_hook.get_conn()
        champion, roles = shadow.roles_now(cfg, self.registry)
        if not roles:
            raise AirflowSkipException(
                f"nothing to shadow-score for {cfg.name} (deploy.shadow: {cfg.deploy.shadow}, champion "
                f"{'v' + champion if champion else 'none'}, no waiting challenger)"
            )
        out: dict[str, Any] = {"champion": champion, "versions": {}, "signal": []}
        for version, role in roles.items():
            release = release_of(self.registry, cfg.name, version)
            model = load_model(fetch_release(release))
            scored = shadow.score_shadow(cfg, lake, self.ds, model, version=version, run_id=release.run_id)
            evidence = shadow.compare(cfg, lake, version, role=role)
            uri = shadow.write_evidence(lake, evidence)
            self.log.info(
                "shadow v%s (%s) ds=%s: %s rows; %s", version, role, self.ds, scored["rows"], evidence["reason"]
            )
            out["versions"][version] = {
                "role": role,
                "rows": scored["rows"],
                "uri": scored["uri"],
                "evidence_uri": uri,
                "verdict": evidence["verdict"],
                "labelled_days": evidence["labelled_days"],
                "reason": evidence["reason"],
            }
            if role == "challenger" and shadow.signal_once(cfg, lake, evidence):
                out["signal"].append(version)
        return out


class ShadowReadyOperator(_TrainingOperator):
    """Emits the shadow Asset (which starts the deployment DAG again) only when ``shadow_task`` found a waiting
    challenger's evidence decisive for the first time (``deploy.require_shadow_days`` labelled days); skipped
    otherwise, so no Asset event is emitted."""

    def __init__(self, *, shadow_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shadow_task = shadow_task

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        found = self.upstream(context, self.shadow_task)
        if not found.get("signal"):
            raise AirflowSkipException("no challenger's shadow evidence became decisive in this interval")
        extra = {"model": self.model, "versions": found["signal"]}
        for asset in self.outlets:
            context["outlet_events"][asset].extra = extra
        return extra
