"""The operators' glue, run with a fake task context: which XCom they read and push (under which task ids and
keys), the extra-link URLs they keep, and their skip and fail paths. No Airflow database, scheduler or MLflow:
what the core does is replaced where it would need one (the core has its own tests), and the lake is a real
folder, so the monitoring operators run the real retrain policy and write the real records.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from sluice.airflow.callbacks import AlertedFailure, AlertNotSent
from sluice.airflow.hooks import AlertHook
from sluice.airflow.links import DriftReportLink
from sluice.evaluation.gate import NO_CHAMPION_NOTE, Decision, GateDecision, RuleResult, Verdict

DS = "2025-01-24"
BASE = "http://airflow.test"


class FakeTI:
    """A task instance as operators see it: XComs by (task id, key), what they push, the log URL."""

    def __init__(self, xcoms: dict[tuple[str, str], Any] | None = None, task_id: str = "task") -> None:
        self.xcoms = dict(xcoms or {})
        self.pushed: dict[str, Any] = {}
        self.log_url = f"{BASE}/log?task={task_id}"
        self.task_id, self.dag_id, self.run_id = task_id, "loans_monitoring", f"scheduled__{DS}T00:00:00+00:00"

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids or "", key))

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # an XCom must be JSON
        self.pushed[key] = value


def context(ti: FakeTI, **extra: Any) -> dict[str, Any]:
    return {"ti": ti, "ds": DS, "run_id": ti.run_id, "params": {}, **extra}


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("SLUICE_LAKE", str(root))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    return root


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list[str]]]:
    """The alerts operators send, instead of an SMTP relay."""
    sent: list[tuple[Any, list[str]]] = []
    monkeypatch.setattr(AlertHook, "send", lambda self, alert, to: sent.append((alert, list(to))))
    return sent


@pytest.fixture
def triggered(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The DAG runs a RetrainOperator would trigger (Airflow's own trigger is not under test)."""
    runs: list[dict[str, Any]] = []

    def record(self: TriggerDagRunOperator, context: Any) -> None:
        runs.append({"dag_id": self.trigger_dag_id, "run_id": self.trigger_run_id, "conf": dict(self.conf or {})})

    monkeypatch.setattr(TriggerDagRunOperator, "execute", record)
    return runs


# --------------------------------------------------------------------------------------------- monitoring


def drift_signal(lake_dir: Path, *, drift: bool = True) -> dict[str, Any]:
    """The XCom of the drift sensor (``check_drift``'s summary plus the link), for one interval."""
    prefix = f"{lake_dir}/reports/loans/drift/ds={DS}"
    return {
        "ds": DS,
        "drift": drift,
        "reason": "drift: credit_score: mean shifted +0.52 sd" if drift else "no drift",
        "reasons": ["credit_score: mean shifted +0.52 sd"] if drift else [],
        "drifted_features": ["credit_score"] if drift else [],
        "model_version": "3",
        "rows": 1200,
        "report_json": f"{prefix}/drift.json",
        "report_html": f"{prefix}/drift.html",
    }


def test_drift_sensor_pushes_the_verdict_and_keeps_the_report_link(lake_dir: Path, monkeypatch) -> None:
    from sluice.airflow import monitoring_operators as mo
    from sluice.monitoring import job

    calls: list[tuple[str, Any]] = []

    def check_drift(cfg: Any, lake: Any, registry: Any, ds: str, *, links: Any) -> dict[str, Any]:
        calls.append((ds, dict(links)))
        return drift_signal(lake_dir)

    monkeypatch.setattr(job, "check_drift", check_drift)
    monkeypatch.setattr(mo.MlflowHook, "get_conn", lambda self: "registry")
    sensor = mo.DriftSensor(task_id="drift", model="loans", lake_root=str(lake_dir))
    assert sensor.key == "predictions/loans/ds={{ ds }}/_manifest.json", "waits for the interval's predictions"
    ti = FakeTI(task_id="drift")
    out = sensor.ready(context(ti), {})
    link = f"{BASE}/sluice/lake/reports/loans/drift/ds={DS}/drift.html"
    assert calls == [(DS, {"Airflow task log": ti.log_url})]
    assert out["report_link"] == link and ti.pushed["drift"] == out
    assert DriftReportLink().get_link(sensor, ti_key=None) == link


