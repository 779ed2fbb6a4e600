"""Deployment end to end on the embedded stack: Airflow's scheduler, triggerer and LocalExecutor, the stack's
MLflow server, the SMTP sink, real model servers behind the stable address.

1. a challenger passes infra validation and becomes champion (first deploy: the router comes up);
2. a second challenger is deployed blue/green while a load loop hammers the stable address: no failed request;
3. a version whose artifact was corrupted after registration is refused by infra validation; the owners get
   a mail saying why; the champion keeps serving and the alias does not move;
4. ``python -m sluice models history`` shows every alias move, and ``models rollback`` returns to the
   previous champion in one step;
5. the DAG's ``action=rollback`` Param does the same from the UI.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from machine import shared_machine_budgets

from sluice.alerts.mailsink import read_outbox
from sluice.config import MODELS_DIR, get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.lake import open_lake
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from sluice.serving.client import LoadLoop, ServerClient
from sluice.training.job import register_pipeline
from sluice.training.model import feature_columns, fit
from sluice.training.snapshot import build_snapshot

pytestmark = pytest.mark.e2e

STACK_SERVICES = ("mailsink", "mlflow", "airflow")


def _config() -> dict:
    data = shared_machine_budgets(yaml.safe_load((MODELS_DIR / "loans.yaml").read_text()))
    data["training"]["estimator"]["params"]["max_iter"] = 50  # the journey deploys models, not better ones
    # every deployment validates the version in a fresh server; 50 single-row requests show it answers with the
    # right schema (latency is not this journey's subject: see docs/testing.md), 200 took 4-6 s more each time
    data["deploy"]["infra_validation"]["sample_rows"] = 50
    return data


STACK_MODELS = {"loans.yaml": _config()}
DAG = "loans_deployment"
START, DAYS = dt.date(2025, 1, 1), 8
REPO = Path(__file__).resolve().parents[2]


def trigger(api, **conf) -> str:
    run = api.call("POST", f"/dags/{DAG}/dagRuns", json={"logical_date": None, "conf": conf})
    return run["dag_run_id"]


def wait_run(api, run_id: str, timeout: float = 300) -> tuple[str, dict[str, str]]:
    """The run's final state and its {task_id: state}."""
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        state = api.call("GET", f"/dags/{DAG}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            break
        time.sleep(1)
    tis = api.call("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return state, {t["task_id"]: t["state"] for t in tis}


def until(done, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.1)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'include'}:{REPO / 'plugins'}"}
    return subprocess.run([sys.executable, "-m", "sluice", *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_blue_green_under_load_refused_artifact_history_and_rollback(stack) -> None:
    settings, api = stack
    cfg = get_model_config("loans")
    lake = open_lake()
    seed_feature_store(cfg, lake, START, DAYS, rows_per_day=700)
    frame = build_snapshot(cfg, lake, START + dt.timedelta(days=DAYS - 1), DAYS).frame
    registry = Registry(settings.mlflow_url)
    model, example = fit(cfg, frame), frame[feature_columns(cfg)].head(3)
    port = int(os.environ["SLUICE_SERVING_PORT_LOANS"])
    api.wait_for_dag(DAG)
    api.call("PATCH", f"/dags/{DAG}", json={"is_paused": False})

    # 1. first challenger -> champion
    v1, _ = register_pipeline(registry, cfg, model, example)
    registry.set_alias(cfg.name, CHALLENGER, v1)
    state, tis = wait_run(api, trigger(api))
    assert state == "success", tis
    assert registry.by_alias(cfg.name, CHAMPION).version == v1

    # 2. blue/green under load
    v2, _ = register_pipeline(registry, cfg, fit(cfg, frame.sample(frac=0.9, random_state=2)), example)
    registry.set_alias(cfg.name, CHALLENGER, v2)
    loop = LoadLoop(port, example.head(1).to_dict(orient="records"), pause_s=0.01)
    loop.start()
    until(lambda: len(loop.ok) >= 20 or loop.failed, "the load loop got no answers from v1")
    state, tis = wait_run(api, trigger(api))
    switched = len(loop.ok)  # then some answers after the run: the asserts below see what clients saw after it
    until(lambda: len(loop.ok) >= switched + 20 or loop.failed or state != "success", "no answers after the run")
    loop.stop()
    assert state == "success", tis
    assert loop.failed == [], loop.failed[:5]
    assert loop.ok[0] == v1 and loop.ok[-1] == v2 and v1 not in loop.ok[loop.ok.index(v2) :]
    assert registry.by_alias(cfg.name, CHAMPION).version == v2 and registry.by_alias(cfg.name, CHALLENGER) is None

    # 3. an artifact corrupted after registration is refused; v2 keeps serving
    v3, info = register_pipeline(registry, cfg, fit(cfg, frame.sample(frac=0.8, random_state=3)), example)
    registry.set_alias(cfg.name, CHALLENGER, v3)
    [stored] = [p for p in (settings.home / "mlflow").rglob("model.skops") if info["model_id"] in str(p)]
    stored.write_bytes(stored.read_bytes()[:-64] + b"\0" * 64)
    state, tis = wait_run(api, trigger(api))
    assert state == "failed" and tis["infra_validate"] == "failed", tis
    assert tis["deploy"] == "upstream_failed" and tis["set_champion"] == "upstream_failed", tis
    assert registry.by_alias(cfg.name, CHAMPION).version == v2
    status, payload, headers = ServerClient(port).score(example.to_dict(orient="records"))
    assert status == 200 and headers["x-sluice-model-version"] == v2 and len(payload["predictions"]) == 3
    mails = read_outbox(settings.outbox)
    refused = [m for m in mails if m["Subject"] == f"[sluice] loans: v{v3} NOT deployed, infra validation failed"]
    assert len(refused) == 1, [m["Subject"] for m in mails]
    body = refused[0].get_body(("plain",)).get_content()
    assert "artifact_sha256" in body and "changed after registration" in body and f"Still serving: v{v2}" in body
    assert len(mails) == 1, "one mail for the refusal, no generic failure mail on top"

    # 4. the ledger, and a one-step rollback from the command line
    history = cli("models", "history", "loans")
    assert history.returncode == 0, history.stderr
    assert f"champion v{v2}" in history.stdout and f"challenger v{v3}" in history.stdout
    assert history.stdout.count(DAG) == 4, history.stdout  # champion x2 + challenger cleared x2, from DAG runs
    back = cli("models", "rollback", "loans")
    assert back.returncode == 0, back.stderr
    assert f"champion v{v2} -> v{v1}" in back.stdout
    status, _, headers = ServerClient(port).score(example.head(1).to_dict(orient="records"))
    assert status == 200 and headers["x-sluice-model-version"] == v1
    last = cli("models", "history", "loans", "--json")
    assert '"who": "cli:' in last.stdout and f'"to": "{v1}"' in last.stdout

    # 5. the same rollback from the UI: Trigger DAG w/ config {"action": "rollback"} toggles back to v2
    state, tis = wait_run(api, trigger(api, action="rollback"))
    assert state == "success", tis
    assert registry.by_alias(cfg.name, CHAMPION).version == v2
    status, _, headers = ServerClient(port).score(example.head(1).to_dict(orient="records"))
    assert status == 200 and headers["x-sluice-model-version"] == v2
    assert ledger_whys(registry)[-1] == f"rollback from v{v1} to the previous champion v{v2}"


def ledger_whys(registry) -> list[str]:
    from sluice.registry import ledger

    return [e["why"] for e in ledger.history(registry, "loans") if e["alias"] == CHAMPION]
