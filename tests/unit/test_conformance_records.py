"""Conformance rows turn from designed to covered on the records a run leaves (a real lake, registry facts)."""

from __future__ import annotations

import datetime as dt

import pytest

from sluice import conformance
from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.lake import Lake, LocalStorage

pytestmark = pytest.mark.unit

DAG_TASKS = {
    "features": ("ValidateLandingOperator", "PublishFeaturesOperator"),
    "training": (
        "TrainModelOperator",
        "EvaluateModelOperator",
        "GateOperator",
        "ApprovePromotionOperator",
        "PromoteModelOperator",
    ),
    "deployment": ("InfraValidateOperator", "DeployOperator", "SetChampionOperator"),
    "batch_inference": ("BatchScoreOperator",),
    "monitoring": ("DriftSensor", "PerformanceOperator", "RetrainOperator"),
}


def dags_of(cfg) -> dict[str, conformance.DagFacts]:
    """The loans pipeline's DAG facts as the inventory gives them (task ids named after the operators)."""
    schedules = {
        "training": f"assets: sluice://features/{cfg.features.feature_set}",
        "deployment": f"assets: sluice://model/{cfg.name}",
    }
    return {
        cfg.dag_id(kind): conformance.DagFacts(
            cfg.dag_id(kind), schedules.get(kind, "@daily"), tuple(conformance.TaskFacts(op.lower(), op) for op in ops)
        )
        for kind, ops in DAG_TASKS.items()
    }


def test_records_from_a_real_lake_and_registry_facts_make_rows_covered(tmp_path) -> None:
    cfg = get_model_config("loans")
    lake = Lake(LocalStorage(tmp_path / "lake"))
    seed_feature_store(cfg, lake, dt.date(2025, 1, 1), 2, rows_per_day=200)
    lake.put_files(f"reports/{cfg.name}/drift/ds=2025-01-02", {"drift.json": b"{}"})
    records = conformance.collect_records(cfg, lake, registry=None)
    assert records.newest == {"features": "2025-01-02", "drift": "2025-01-02"} and len(records.features_sha256) == 64

    before = {r.id: r.status for r in conformance.assess(cfg, dags_of(cfg), conformance.Records()).rows}
    after = {r.id: r for r in conformance.assess(cfg, dags_of(cfg), records).rows}
    assert set(before.values()) == {"designed"}
    assert after["C4"].status == "covered" and after["C4"].exercised.startswith("features ds=2025-01-02 sha256 ")
    assert after["C9"].status == "covered" and "drift ds=2025-01-02" in after["C9"].exercised
    assert after["C6"].status == "designed"  # nothing registered yet

    tags = {
        "version": "3",
        "airflow.dag_id": "loans_training",
        "airflow.run_id": "manual__1",
        "data.manifest_sha256": "a" * 64,
        "code.git_sha": "b" * 40,
        "config.hash": "c" * 16,
    }
    registered = conformance.Records(
        last_training=tags, versions=3, aliases={"champion": "2"}, ledger_entries=4, newest=records.newest
    )
    done = {r.id: r for r in conformance.assess(cfg, dags_of(cfg), registered).rows}
    assert done["C6"].status == "covered" and done["C6"].exercised == (
        "3 registered versions (champion=v2); 4 ledger entries"
    )
    assert done["P3"].exercised == f"data.manifest_sha256={'a' * 12}, code.git_sha={'b' * 12}, config.hash={'c' * 12}"


def test_an_unreadable_store_is_an_error_line_not_a_crash() -> None:
    class Broken:
        def versions(self, model):
            raise ConnectionError("MLflow at 127.0.0.1:1 refused the connection")

    records = conformance.collect_records(get_model_config("loans"), None, Broken())
    assert records.versions == 0 and records.errors == (
        "MLflow registry: ConnectionError: MLflow at 127.0.0.1:1 refused the connection",
    )
