"""The Sluice plugin app: lake evidence and the operator's view, read-only, escaped, contained.

The login itself is checked against a real API server in tests/e2e/test_security.py; here the
dependency that resolves the Airflow user is replaced, except where the test is about its absence.
"""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture
def lake(lake_root):
    from sluice.lake import open_lake

    lake = open_lake()
    lake.put_files(
        "quarantine/loans/ds=2025-01-12/abc",
        {
            "data_docs.html": b"<html>docs</html>",
            "_RECORD.json": json.dumps({"reason": "failed 1: expect_x(grade)"}).encode(),
            "raw/part-00000.parquet": b"PAR1raw",
        },
    )
    lake.put_landing("landing", "loans", "2025-01-12", {"part-00000.parquet": b"raw"})
    return lake


@pytest.fixture
def app():
    from sluice_plugin import sluice_app

    from sluice.airflow.ui.guard import require_user

    sluice_app.dependency_overrides[require_user] = lambda: "tester"
    yield sluice_app
    sluice_app.dependency_overrides.clear()


@pytest.fixture
def client(app, lake):
    return TestClient(app, base_url="http://127.0.0.1:8080")


def test_serves_quarantine_evidence_inline_under_a_sandboxed_csp(client) -> None:
    r = client.get("/lake/quarantine/loans/ds=2025-01-12/abc/data_docs.html")
    assert r.status_code == 200 and r.text == "<html>docs</html>" and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_raw_parquet_is_a_download_never_rendered(client) -> None:
    r = client.get("/lake/quarantine/loans/ds=2025-01-12/abc/raw/part-00000.parquet")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")


def test_lists_a_record_folder_with_relative_links(client) -> None:
    r = client.get("/lake/quarantine/loans/ds=2025-01-12/abc")
    assert r.status_code == 200
    assert 'href="/lake/quarantine/loans/ds%3D2025-01-12/abc/data_docs.html"' in r.text


def test_listing_escapes_hostile_file_names(client, lake) -> None:
    lake.put_files("quarantine/loans/ds=2025-01-13/x", {f"x{XSS}.parquet": b"x"})
    r = client.get("/lake/quarantine/loans/ds=2025-01-13/x/")
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img" not in r.text and "&lt;script&gt;" in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/lake/landing/loans/ds=2025-01-12/part-00000.parquet",
        "/lake/quarantine/../landing/x",
        "/lake/quarantine/%2e%2e/landing/loans",
        "/lake/reports/.hidden",
        "/lake/quarantine/loans%5c..%5c..%5cetc",
        "/lake/quarantine/a%00b",
        "/lake/quarantine/" + "a" * 5000,
        "/lake/quarantine/" + "a/" * 3000,
    ],
)
def test_refuses_raw_data_traversal_hidden_and_oversized_keys(client, path) -> None:
    assert client.get(path).status_code == 404


def test_a_symlink_out_of_the_zone_is_not_served(client, lake_root, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    folder = lake_root / "reports" / "loans"
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, folder / "leak.txt")
    os.symlink(lake_root / "landing", folder / "landing")
    assert client.get("/lake/reports/loans/leak.txt").status_code == 404
    assert client.get("/lake/reports/loans/landing/loans/ds=2025-01-12/part-00000.parquet").status_code == 404
    listing = client.get("/lake/reports/loans/")
    assert "leak.txt" not in listing.text and "top secret" not in listing.text


def test_wrong_host_is_refused_before_anything_runs(app, lake) -> None:
    r = TestClient(app, base_url="http://evil.example.com").get("/lake/quarantine/loans/ds=2025-01-12/abc")
    assert r.status_code == 400 and r.headers["x-content-type-options"] == "nosniff"


def test_no_credentials_no_content(lake) -> None:
    from sluice_plugin import sluice_app

    r = TestClient(sluice_app, base_url="http://127.0.0.1").get(
        "/lake/quarantine/loans/ds=2025-01-12/abc/data_docs.html"
    )
    assert r.status_code == 401 and "docs" not in r.text


def test_only_get_routes_exist(app) -> None:
    methods = {m for route in app.routes if hasattr(route, "methods") for m in route.methods}
    assert methods <= {"GET", "HEAD"}, methods


def test_model_view_lists_models_and_shows_the_timeline(client, lake, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    models = client.get("/ui/")
    assert models.status_code == 200 and 'href="/ui/models/loans"' in models.text
    assert models.headers["content-security-policy"].startswith("default-src 'none'")
    page = client.get("/ui/models/loans")
    assert page.status_code == 200, page.text
    assert "2025-01-12" in page.text and "quarantined" in page.text
    assert 'href="/lake/quarantine/loans/ds%3D2025-01-12/abc/data_docs.html"' in page.text
    assert client.get("/ui/models/nope").status_code == 404


def test_gate_evidence_route_refuses_anything_but_gate_artifacts(client) -> None:
    assert client.get(f"/ui/models/loans/runs/{'a' * 32}/model.skops").status_code == 404
    assert client.get("/ui/models/loans/runs/..%2f..%2fetc/gate_report.html").status_code == 404


def test_extra_links_are_declared_on_their_operators_and_persisted_by_key() -> None:
    """The serialized DAG keeps {name: xcom_key}; the API server reads that XCom (never the Task SDK)."""
    from sluice_plugin import SluicePlugin

    from sluice.airflow.links import DataDocsLink, DriftReportLink, QuarantineLink, keep_link
    from sluice.airflow.monitoring_operators import DriftSensor
    from sluice.airflow.operators import ValidateLandingOperator

    assert not getattr(SluicePlugin, "global_operator_extra_links", [])
    assert {type(x) for x in ValidateLandingOperator.operator_extra_links} == {DataDocsLink, QuarantineLink}
    assert {type(x) for x in DriftSensor.operator_extra_links} == {DriftReportLink}
    op = ValidateLandingOperator(task_id="validate", model="loans")
    keep_link(op, "Data Docs", "http://127.0.0.1:8080/sluice/lake/quarantine/x/data_docs.html")
    assert DataDocsLink().get_link(op, ti_key=None).endswith("/data_docs.html")
    assert QuarantineLink().get_link(op, ti_key=None) == ""


def test_s3_lake_is_served_with_the_same_key_checks(app, s3_lake) -> None:
    from sluice.airflow.hooks import LakeHook

    lake = LakeHook().get_conn()
    lake.put_files("quarantine/loans/ds=2025-01-12/abc", {"data_docs.html": b"<p>docs</p>", "raw/x.parquet": b"PAR1"})
    lake.storage.write_bytes("quarantine/../landing/secret.parquet", b"secret")  # S3 takes any key, even this
    client = TestClient(app, base_url="http://localhost")
    assert client.get("/lake/quarantine/loans/ds=2025-01-12/abc/data_docs.html").text == "<p>docs</p>"
    raw = client.get("/lake/quarantine/loans/ds=2025-01-12/abc/raw/x.parquet")
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert client.get("/lake/quarantine/../landing/secret.parquet").status_code == 404
    assert client.get("/lake/quarantine/%2e%2e/landing/secret.parquet").status_code == 404
