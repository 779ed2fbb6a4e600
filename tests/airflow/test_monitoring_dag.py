"""The monitoring DAG run through Airflow (dag.test on the metadata DB) with a real MLflow server and a real
SMTP server: a quiet day stays quiet, a covariate shift triggers the training DAG with the reason and the
report and mails the owners, the same interval rerun starts nothing more, the next day is in the cooldown.
"""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import pytest
import yaml
from machine import shared_machine_models

from sluice.alerts.mailsink import read_outbox
from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.lake import open_lake
from sluice.registry.artifact import fetch_release, load_model, release_of
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION
from sluice.serving.batch import score_partition
from sluice.training import job

START = dt.date(2025, 1, 1)
QUIET, SHIFTED = dt.date(2025, 1, 20), dt.date(2025, 1, 24)


@pytest.fixture(scope="module")
def monitoring_dag(airflow_db, tmp_path_factory):
    """The loans monitoring DAG over loans.yaml with a shared machine's latency budgets (tests/machine.py)."""
    from sluice.airflow.runner import load_dag

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_MODELS_DIR", str(shared_machine_models(tmp_path_factory.mktemp("models"), "loans")))
        yield load_dag("loans_monitoring")


def run(dag, ds: dt.date):
    dr = dag.test(logical_date=pendulum.datetime(ds.year, ds.month, ds.day, tz="UTC"))
    tis = dr.get_task_instances()
    return {ti.task_id: str(ti.state) for ti in tis}, {ti.task_id: ti for ti in tis}


def training_runs() -> list:
    from airflow.models import DagRun

    return DagRun.find(dag_id="loans_training")


def test_quiet_day_shift_retrain_once_then_cooldown(monitoring_dag, lake_root, smtp_sink, loans_registry, tmp_path):
    cfg = get_model_config("loans")
    lake = open_lake()
    scenario = tmp_path / "shift.yaml"
    shift = {"start": SHIFTED.isoformat(), "column": "credit_score", "shift_sd": 0.5}
    scenario.write_text(yaml.safe_dump({"name": "shift", "covariate_shifts": [shift]}))
    generate_into_lake(cfg, lake, START, 33, scenario_path=scenario, rows_per_day=1200)  # labels to day 26
    for i in range(26):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    registry = loans_registry
    trained = job.train(
        cfg, lake, registry, end_ds=QUIET - dt.timedelta(days=1), window_days=19, dag_id="t", run_id="first"
    )
    evaluation = job.evaluate(cfg, lake, registry, trained)
    decision = job.decide(cfg, registry, trained, evaluation).to_dict()
    job.promote(cfg, registry, trained, evaluation, decision, run_type="manual")
    version = registry.by_alias(cfg.name, CHALLENGER).version
    registry.set_alias(cfg.name, CHAMPION, version)
    release = release_of(registry, cfg.name, version)
    model = load_model(fetch_release(release))
    for day in (QUIET, SHIFTED, SHIFTED + dt.timedelta(days=1)):
        score_partition(cfg, lake, day, model, model_version=version, run_id=release.run_id)
    earlier = {r.run_id for r in training_runs()}  # a reused metadata DB may hold runs of earlier sessions
    before = len(earlier)

    # a quiet day: no drift, performance fine once its labels are there, nothing retrains
    states, tis = run(monitoring_dag, QUIET)
    assert states == {
        "drift": "success",
        "retrain_on_drift": "skipped",
        "wait_for_labels": "success",
        "performance": "success",
        "retrain_on_decay": "skipped",
    }, states
    quiet = tis["drift"].xcom_pull(task_ids="drift")
    assert quiet["drift"] is False and quiet["model_version"] == version, quiet["reason"]
    assert tis["performance"].xcom_pull(task_ids="performance")["status"] == "ok"
    assert len(training_runs()) == before and read_outbox(smtp_sink) == []

    # the shift: drift on credit_score, the training DAG is triggered with the reason and the report
    states, tis = run(monitoring_dag, SHIFTED)
    assert states["drift"] == "success" and states["retrain_on_drift"] == "success", states
    found = tis["drift"].xcom_pull(task_ids="drift")
    assert found["drift"] is True and "credit_score" in found["drifted_features"], found["reason"]
    report = json.loads(lake.read(f"reports/loans/drift/ds={SHIFTED}/drift.json"))
    assert report["features"]["credit_score"]["drifted"] is True
    html = lake.read(f"reports/loans/drift/ds={SHIFTED}/drift.html").decode()
    assert "<svg" in html and "credit_score" in html and "DRIFT" in html
    runs = training_runs()
    assert len(runs) == before + 1
    (new,) = [r for r in runs if r.run_id.startswith(f"drift__{SHIFTED}__") and r.run_id not in earlier]
    assert new.conf["reason"].startswith(f"drift on ds={SHIFTED}: drift") and new.conf["report"].endswith("drift.html")
    assert new.conf["end_ds"] == str(SHIFTED), "the retrain is trained as of the interval that drifted"
    (mail,) = read_outbox(smtp_sink)
    assert mail["Subject"] == f"[sluice] loans: drift detected on ds={SHIFTED}, retraining started"
    assert "credit_score" in mail.get_body(("plain",)).get_content()

    # the same interval again: nothing new is started, no second mail
    states, _ = run(monitoring_dag, SHIFTED)
    assert states["retrain_on_drift"] in ("success", "skipped"), states
    assert len(training_runs()) == before + 1 and len(read_outbox(smtp_sink)) == 1

    # the next day drifts too, but the retrain of yesterday is within the cooldown
    states, tis = run(monitoring_dag, SHIFTED + dt.timedelta(days=1))
    assert states["retrain_on_drift"] == "skipped", states
    why = tis["retrain_on_drift"].xcom_pull(task_ids="retrain_on_drift", key="why")
    assert "cooldown" in why, why
    assert len(training_runs()) == before + 1


def test_the_retrain_tasks_decide_one_at_a_time(monitoring_dag):
    """Both retrain tasks take the one slot of the pool the stacks create (include/pools.json): intervals judged
    at once decide one after another, each seeing the retrain records of the others (the storm test of
    tests/distributed/test_races.py shows it on Celery workers)."""
    from sluice.stack.embedded import POOLS

    pools = json.loads(POOLS.read_text())
    used = {t: monitoring_dag.get_task(t).pool for t in ("retrain_on_drift", "retrain_on_decay")}
    assert set(used.values()) == {"sluice_retrain"}, used
    assert pools["sluice_retrain"]["slots"] == 1 and not pools["sluice_retrain"]["include_deferred"], pools
