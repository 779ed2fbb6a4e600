"""The scoring app refuses every kind of bad request with a 4xx that names the problem; never a 500."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.features.pipeline import build_features
from sluice.serving.app import create_app
from sluice.training.model import feature_columns, fit

CFG = get_model_config("loans")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    days = [dt.date(2025, 1, d) for d in (2, 3)]
    feats = pd.concat([build_features(loans.generate_events(d, seed=4, rows_per_day=600), CFG) for d in days])
    labels = pd.concat([loans.generate_labels_for(d, seed=4, rows_per_day=600) for d in days])
    return feats.merge(labels[["application_id", "defaulted"]], on="application_id")


@pytest.fixture(scope="module")
def client(frame) -> TestClient:
    return TestClient(create_app(fit(CFG, frame), CFG, model_version="3", max_body_bytes=20_000, max_rows=5))


@pytest.fixture
def record(frame) -> dict:
    return json.loads(frame[feature_columns(CFG)].head(1).to_json(orient="records"))[0]


def post(client, payload, **kw):
    return client.post("/invocations", content=json.dumps(payload), headers={"Content-Type": "application/json"}, **kw)


def test_valid_request_scores(client, record) -> None:
    r = post(client, {"records": [record, record]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "3" and len(body["predictions"]) == 2 and 0 <= body["predictions"][0] <= 1


def test_nulls_are_imputed_not_refused(client, record) -> None:
    r = post(client, {"records": [{**record, "age": None, "region": None}]})
    assert r.status_code == 200, r.text


BAD = [
    (
        "missing field",
        lambda r: {"records": [{k: v for k, v in r.items() if k != "age"}]},
        422,
        "missing fields ['age']",
    ),
    ("extra field", lambda r: {"records": [{**r, "zip": "10115"}]}, 422, "unknown fields ['zip']"),
    (
        "string for a number",
        lambda r: {"records": [{**r, "age": "1.5"}]},
        422,
        "records[0].age: must be a JSON number, got str '1.5'",
    ),
    (
        "bool for a number",
        lambda r: {"records": [{**r, "age": True}]},
        422,
        "records[0].age: must be a JSON number, got bool",
    ),
    (
        "number for a category",
        lambda r: {"records": [{**r, "region": 3}]},
        422,
        "records[0].region: must be a JSON string, got int 3",
    ),
    ("too many rows", lambda r: {"records": [r] * 6}, 413, "6 records exceed the limit of 5"),
    ("no records key", lambda r: {"dataframe_records": [r]}, 422, 'exactly one key "records"'),
    ("empty records", lambda r: {"records": []}, 422, "non-empty list"),
    ("top-level list", lambda r: [r], 422, 'exactly one key "records", got list'),
    ("row not an object", lambda r: {"records": [[1, 2]]}, 422, "records[0]: must be an object, got list"),
]


@pytest.mark.parametrize(("kind", "make", "status", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_a_4xx_that_names_the_problem(client, record, kind, make, status, needle) -> None:
    r = post(client, make(record))
    assert r.status_code == status, (kind, r.text)
    assert needle in r.json()["error"], r.json()
    assert "Traceback" not in r.text


def test_oversized_body_is_refused(client, record) -> None:
    r = post(client, {"records": [{**record, "purpose": "x" * 30_000}]})
    assert r.status_code == 413 and "exceeds the limit of 20000" in r.json()["error"]


def test_not_json_and_wrong_content_type(client) -> None:
    r = client.post("/invocations", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = client.post("/invocations", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 415 and "text/csv" in r.json()["error"]


def test_a_broken_model_answers_without_a_stack_trace(record) -> None:
    class Broken:
        feature_names_in_ = feature_columns(CFG)
        classes_ = [0, 1]

        def predict_proba(self, frame):
            raise RuntimeError("corrupted artifact")

    r = post(TestClient(create_app(Broken(), CFG, model_version="9")), {"records": [record]})
    assert r.status_code == 500 and "RuntimeError" in r.json()["error"]
    assert "corrupted artifact" not in r.text and "Traceback" not in r.text


def test_ping(client) -> None:
    assert client.get("/ping").json() == {"status": "ok", "model": "loans", "model_version": "3", "model_sha256": ""}


def test_non_finite_json_literals_are_refused(client, record) -> None:
    body = json.dumps({"records": [{**record, "age": 1.0}]}).replace('"age": 1.0', '"age": NaN')
    r = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "records[0].age: must be finite, got nan" in r.json()["error"]


def test_the_answer_names_the_version_in_a_header(client, record) -> None:
    r = post(client, {"records": [record, record]})
    assert r.status_code == 200 and r.headers["X-Sluice-Model-Version"] == "3"
    assert len(r.json()["predictions"]) == 2
