"""The whole loop on the embedded stack (scheduler, triggerer, LocalExecutor, MLflow, SMTP sink):

a covariate shift (with a concept shift, so the old model is worse on it) starts on S
-> the monitoring DAG sees drift on S, S+1, S+2 (persistence 3 of 3) and triggers the training DAG with the
   reason and the report -> the scheduler trains, the gate passes, promotion emits the model Asset
-> the deployment DAG (Asset-scheduled) validates and deploys v2 blue/green and moves the champion
-> the next intervals, scored by v2, are compared with v2's reference profile and stay quiet.

On the way: the drift sensor of an interval whose predictions are not there yet is deferred and holds no
worker slot. The model config is the loans config with a one-day label delay and a three-day window, so the
story fits in minutes; it lives in the stack's own ``SLUICE_MODELS_DIR``.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml
from machine import shared_machine_budgets

from sluice.alerts.mailsink import read_outbox
from sluice.config import MODELS_DIR, get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.deployment.factory import target_for
from sluice.deployment.job import run_deployment
from sluice.features.job import publish_features
from sluice.lake import open_lake
from sluice.registry.artifact import fetch_release, load_model, release_of
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from sluice.serving.batch import score_partition
from sluice.training import job

pytestmark = pytest.mark.e2e

STACK_SERVICES = ("mailsink", "mlflow", "airflow")
START, S = dt.date(2025, 1, 1), dt.date(2025, 1, 11)
ROWS = 3000  # per day: drift is plain on any day of it, and a window of three days passes the gate


def _config() -> dict:
    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["end_date"] = "2025-03-31"
    data["labels"]["delay_days"] = 1
    data["training"].update(window_days=3, min_new_partitions=1, min_rows=2000)
    data["training"]["estimator"]["params"]["max_iter"] = 50  # the gate's verdict, not the model's last digit
    # the retrained model learns the new regime from two labelled days: a floor for that, not for a month
    data["gate"]["floors"] = {"roc_auc": 0.6}
    shared_machine_budgets(data)
    data["monitoring"] = {"persistence": {"k": 3, "n": 3}, "cooldown_days": 3, "performance": {"min_rows": 10**9}}
    # the deferred quiet day's sensor finds its predictions within 2 s of their landing, not up to a minute
    data["monitoring"]["poll_interval_s"] = 2
    return data


STACK_MODELS = {"loans.yaml": _config()}
SCENARIO = {
    "name": "shift",
    "covariate_shifts": [{"start": S.isoformat(), "column": "credit_score", "shift_sd": 0.8}],
    "concept_shifts": [{"start": S.isoformat(), "column": "credit_score", "weight_multiplier": -1.0}],
}


def trigger(api, dag_id: str, ds: dt.date) -> str:
    body = {"logical_date": f"{ds.isoformat()}T00:00:00Z", "conf": {}}
    return api.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]


def task_states(api, dag_id: str, run_id: str) -> dict[str, str]:
    tis = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}


def wait_tasks(api, dag_id: str, run_id: str, done, timeout: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = task_states(api, dag_id, run_id)
        if done(states):
            return states
        time.sleep(1)
    raise AssertionError(f"{dag_id} {run_id}: tasks did not get there within {timeout}s: {states}")


def settled(*tasks: str):
    final = {"success", "failed", "skipped", "upstream_failed"}
    return lambda states: all(states.get(t) in final for t in tasks)


def test_drift_retrains_deploys_and_the_new_champion_is_quiet(stack, tmp_path) -> None:
    settings, api = stack
    cfg = get_model_config("loans")
    assert cfg.labels.delay_days == 1, "the stack's own model config is in use"
    lake = open_lake()
    scenario = tmp_path / "shift.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    generate_into_lake(cfg, lake, START, 17, scenario_path=scenario, rows_per_day=ROWS)
    registry = Registry(settings.mlflow_url)

    def publish_and_score(day: dt.date) -> str:
        publish_features(cfg, lake, day)
        champ = registry.by_alias(cfg.name, CHAMPION)
        release = release_of(registry, cfg.name, champ.version)
        model = load_model(fetch_release(release))
        score_partition(cfg, lake, day, model, model_version=release.version, run_id=release.run_id)
        return release.version

    # v1: trained on the ten quiet days, deployed and champion
    for i in range(10):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    trained = job.train(
        cfg, lake, registry, end_ds=S - dt.timedelta(days=1), window_days=10, dag_id="setup", run_id="v1"
    )
    evaluation = job.evaluate(cfg, lake, registry, trained)
    decision = job.decide(cfg, registry, trained, evaluation).to_dict()
    assert decision["decision"] == "PASS", [r for r in decision["rules"] if r["verdict"] not in ("PASS", "SKIPPED")]
    job.promote(cfg, registry, trained, evaluation, decision, run_type="manual")
    v1 = run_deployment(cfg, lake, registry, target_for(cfg), who="test")["champion"]

    for dag_id in ("loans_monitoring", "loans_training", "loans_deployment"):
        api.wait_for_dag(dag_id)
        api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    # S, S+1, S+2: drift each day; the third one persists 3 of 3 and starts the training DAG
    for n, day in enumerate((S, S + dt.timedelta(days=1), S + dt.timedelta(days=2)), start=1):
        assert publish_and_score(day) == v1
        run_id = trigger(api, "loans_monitoring", day)
        states = wait_tasks(api, "loans_monitoring", run_id, settled("drift", "retrain_on_drift"))
        assert states["drift"] == "success", states
        drift = lake.read(f"reports/loans/drift/ds={day}/drift.json")
        assert b'"drift": true' in drift, f"no drift on {day}"
        assert states["retrain_on_drift"] == ("success" if n == 3 else "skipped"), (day, states)
    retrain_day = S + dt.timedelta(days=2)
    mails = [m["Subject"] for m in read_outbox(settings.outbox)]
    assert f"[sluice] loans: drift detected on ds={retrain_day}, retraining started" in mails, mails

    # the scheduler runs the triggered training; promotion's Asset event starts the deployment
    (training,) = [
        r["dag_run_id"] for r in api.runs("loans_training") if r["dag_run_id"].startswith(f"drift__{retrain_day}")
    ]
    states = wait_tasks(api, "loans_training", training, settled("promote"), timeout=600)
    assert states["gate"] == "success" and states["promote"] == "success", states
    run = api.call("GET", f"/dags/loans_training/dagRuns/{training}")
    assert run["conf"]["reason"].startswith(f"drift on ds={retrain_day}")
    # the model Asset's deployment run: it moves the champion, then clears the challenger (two alias moves), so
    # the aliases are read once it has ended
    deployments = api.wait_runs(
        "loans_deployment", lambda runs: bool(runs) and all(r["state"] in ("success", "failed") for r in runs), 600
    )
    assert {r["state"] for r in deployments} == {"success"}, deployments
    champ = registry.by_alias(cfg.name, CHAMPION)
    v2 = champ.version
    assert v2 != v1, "the deployment DAG did not move the champion"
    assert registry.by_alias(cfg.name, CHALLENGER) is None
    v2_run = registry.run(champ.run_id)
    assert v2_run.data.tags["sluice.reason"].startswith(f"drift on ds={retrain_day}")

    # a deferred drift sensor holds no worker slot: the interval's predictions are not there yet
    quiet_day = S + dt.timedelta(days=3)
    run_id = trigger(api, "loans_monitoring", quiet_day)
    wait_tasks(api, "loans_monitoring", run_id, lambda st: st.get("drift") == "deferred")
    # deferred task instances are counted apart and occupy nothing (the labels branch may be running). The API
    # counts each field in a query of its own, so a task ending between two of them can skew one read: a few reads
    # are taken, and one must balance. Were deferred slots occupied, none could (occupied = running + queued +
    # deferred, with deferred >= 1).
    reads = [api.call("GET", "/pools/default_pool") for _ in range(5)]
    assert all(p["deferred_slots"] >= 1 and p["include_deferred"] is False for p in reads), reads
    assert any(p["occupied_slots"] == p["running_slots"] + p["queued_slots"] for p in reads), reads
    assert publish_and_score(quiet_day) == v2
    states = wait_tasks(api, "loans_monitoring", run_id, settled("drift", "retrain_on_drift"), timeout=300)

    # scored by v2 and compared with v2's reference: quiet
    for day in (quiet_day, quiet_day + dt.timedelta(days=1)):
        if day != quiet_day:
            assert publish_and_score(day) == v2
            run_id = trigger(api, "loans_monitoring", day)
            states = wait_tasks(api, "loans_monitoring", run_id, settled("drift", "retrain_on_drift"))
        assert states["drift"] == "success" and states["retrain_on_drift"] == "skipped", (day, states)
        report = lake.read(f"reports/loans/drift/ds={day}/drift.json")
        assert b'"drift": false' in report and f'"model_version": "{v2}"'.encode() in report, day