def test_performance_operator_returns_the_check_with_a_link_to_its_report(lake_dir: Path, monkeypatch) -> None:
    from sluice.airflow import monitoring_operators as mo
    from sluice.monitoring import job

    report = f"{lake_dir}/reports/loans/performance/ds={DS}/performance.json"
    seen: list[str] = []

    def check_performance(cfg: Any, lake: Any, registry: Any, ds: str) -> dict[str, Any]:
        seen.append(ds)
        return {"decay": False, "status": "ok", "reason": "ok", "report_json": report}

    monkeypatch.setattr(job, "check_performance", check_performance)
    op = mo.PerformanceOperator(task_id="performance", model="loans", lake_root=str(lake_dir), ds=DS)
    op.registry = "registry"
    out = op.execute(context(FakeTI(task_id="performance")))
    assert (
        seen == [DS] and out["report_link"] == f"{BASE}/sluice/lake/reports/loans/performance/ds={DS}/performance.json"
    )


def retrain_op(lake_dir: Path, source: str = "drift") -> Any:
    from sluice.airflow.monitoring_operators import RetrainOperator

    return RetrainOperator(
        task_id=f"retrain_on_{source}", model="loans", source=source, signal_task=source, ds=DS, lake_root=str(lake_dir)
    )


def test_retrain_on_drift_triggers_training_once_with_reason_report_and_mail(lake_dir, outbox, triggered) -> None:
    signal = drift_signal(lake_dir)
    ti = FakeTI({("drift", "return_value"): signal}, task_id="retrain_on_drift")
    retrain_op(lake_dir).execute(context(ti))

    (run,) = triggered
    assert run["dag_id"] == "loans_training" and run["run_id"] == f"drift__{DS}__{ti.run_id}"
    assert run["conf"] == {
        "reason": f"drift on ds={DS}: {signal['reason']}",
        "report": signal["report_html"],
        "end_ds": DS,
    }
    assert ti.pushed["return_value"] == {"dag_id": "loans_training", "run_id": run["run_id"], "conf": run["conf"]}
    record = json.loads((lake_dir / f"reports/loans/retrain/ds={DS}/retrain.json").read_text())
    assert record["training_run_id"] == run["run_id"] and record["source"] == "drift"
    ((alert, to),) = outbox
    assert to == ["risk-ml-oncall@example.com"] and "retraining started" in alert.subject
    assert f"{BASE}/sluice/lake/reports/loans/drift/ds={DS}/drift.html" in alert.text

    # a retry of the same monitoring run re-sends the same run id (Airflow dedups it), with no second mail
    retrain_op(lake_dir).execute(context(ti))
    assert [r["run_id"] for r in triggered] == [run["run_id"]] * 2 and len(outbox) == 1

    # another run of the same interval starts nothing: skipped, and why is an XCom
    other = FakeTI({("drift", "return_value"): signal}, task_id="retrain_on_drift")
    other.run_id = f"manual__{DS}"
    with pytest.raises(AirflowSkipException, match="already started for this interval"):
        retrain_op(lake_dir).execute(context(other))
    assert "already started" in other.pushed["why"] and len(triggered) == 2 and len(outbox) == 1


def test_retrain_skips_a_quiet_interval_and_says_why(lake_dir, outbox, triggered) -> None:
    ti = FakeTI({("drift", "return_value"): drift_signal(lake_dir, drift=False)}, task_id="retrain_on_drift")
    with pytest.raises(AirflowSkipException) as skipped:
        retrain_op(lake_dir).execute(context(ti))
    assert ti.pushed["why"] == str(skipped.value) and triggered == [] and outbox == []
    assert not (lake_dir / f"reports/loans/retrain/ds={DS}").exists()


