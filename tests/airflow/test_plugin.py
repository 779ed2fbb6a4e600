"""The Sluice plugin serves lake evidence (quarantine records, reports) through the API server, read-only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(lake_root):
    from sluice_plugin import lake_app

    from sluice.lake import open_lake

    lake = open_lake()
    lake.put_files(
        "quarantine/loans/ds=2025-01-12/abc", {"data_docs.html": b"<html>docs</html>", "_RECORD.json": b"{}"}
    )
    lake.put_landing("landing", "loans", "2025-01-12", {"part-00000.parquet": b"raw"})
    return TestClient(lake_app)


def test_serves_quarantine_evidence_with_its_media_type(client) -> None:
    r = client.get("/lake/quarantine/loans/ds=2025-01-12/abc/data_docs.html")
    assert r.status_code == 200 and r.text == "<html>docs</html>" and r.headers["content-type"].startswith("text/html")


def test_lists_a_record_folder(client) -> None:
    r = client.get("/lake/quarantine/loans/ds=2025-01-12/abc")
    assert r.status_code == 200 and "/sluice/lake/quarantine/loans/ds=2025-01-12/abc/data_docs.html" in r.text


@pytest.mark.parametrize(
    "path",
    ["/lake/landing/loans/ds=2025-01-12/part-00000.parquet", "/lake/quarantine/../landing/x", "/lake/reports/.hidden"],
)
def test_refuses_raw_data_traversal_and_hidden_files(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 404


def test_missing_object_is_a_404_that_names_it(client) -> None:
    r = client.get("/lake/reports/loans/drift/nope.html")
    assert r.status_code == 404 and "reports/loans/drift/nope.html" in r.json()["detail"]
