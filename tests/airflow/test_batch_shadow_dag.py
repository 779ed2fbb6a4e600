"""The batch-inference DAG run through Airflow (dag.test on the metadata DB) with a real MLflow server while a
challenger waits: the champion's predictions as before, the challenger's scores in the shadow zone, its live
comparison written once the day's labels landed, and (``deploy.require_shadow_days: 1``) the shadow Asset event
that starts the deployment DAG again, emitted once: a rerun of the interval changes nothing."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pendulum
import pytest
import yaml
from machine import shared_machine_models

from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.deployment import job as deployment
from sluice.deployment import shadow
from sluice.lake import open_lake
from sluice.registry.artifact import release_of
from sluice.registry.mlflow_registry import CHALLENGER
from sluice.training.job import register_pipeline
from sluice.training.model import feature_columns, fit
from sluice.training.snapshot import build_snapshot

START = dt.date(2025, 1, 1)
DAYS = 9  # the first two days' labels land on days 8 and 9


@pytest.fixture(scope="module")
def batch_dag(airflow_db, tmp_path_factory):
    """The loans batch-inference DAG over loans.yaml with one labelled shadow day required."""
    from sluice.airflow.runner import load_dag

    folder = shared_machine_models(tmp_path_factory.mktemp("models"), "loans")
    data = yaml.safe_load((folder / "loans.yaml").read_text())
    data["deploy"] = {**data.get("deploy", {}), "require_shadow_days": 1}
    (folder / "loans.yaml").write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_MODELS_DIR", str(folder))
        yield load_dag("loans_batch_inference")


def run(dag, ds: dt.date) -> dict[str, str]:
    dr = dag.test(logical_date=pendulum.datetime(ds.year, ds.month, ds.day, tz="UTC"))
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def shadow_events() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == "sluice://shadow/loans")
            .all()
        )


def test_a_waiting_challenger_is_shadow_scored_and_its_evidence_signals_once(
    batch_dag, lake_root, loans_registry, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    cfg = get_model_config("loans")
    lake = open_lake()
    seed_feature_store(cfg, lake, START, DAYS, rows_per_day=400)
    frame = build_snapshot(cfg, lake, START + dt.timedelta(days=DAYS - 1), DAYS).frame
    example = frame[feature_columns(cfg)].head(3)
    small = cfg.training.estimator.model_copy(update={"params": {"max_iter": 3, "max_depth": 2}})
    champion, _ = register_pipeline(
        loans_registry,
        cfg,
        fit(cfg.model_copy(update={"training": cfg.training.model_copy(update={"estimator": small})}), frame),
        example,
    )
    challenger, _ = register_pipeline(loans_registry, cfg, fit(cfg, frame), example, **{"gate.decision": "PASS"})
    deployment.set_champion(cfg, loans_registry, release_of(loans_registry, cfg.name, champion), why="t", who="test")
    loans_registry.set_alias(cfg.name, CHALLENGER, challenger)

    before = len(shadow_events())
    states = run(batch_dag, START)  # its labels landed on day 8
    assert states == {
        "wait_for_features": "success",
        "score": "success",
        "shadow_score": "success",
        "shadow_ready": "success",
    }, states
    preds = pd.read_parquet(io.BytesIO(lake.read_published("predictions", "loans", START)[0]))
    shadowed = pd.read_parquet(io.BytesIO(lake.read_published("shadow", f"loans/v{challenger}", START)[0]))
    assert set(preds["model_version"]) == {champion} and set(shadowed["model_version"]) == {challenger}
    assert list(shadowed["application_id"]) == list(preds["application_id"])
    evidence = json.loads(lake.read(shadow.report_key("loans", challenger)))
    print(*shadow.summary_lines(evidence), sep="\n")
    assert evidence["labelled_days"] == 1 and evidence["champion_versions"] == [champion]
    assert evidence["bootstrap"]["n_samples"] == cfg.gate.bootstrap_samples
    assert len(shadow_events()) == before + 1

    # the same interval again: the same shadow bytes, no second signal
    manifest = lake.manifest("shadow", f"loans/v{challenger}", START)
    states = run(batch_dag, START)
    assert states["shadow_score"] == "success" and states["shadow_ready"] == "skipped", states
    assert lake.manifest("shadow", f"loans/v{challenger}", START)["content_sha256"] == manifest["content_sha256"]
    assert len(shadow_events()) == before + 1
