"""`sluice conformance` over the real DAG files: every principle and component of the paper is designed for
loans; a DAG folder without the monitoring DAG turns monitoring and the feedback loop into gaps."""

from __future__ import annotations

import json
import shutil

import pytest

from sluice import conformance
from sluice.config import get_model_config
from sluice.runtime import DAGS_DIR

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def inventory():
    from sluice.airflow.inventory import dag_inventory

    return dag_inventory(DAGS_DIR)


def rows(report) -> dict[str, conformance.Row]:
    return {r.id: r for r in report.rows}


def test_every_principle_and_component_is_designed_for_loans(inventory) -> None:
    dags, errors = inventory
    assert errors == {}
    report = conformance.assess(get_model_config("loans"), dags, conformance.Records())
    by_id = rows(report)
    assert sorted(by_id) == [f"C{i}" for i in range(1, 10)] + [f"P{i}" for i in range(1, 10)]
    assert report.counts()["designed"] == 18, {r.id: (r.status, r.missing) for r in report.rows}
    assert "loans_monitoring.drift (DriftSensor)" in " ".join(by_id["P8"].evidence)
    assert by_id["P8"].missing == ("no recorded run has exercised it yet",)
    assert "loans_training.approve (ApprovePromotionOperator)" in " ".join(by_id["P5"].evidence)


def test_without_the_monitoring_dag_monitoring_and_feedback_are_gaps(tmp_path) -> None:
    from sluice.airflow.inventory import dag_inventory

    folder = tmp_path / "dags"
    shutil.copytree(DAGS_DIR, folder, ignore=shutil.ignore_patterns("monitoring.py", "__pycache__"))
    dags, errors = dag_inventory(folder)
    assert errors == {} and "loans_monitoring" not in dags
    by_id = rows(conformance.assess(get_model_config("loans"), dags, conformance.Records()))
    assert by_id["P8"].status == by_id["C9"].status == "missing"
    assert by_id["P8"].missing == ("drift of every interval", "live performance on delayed labels")
    assert by_id["P9"].status == by_id["P6"].status == "partial"
    assert "monitoring triggers retraining" in by_id["P9"].missing
    assert by_id["P4"].status == by_id["C4"].status == "designed"  # the rest is untouched
    assert by_id["C3"].status == "missing" and by_id["P2"].status == "partial"  # no longer five DAGs
    report = conformance.assess(get_model_config("loans"), dags, conformance.Records())
    assert "P8  Continuous monitoring" in conformance.render_text([report])
    parsed = json.loads(conformance.render_json([report]))
    assert {r["id"] for r in parsed["models"][0]["rows"] if r["status"] == "missing"} == {"P8", "C9", "C3"}