def test_retrain_on_decay_trains_as_of_the_day_the_labels_landed(lake_dir, outbox, triggered) -> None:
    label_ds = (dt.date.fromisoformat(DS) + dt.timedelta(days=7)).isoformat()
    perf = {
        "decay": True,
        "status": "decay",
        "reason": "decay: roc_auc dropped from 0.8100 to 0.7000",
        "ds": DS,
        "model_version": "3",
        "label_ds": label_ds,
        "report_json": f"{lake_dir}/reports/loans/performance/ds={DS}/performance.json",
    }
    ti = FakeTI({("performance", "return_value"): perf}, task_id="retrain_on_decay")
    retrain_op(lake_dir, "performance").execute(context(ti))
    (run,) = triggered
    assert run["conf"]["end_ds"] == label_ds and run["conf"]["report"] == perf["report_json"]
    assert run["run_id"].startswith(f"performance__{DS}__") and len(outbox) == 1


# --------------------------------------------------------------------------------------------- training


class FakeRegistry:
    """What the gate operator asks the registry: the champion alias, the experiment (for the MLflow links)."""

    tracking_uri = "http://mlflow.test"

    def __init__(self, champion: str | None) -> None:
        self.champion = champion

    def by_alias(self, model: str, alias: str) -> Any:
        return SimpleNamespace(version=self.champion) if self.champion and alias == "champion" else None

    def experiment_id(self, model: str) -> str:
        return "7"


def suite_failed() -> GateDecision:
    """The gate when the training-set suite failed: evaluation was skipped, so no champion metrics."""
    return GateDecision(
        decision=Decision.FAIL,
        rules=(
            RuleResult("thresholds_configured", Verdict.PASS, None, None, "configured: floor:roc_auc"),
            RuleResult("training_suite", Verdict.FAIL, False, None, "the training-set validation suite failed"),
            RuleResult("non_inferiority", Verdict.SKIPPED, None, 0.01, NO_CHAMPION_NOTE),
        ),
        has_champion=False,
        notes=(NO_CHAMPION_NOTE,),
        primary_metric="roc_auc",
        candidate_metrics={},
        champion_metrics=None,
        bootstrap=None,
    )


@pytest.mark.parametrize("champion", ["3", None])
def test_gate_mail_names_the_serving_champion_when_the_suite_failed(champion, lake_dir, outbox, monkeypatch) -> None:
    from sluice.airflow.operators import GateOperator
    from sluice.training import job

    monkeypatch.setattr(job, "decide", lambda cfg, registry, trained, evaluation: suite_failed())
    op = GateOperator(task_id="gate", model="loans", train_task="train", evaluate_task="evaluate")
    op.registry = FakeRegistry(champion)
    trained = {"run_id": "0123456789abcdef", "suite_passed": False}
    ti = FakeTI({("train", "return_value"): trained, ("evaluate", "return_value"): {"skipped": "x"}}, task_id="gate")
    with pytest.raises(AlertedFailure, match="gate FAIL, champion untouched"):
        op.execute(context(ti))
    ((alert, _),) = outbox
    for part in (alert.text, alert.html):
        if champion:
            assert "no champion yet" not in part and "first model" not in part
            assert "v3 (serving, not compared: the training-set suite failed" in part
        else:
            assert "no champion yet" in part
    steps = alert.text.split("What to do next:")[1]
    assert ("the champion (v3) keeps serving" if champion else "no champion serves yet") in steps
    assert "http://mlflow.test/#/experiments/7/runs/0123456789abcdef" in alert.text


