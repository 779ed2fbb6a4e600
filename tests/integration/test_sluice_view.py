"""The Sluice view reads a real MLflow registry: aliases, gate evidence, candidates, the ledger; escaped."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from sluice.config import get_model_config
from sluice.overview import model_state
from sluice.registry import ledger
from sluice.registry.mlflow_registry import Registry

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def registered(mlflow_server):
    registry = Registry(mlflow_server)
    cfg = get_model_config("loans").model_copy(update={"name": f"loans_{uuid.uuid4().hex[:8]}"})
    exp = registry.experiment_id(cfg.name)
    lineage = {"airflow.dag_id": f"{cfg.name}_training", "airflow.run_id": "manual__2025-01-12T00:00:00+00:00"}
    champ = registry.client.create_run(exp, tags={"gate.decision": "PASS", "sluice.state": "promoted", **lineage})
    rid = champ.info.run_id
    registry.client.log_dict(rid, {"decision": "PASS", "reasons": [f"beats the baseline {XSS}"]}, "gate_decision.json")
    registry.client.log_text(rid, "<p>the gate report</p>", "gate_report.html")
    registry.client.create_registered_model(cfg.name)
    mv = registry.client.create_model_version(cfg.name, f"runs:/{rid}/model", run_id=rid)
    registry.set_alias(cfg.name, "champion", mv.version)
    ledger.append(
        registry,
        cfg.name,
        alias="champion",
        from_version=None,
        to_version=mv.version,
        why=f"first champion {XSS}",
        who="test",
        dag_id=f"{cfg.name}_deployment",
        run_id="manual__2025-01-12",
        evidence=f"runs:/{rid}/gate_decision.json",
    )
    waiting = registry.client.create_run(
        exp, tags={"gate.decision": "INCONCLUSIVE", "sluice.state": "awaiting_approval", **lineage}
    )
    return cfg, registry, rid, waiting.info.run_id


def test_model_state_reads_aliases_gate_reasons_candidates_and_ledger(registered) -> None:
    cfg, registry, rid, waiting = registered
    state = model_state(cfg, None, registry)
    assert state["errors"] == []
    (champ,) = state["versions"]
    assert champ["alias"] == "champion" and champ["gate_decision"] == "PASS" and champ["run_id"] == rid
    assert champ["reasons"] == [f"beats the baseline {XSS}"]
    pending = {c["run_id"]: c["awaiting_approval"] for c in state["candidates"]}
    assert pending == {rid: False, waiting: True}
    assert [e["why"] for e in state["ledger"]] == [f"first champion {XSS}"]


def test_model_page_renders_the_registry_escaped_and_serves_gate_evidence(registered, monkeypatch, lake_root) -> None:
    from sluice_plugin import sluice_app

    from sluice.airflow.ui import view
    from sluice.airflow.ui.guard import require_user

    cfg, registry, rid, waiting = registered
    monkeypatch.setattr(view, "_configs", lambda: ({cfg.name: cfg}, None))
    # no Airflow DAG of this model name exists: its approval task is the one the training DAGs define
    monkeypatch.setattr(view, "approval_task", lambda dag_id: "approve" if dag_id == f"{cfg.name}_training" else None)
    sluice_app.dependency_overrides[require_user] = lambda: "tester"
    try:
        client = TestClient(sluice_app, base_url="http://127.0.0.1")
        page = client.get(f"/ui/models/{cfg.name}")
        report = client.get(f"/ui/models/{cfg.name}/runs/{rid}/gate_report.html")
        other_model = client.get(f"/ui/models/{cfg.name}/runs/{'f' * 32}/gate_report.html")
        listing = client.get("/ui/")
    finally:
        sluice_app.dependency_overrides.clear()
    assert page.status_code == 200, page.text
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert f'href="/ui/models/{cfg.name}/runs/{rid}/gate_report.html"' in page.text
    assert re.search(rf'href="[^"]*/dags/{cfg.name}_training/runs/[^"]*/tasks/approve"', page.text), "approval link"
    assert f"/#/experiments/{registry.experiment_id(cfg.name)}/runs/{rid}" in page.text
    assert report.status_code == 200 and report.text == "<p>the gate report</p>"
    assert "sandbox" in report.headers["content-security-policy"]
    assert other_model.status_code == 404
    assert listing.status_code == 200 and f'href="/ui/models/{cfg.name}"' in listing.text


def test_conformance_page_shows_designed_and_exercised_rows_escaped(registered, monkeypatch, lake_root) -> None:
    from sluice_plugin import sluice_app

    from sluice.airflow.ui import view
    from sluice.airflow.ui.guard import require_user
    from sluice.conformance import DagFacts, TaskFacts

    cfg, registry, rid, waiting = registered
    ops = {
        "features": ("ValidateLandingOperator", "PublishFeaturesOperator"),
        "training": ("TrainModelOperator", "EvaluateModelOperator", "GateOperator", "PromoteModelOperator"),
        "deployment": ("InfraValidateOperator", "DeployOperator", "SetChampionOperator"),
        "batch_inference": ("BatchScoreOperator",),
        "monitoring": ("DriftSensor",),  # no performance check, no retraining: P8 and C9 partial
    }
    dags = {
        cfg.dag_id(kind): DagFacts(cfg.dag_id(kind), "@daily", tuple(TaskFacts(f"{XSS}{op}", op) for op in names))
        for kind, names in ops.items()
    }
    monkeypatch.setattr(view, "_configs", lambda: ({cfg.name: cfg}, None))
    monkeypatch.setattr(view, "_inventory", lambda: (dags, {}))
    sluice_app.dependency_overrides[require_user] = lambda: "tester"
    try:
        client = TestClient(sluice_app, base_url="http://127.0.0.1")
        html = client.get(f"/ui/models/{cfg.name}/conformance")
        data = client.get(f"/ui/models/{cfg.name}/conformance.json")
        model_page = client.get(f"/ui/models/{cfg.name}")
        unknown = client.get("/ui/models/no_such_model/conformance")
    finally:
        sluice_app.dependency_overrides.clear()
    assert html.status_code == 200, html.text
    assert "<img" not in html.text and "&lt;img src=x onerror=alert(1)&gt;" in html.text
    rows = {r["id"]: r for r in data.json()["models"][0]["rows"]}
    assert rows["C6"]["status"] == "covered", rows["C6"]
    assert rows["C6"]["exercised"] == "1 registered versions (champion=v1); 1 ledger entries"
    assert rows["P8"]["status"] == "partial" and rows["P8"]["missing"] == ["live performance on delayed labels"]
    assert rows["P5"]["status"] == "partial" and "a person decides an INCONCLUSIVE gate" in rows["P5"]["missing"]
    assert "P8" in html.text and "live performance on delayed labels" in html.text
    assert f'href="/ui/models/{cfg.name}/conformance"' in model_page.text
    assert unknown.status_code == 404
