"""The router passes the model server's answer headers on: the version that answered and the counts of
categories the model never saw (a real uvicorn model server on loopback behind the router app)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
import uvicorn
from starlette.testclient import TestClient

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.features.pipeline import build_features
from sluice.runtime import free_port
from sluice.serving.app import create_app
from sluice.serving.router import create_router
from sluice.training.model import feature_columns, fit

pytestmark = pytest.mark.unit

CFG = get_model_config("loans")


@pytest.fixture(scope="module")
def served():
    """(port, one valid record): a fitted loans model served by uvicorn in a thread."""
    day = dt.date(2025, 1, 2)
    feats = build_features(loans.generate_events(day, seed=5, rows_per_day=500), CFG)
    labels = loans.generate_labels_for(day, seed=5, rows_per_day=500)
    frame = feats.merge(labels[["application_id", "defaulted"]], on="application_id")
    record = json.loads(frame[feature_columns(CFG)].head(1).to_json(orient="records"))[0]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(fit(CFG, frame), CFG, model_version="6"), "127.0.0.1", port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the model server did not start in 60 s"
    yield port, record
    server.should_exit = True
    thread.join(10)


def test_the_router_passes_on_the_version_and_unknown_category_headers(served, tmp_path) -> None:
    port, record = served
    state = tmp_path / "live.json"
    state.write_text(json.dumps({"version": "6", "port": port}))
    with TestClient(create_router(state)) as router:
        body = {"records": [{**record, "region": "atlantis"}, record]}
        r = router.post("/invocations", content=json.dumps(body), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Sluice-Model-Version"] == "6"
        assert r.headers["X-Sluice-Unknown-Categories"] == "region=1"
        known = router.post(
            "/invocations", content=json.dumps({"records": [record]}), headers={"Content-Type": "application/json"}
        )
        assert known.status_code == 200 and "X-Sluice-Unknown-Categories" not in known.headers