def test_a_gate_whose_alert_cannot_be_sent_fails_retryably_and_the_retry_mails_it(
    tmp_path, lake_dir, free_port, monkeypatch
) -> None:
    """SMTP down when a gate fails (fault F4): the task must not end without its alert. With the real SMTP sink
    stopped the gate fails *retryably* (not AirflowFailException, so the DAG's retries run it again); once the
    sink is back, the retry sends the mail exactly once and fails red without retry."""
    from sluice.airflow.operators import GateOperator
    from sluice.alerts.mailsink import read_outbox, start
    from sluice.training import job

    port, mails = free_port(), tmp_path / "outbox"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f'{{"conn_type":"smtp","host":"127.0.0.1","port":{port},'
        '"extra":{"disable_tls":true,"disable_ssl":true,"from_email":"sluice@localhost","timeout":5}}',
    )
    monkeypatch.setattr(job, "decide", lambda cfg, registry, trained, evaluation: suite_failed())
    trained = {"run_id": "0123456789abcdef", "suite_passed": False}
    xcoms = {("train", "return_value"): trained, ("evaluate", "return_value"): {"skipped": "x"}}

    def attempt() -> pytest.ExceptionInfo[BaseException]:
        op = GateOperator(task_id="gate", model="loans", train_task="train", evaluate_task="evaluate")
        op.registry = FakeRegistry("3")
        with pytest.raises(Exception) as failed:
            op.execute(context(FakeTI(xcoms, task_id="gate")))
        return failed

    down = attempt()  # nothing listens on the port: the relay is down
    assert isinstance(down.value, AlertNotSent) and not isinstance(down.value, AirflowFailException), down.value
    assert "gate FAIL, champion untouched" in str(down.value) and "a retry sends it" in str(down.value)
    assert not mails.exists() or read_outbox(mails) == []

    sink = start(mails, "127.0.0.1", port)
    try:
        retry = attempt()
    finally:
        sink.stop()
    assert isinstance(retry.value, AlertedFailure), retry.value
    subjects = [m["Subject"] for m in read_outbox(mails)]
    assert subjects == ["[sluice] loans: candidate NOT promoted, gate FAIL"], subjects


# --------------------------------------------------------------------------------------------- deployment


RELEASE = {"model": "loans", "version": "4", "model_uri": "models:/loans/4", "sha256": "ab" * 32, "run_id": "r4"}
PLAN = {"deploy": True, "version": "4", "action": "deploy", "why": "new challenger v4", "release": RELEASE}


def test_resolve_skips_with_the_reason_when_nothing_is_to_deploy(monkeypatch) -> None:
    from sluice.airflow.deployment_operators import ResolveReleaseOperator
    from sluice.deployment import job

    asked: list[dict[str, Any]] = []

    def resolve(cfg: Any, registry: Any, *, action: str, version: Any) -> dict[str, Any]:
        asked.append({"action": action, "version": version})
        return {"deploy": False, "why": "v3 is already the champion"}

    monkeypatch.setattr(job, "resolve", resolve)
    op = ResolveReleaseOperator(task_id="resolve", model="loans")
    op.registry = "registry"
    with pytest.raises(AirflowSkipException, match="v3 is already the champion"):
        op.execute(context(FakeTI(), params={"action": None, "version": 3}))
    assert asked == [{"action": "deploy", "version": 3}]


def test_infra_validation_failure_mails_what_serves_and_links_the_report(lake_dir, outbox, monkeypatch) -> None:
    from sluice.airflow.deployment_operators import InfraValidateOperator
    from sluice.deployment import job
    from sluice.deployment.targets import Endpoint

    report = {"model": "loans", "version": "4", "failed": ["p95 latency 80 ms > 50 ms"], "checks": []}

    def validate(*args: Any) -> Any:
        raise job.InfraValidationFailed(report)

    monkeypatch.setattr(job, "validate", validate)
    op = InfraValidateOperator(task_id="infra_validate", model="loans", resolve_task="resolve_release")
    op.registry = "registry"
    op.target = SimpleNamespace(current=lambda: Endpoint("local", "loans", "3", "http://127.0.0.1:9/"))
    ti = FakeTI({("resolve_release", "return_value"): PLAN}, task_id="infra_validate")
    with pytest.raises(AlertedFailure, match="v4: infra validation failed; p95 latency 80 ms > 50 ms"):
        op.execute(context(ti))
    ((alert, _),) = outbox
    assert "Still serving: v3 at http://127.0.0.1:9/" in alert.text
    assert f"{BASE}/sluice/lake/reports/loans/deployments/v4/infra_validation.json" in alert.text


