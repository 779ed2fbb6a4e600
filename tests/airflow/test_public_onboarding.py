"""Two real public tables Sluice was not built with, onboarded by config alone (issue 13).

Each model was onboarded with ``sluice init`` (include/models/<model>.yaml, reviewed: the header says what
changed) + ``sluice suite`` + landing (``sluice.datagen.public.land``). Here a small slice of each runs
through the model's own DAGs (dag.test on the metadata DB, a real MLflow server): features with the GX suite,
training and the gate, deployment (infra validation in a fresh serving process), batch scoring and a
monitoring day, drift and live performance. No platform code names these datasets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
from pathlib import Path

import pendulum
import pytest
from machine import shared_machine_models

from sluice.config import get_model_config
from sluice.datagen import public
from sluice.features.job import check_landing, publish_features
from sluice.lake import open_lake
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from sluice.runtime import Settings
from sluice.serving.batch import SCORE, read_predictions

REPO = Path(__file__).resolve().parents[2]
#: model -> its public source; both configs are in include/models, drafted by `sluice init`
ONBOARDED = {"openintro_loans": "loans_full_schema", "lending_club": "lending_club"}
#: days landed: the first TRAIN train the first model (its min_rows needs about 10 labelled days), the
#: next one is the monitoring day
TRAIN = 14


def test_no_platform_code_knows_about_the_public_datasets() -> None:
    """Only the loader (datagen) and the config files name them; DAGs and library code do not."""
    platform = [
        *(REPO / "dags").glob("*.py"),
        *(p for p in (REPO / "include/sluice").rglob("*.py") if "datagen" not in p.parts),
    ]
    names = "|".join([*ONBOARDED, *ONBOARDED.values(), "openintro", "subprime"])
    offenders = [str(p.relative_to(REPO)) for p in platform if re.search(names, p.read_text(), re.I)]
    assert offenders == []


@pytest.fixture
def fresh_model(mlflow_server, request):
    """No registered version and no live batch deployment of the model before and after the test."""
    from mlflow.exceptions import MlflowException

    name = request.param
    registry = Registry(mlflow_server)
    live = Settings.from_env().home / "deployments" / name

    def forget() -> None:
        with contextlib.suppress(MlflowException):
            registry.client.delete_registered_model(name)
        shutil.rmtree(live, ignore_errors=True)

    forget()
    yield name, registry
    forget()


def _run(dag_id: str, ds: dt.date | None = None, **conf) -> dict[str, str]:
    from sluice.airflow.runner import load_dag

    dag = load_dag(dag_id)
    if ds is None:
        dr = dag.test(run_conf=conf)
    else:
        dr = dag.test(logical_date=pendulum.datetime(ds.year, ds.month, ds.day, tz="UTC"), run_conf=conf or None)
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


@pytest.fixture(autouse=True)
def _shared_machine_budgets(tmp_path, monkeypatch):
    """The committed configs with a shared test machine's latency budgets (tests/machine.py): the budgets
    `sluice init` drafted were measured on one machine's load, this test runs beside another worker's stack."""
    monkeypatch.setenv("SLUICE_MODELS_DIR", str(shared_machine_models(tmp_path / "models", *ONBOARDED)))


@pytest.mark.parametrize("fresh_model", list(ONBOARDED), indirect=True)
def test_onboarded_model_runs_every_pipeline(fresh_model, airflow_db, lake_root, smtp_sink) -> None:
    name, registry = fresh_model
    cfg = get_model_config(name)
    lake = open_lake()
    source = ONBOARDED[name]
    days = public.land(
        source,
        lake,
        dataset=cfg.dataset.name,
        labels_dataset=cfg.labels.dataset,
        delay_days=cfg.labels.delay_days,
        fmt=cfg.dataset.format,
        count=TRAIN + 1,
    )
    first, end, monitored = days[0], days[TRAIN - 1], days[TRAIN]

    # features: the DAG (sensor, GX suite, publish) on the first and the monitored day; every other day
    # passes the same suite and is published by the same function the DAG's publish task calls
    for d in (first, monitored):
        states = _run(cfg.dag_id("features"), d)
        assert set(states.values()) == {"success"}, (d, states)
    for d in days[1:TRAIN]:
        checked = check_landing(cfg, lake, d)
        assert checked.success, f"{name} ds={d} quarantined by its own suite: {checked.reason}"
        publish_features(cfg, lake, d)

    # training and the gate: the first model, judged by the absolute rules only
    states = _run(cfg.dag_id("training"), end_ds=end.isoformat(), window_days=TRAIN, note="onboarding test")
    assert states == {k: "success" for k in ("plan", "train", "evaluate", "gate", "approve", "promote")}, states
    challenger = registry.by_alias(name, CHALLENGER)
    assert challenger is not None and challenger.tags["gate.decision"] == "PASS"

    # deployment: infra validation (the input example holds this data's nulls), deploy, smoke, champion
    states = _run(cfg.dag_id("deployment"), action="deploy")
    assert set(states.values()) == {"success"}, states
    assert registry.by_alias(name, CHAMPION).version == challenger.version

    # batch scoring of the monitored day, then its monitoring: drift against the reference, live performance
    states = _run(cfg.dag_id("batch_inference"), monitored)
    # no challenger waits: nothing is shadow-scored, and no shadow evidence starts a deployment
    assert states == {
        "wait_for_features": "success",
        "score": "success",
        "shadow_score": "skipped",
        "shadow_ready": "skipped",
    }, states
    scored = read_predictions(cfg, lake, monitored)
    assert len(scored) == 250 and scored[SCORE].between(0, 1).all()
    states = _run(cfg.dag_id("monitoring"), monitored)
    assert states["drift"] == states["wait_for_labels"] == states["performance"] == "success", states
    perf = lake.list(f"reports/{name}/performance/ds={monitored.isoformat()}")
    assert perf, f"no performance report of {name} for {monitored}"
