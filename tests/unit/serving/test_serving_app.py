"""The scoring app refuses every kind of bad request with a 4xx that names the problem; never a 500."""

from __future__ import annotations

import datetime as dt
import json
import random

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
def model(frame):
    return fit(CFG, frame)


@pytest.fixture(scope="module")
def client(model) -> TestClient:
    return TestClient(create_app(model, CFG, model_version="3", max_body_bytes=20_000, max_rows=5))


@pytest.fixture(scope="module")
def roomy(model) -> TestClient:
    """The server's default limits (1 MB, 1000 rows): room for the bodies a parser chokes on."""
    return TestClient(create_app(model, CFG, model_version="4"), raise_server_exceptions=False)


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


def raw(client, body: bytes | str):
    return client.post("/invocations", content=body, headers={"Content-Type": "application/json"})


def _record_body(record: dict, field: str, literal: str) -> str:
    """A one-record body with ``field``'s value written as a raw JSON literal (json.dumps cannot write these)."""
    return json.dumps({"records": [{**record, field: "__HOLE__"}]}).replace('"__HOLE__"', literal)


DEEP = 10_000
MALFORMED = [
    ("10,000 nested arrays", lambda r: "[" * DEEP + "]" * DEEP, 400, "nests arrays or objects deeper"),
    ("10,000 nested objects", lambda r: '{"a":' * DEEP + "1" + "}" * DEEP, 400, "nests arrays or objects deeper"),
    (
        "10,000 nested arrays in a field",
        lambda r: _record_body(r, "age", "[" * DEEP + "]" * DEEP),
        400,
        "nests arrays or objects deeper",
    ),
    ("10**400 for a number", lambda r: _record_body(r, "age", str(10**400)), 422, "records[0].age: must be within"),
    ("-10**400 for a number", lambda r: _record_body(r, "age", str(-(10**400))), 422, "must be within the float"),
    ("a 5,000-digit number", lambda r: _record_body(r, "age", "9" * 5000), 400, "more than 4300 digits"),
    ("a 5,000-digit category", lambda r: _record_body(r, "region", "9" * 5000), 400, "more than 4300 digits"),
    (
        "10**400 for a category",
        lambda r: _record_body(r, "region", str(10**400)),
        422,
        "must be a JSON string, got int",
    ),
    ("1e400 overflows to inf", lambda r: _record_body(r, "age", "1e400"), 422, "must be finite, got inf"),
    ("-Infinity literal", lambda r: _record_body(r, "age", "-Infinity"), 422, "must be finite, got -inf"),
    ("500 nested arrays", lambda r: _record_body(r, "age", "[" * 500 + "]" * 500), 422, "got list [...]"),
    ("an object for a category", lambda r: _record_body(r, "region", '{"a": 1}'), 422, "got dict {...}"),
    ("a long string for a number", lambda r: _record_body(r, "age", json.dumps("x" * 50_000)), 422, "xxx..."),
    ("not UTF-8", lambda r: b'{"records": [\xff\xfe]}', 400, "not valid JSON"),
    ("empty body", lambda r: b"", 400, "not valid JSON"),
    ("null", lambda r: "null", 422, 'exactly one key "records", got NoneType'),
    ("records null", lambda r: '{"records": null}', 422, "non-empty list"),
]


@pytest.mark.parametrize(("kind", "make", "status", "needle"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_body_the_parser_chokes_on_gets_a_4xx_json_error(roomy, record, kind, make, status, needle) -> None:
    r = raw(roomy, make(record))
    assert r.status_code == status, (kind, r.status_code, r.text[:300])
    assert needle in r.json()["error"], r.json()
    assert "Traceback" not in r.text and len(r.text) < 2_000, r.text[:300]


ODD_VALUES = [None, True, False, 0, -1, 1.5, 1e308, "", "x", " ", "1.5", [], {}, [1], {"a": 1}, 10**30]
ODD_LITERALS = ["NaN", "Infinity", "1e999", str(10**400), "9" * 4301, "[" * 2000 + "]" * 2000, '"\\ud800"']


def test_no_malformed_body_gets_a_5xx(roomy, record) -> None:
    """Every field swapped for every odd value and literal, and truncations and byte flips of a valid body:
    a 200 or a 4xx with the JSON error shape, never a 5xx."""
    bodies: list[str | bytes] = []
    for field in record:
        bodies += [json.dumps({"records": [{**record, field: v}]}) for v in ODD_VALUES]
        bodies += [_record_body(record, field, lit) for lit in ODD_LITERALS]
    valid = json.dumps({"records": [record, record]}).encode()
    rng = random.Random(13)
    bodies += [valid[: rng.randrange(len(valid))] for _ in range(60)]
    for _ in range(120):
        flipped = bytearray(valid)
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        bodies.append(bytes(flipped))
    answers = [(body, raw(roomy, body)) for body in bodies]
    bad = [(str(body)[:120], r.status_code, r.text[:120]) for body, r in answers if r.status_code >= 500]
    assert not bad, bad
    shapeless = [
        (str(body)[:120], r.text[:120]) for body, r in answers if r.status_code != 200 and "error" not in r.json()
    ]
    assert not shapeless, shapeless
    assert {r.status_code for _, r in answers} >= {200, 400, 422}


def test_an_unknown_category_is_scored_and_counted(model, record) -> None:
    client = TestClient(create_app(model, CFG, model_version="5"))
    known = post(client, {"records": [record]})
    assert known.status_code == 200 and "X-Sluice-Unknown-Categories" not in known.headers
    rows = [
        {**record, "region": "atlantis"},
        {**record, "region": "atlantis", "channel": "carrier pigeon"},
        {**record, "region": None},  # missing is imputed, never unknown
    ]
    r = post(client, {"records": rows})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    assert r.headers["X-Sluice-Unknown-Categories"] == "channel=1,region=2"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'sluice_unknown_category_values_total{model="loans",version="5",column="region"} 2' in text
    assert 'sluice_unknown_category_values_total{model="loans",version="5",column="channel"} 1' in text
    assert 'sluice_rows_scored_total{model="loans",version="5"} 4' in text
    assert 'sluice_requests_total{model="loans",version="5",status="200"} 2' in text
    post(client, {"records": []})
    assert 'status="422"} 1' in client.get("/metrics").text