def test_a_failed_alert_still_fails_the_deployment_red(lake_dir, monkeypatch) -> None:
    from sluice.airflow.deployment_operators import DeployOperator
    from sluice.deployment.targets import DeploymentError, Endpoint

    def refuse(release: Any) -> Any:
        raise DeploymentError("port in use")

    def broken_relay(self: Any, alert: Any, to: Any) -> None:
        raise OSError("relay down")

    monkeypatch.setattr(AlertHook, "send", broken_relay)
    op = DeployOperator(task_id="deploy", model="loans", resolve_task="resolve_release")
    op.registry = "registry"
    op.target = SimpleNamespace(name="local", deploy=refuse, current=lambda: Endpoint("local", "loans", None, None))
    ti = FakeTI({("resolve_release", "return_value"): PLAN}, task_id="deploy")
    with pytest.raises(AirflowFailException, match="the alert email failed: relay down"):
        op.execute(context(ti))


def test_set_champion_reads_its_upstreams_by_the_task_ids_it_is_given(monkeypatch) -> None:
    from sluice.airflow.deployment_operators import SetChampionOperator
    from sluice.deployment import job

    moved: list[dict[str, Any]] = []

    def set_champion(cfg: Any, registry: Any, release: Any, **kw: Any) -> dict[str, Any]:
        moved.append({"version": release.version, **kw})
        return {"champion": release.version}

    monkeypatch.setattr(job, "set_champion", set_champion)
    op = SetChampionOperator(
        task_id="set_champion", model="loans", resolve_task="pick", infra_validate_task="check", outlets=[]
    )
    op.registry = "registry"
    ti = FakeTI({("pick", "return_value"): PLAN, ("check", "return_value"): {"report_uri": "file:///r.json"}})
    run = SimpleNamespace(triggering_user_name="alice", run_type="manual")
    out = op.execute(context(ti, dag=SimpleNamespace(dag_id="loans_deployment"), dag_run=run))
    assert out == {"champion": "4"}
    assert moved == [
        {
            "version": "4",
            "why": "new challenger v4",
            "who": "airflow:alice",
            "dag_id": "loans_deployment",
            "run_id": ti.run_id,
            "evidence": "file:///r.json",
        }
    ]


def test_a_failed_smoke_test_rolls_back_to_the_previous_champion_and_mails_it(lake_dir, outbox, monkeypatch) -> None:
    from sluice.airflow.deployment_operators import SmokeTestOperator
    from sluice.deployment import job
    from sluice.deployment.targets import Endpoint, Release

    previous = Release("loans", "3", "models:/loans/3", "cd" * 32, "r3")
    looked_up: list[Any] = []

    def previous_release(registry: Any, model: str, version: Any) -> Release:
        looked_up.append(version)
        return previous

    deployed: list[str] = []

    def deploy(release: Release) -> Endpoint:
        deployed.append(release.version)
        return Endpoint("local", "loans", release.version, "http://127.0.0.1:9/")

    monkeypatch.setattr(job, "smoke_test", lambda *a: {"passed": False, "problems": ["v4 answered as v3"]})
    monkeypatch.setattr(job, "previous_release", previous_release)
    op = SmokeTestOperator(task_id="smoke_test", model="loans", resolve_task="resolve_release")
    op.registry = "registry"
    op.target = SimpleNamespace(
        deploy=deploy, current=lambda: Endpoint("local", "loans", deployed[-1], "http://127.0.0.1:9/")
    )
    ti = FakeTI({("resolve_release", "return_value"): {**PLAN, "champion": "3"}}, task_id="smoke_test")
    with pytest.raises(AlertedFailure, match="v4: smoke test failed; v4 answered as v3"):
        op.execute(context(ti))
    assert looked_up == ["3"] and deployed == ["3"], "the champion of the plan is redeployed"
    ((alert, _),) = outbox
    assert "rolled back: v3 serves" in alert.text and "Still serving: v3 at http://127.0.0.1:9/" in alert.text


def test_batch_scoring_without_a_champion_fails_saying_what_to_run() -> None:
    from sluice.airflow.deployment_operators import BatchScoreOperator

    op = BatchScoreOperator(task_id="score", model="loans", ds=DS)
    op.registry = FakeRegistry(None)
    with pytest.raises(
        AirflowFailException, match=f"no 'champion' yet, so ds={DS} cannot be scored: deploy one with loans_deployment"
    ):
        op.execute(context(FakeTI(task_id="score")))
