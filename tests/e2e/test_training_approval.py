"""Human in the loop for an INCONCLUSIVE gate, on the embedded stack (scheduler, api-server, MLflow, SMTP sink).

1. the training DAG triggered with no conf at all (its Params' defaults) trains the first model: gate PASS,
   nothing to approve, promoted; the deployment DAG makes it champion;
2. a retrain on the same window is INCONCLUSIVE (``inconclusive.py``); the owners get the approval request with
   the address of the form; approved through the REST HITL endpoint, it is promoted and deployed;
3. the next INCONCLUSIVE candidate is rejected: nothing moves. Both decisions are in the ledger with the user.
"""

from __future__ import annotations

import datetime as dt

import pytest
from inconclusive import (
    DEPLOYMENT,
    TRAINING,
    answer,
    inconclusive_model_config,
    trigger,
    wait_for_approval,
    wait_run,
)

from sluice.alerts.mailsink import read_outbox
from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.lake import open_lake
from sluice.registry import ledger
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

pytestmark = pytest.mark.e2e

STACK_SERVICES = ("mailsink", "mlflow", "airflow")
STACK_MODELS = {"loans.yaml": inconclusive_model_config()}
START, DAYS = dt.date(2025, 1, 1), 14


def mails(settings, subject_part: str) -> list:
    return [m for m in read_outbox(settings.outbox) if subject_part in m["Subject"]]


@pytest.mark.timeout(5400)  # three trainings and two deployments on a shared 2-core machine
def test_inconclusive_waits_for_a_person_approved_is_deployed_rejected_is_not(stack) -> None:
    settings, api = stack
    cfg = get_model_config("loans")
    seed_feature_store(cfg, open_lake(), START, DAYS, rows_per_day=1000)
    registry = Registry(settings.mlflow_url)
    for dag in (TRAINING, DEPLOYMENT):
        api.wait_for_dag(dag)
        api.call("PATCH", f"/dags/{dag}", json={"is_paused": False})

    # 1. no conf: the Params' defaults are enough (the UI's trigger form with nothing filled in)
    first = trigger(api, TRAINING)
    state, tis = wait_run(api, TRAINING, first)
    assert state == "success" and tis["approve"] == "success" and tis["promote"] == "success", tis
    v1 = registry.by_alias("loans", CHALLENGER).version
    api.wait_runs(DEPLOYMENT, lambda rs: len(rs) == 1 and rs[0]["state"] == "success", timeout=1800)
    assert registry.by_alias("loans", CHAMPION).version == v1

    # 2. INCONCLUSIVE -> waits; the owners are asked; approved over REST -> promoted and deployed
    second = trigger(api, TRAINING, {"force": True, "note": "same window again"})
    form = wait_for_approval(api, second)
    assert form["options"] == ["Approve", "Reject"] and form["defaults"] == ["Reject"]
    assert "INCONCLUSIVE" in form["body"] and "non\\_inferiority" in form["body"] and "Gate report" in form["body"]
    assert "why" in form["params"] and form["response_received"] is False
    (ask,) = mails(settings, "APPROVAL NEEDED")
    assert ask["Date"] and ask["Message-ID"]
    assert f"/dags/{TRAINING}/runs/" in ask.get_body(("plain",)).get_content()
    assert "/tasks/approve/required_actions" in ask.get_body(("html",)).get_content()
    assert registry.by_alias("loans", CHAMPION).version == v1  # nothing moved while it waits

    answer(api, second, "Approve", "same model, same data: <b>fine</b> to redeploy")
    state, tis = wait_run(api, TRAINING, second)
    assert state == "success" and tis["approve"] == "success" and tis["promote"] == "success", tis
    v2 = registry.by_alias("loans", CHALLENGER).version
    assert int(v2) > int(v1)
    api.wait_runs(DEPLOYMENT, lambda rs: len(rs) == 2 and all(r["state"] == "success" for r in rs), timeout=1800)
    assert registry.by_alias("loans", CHAMPION).version == v2
    version = registry.client.get_model_version("loans", v2)
    assert version.tags["gate.decision"] == "INCONCLUSIVE" and version.tags["approval.by"] == "airflow:admin"
    (decided,) = mails(settings, "APPROVED by airflow:admin")
    assert "&lt;b&gt;fine&lt;/b&gt;" in decided.get_body(("html",)).get_content()

    # 3. the next one is rejected: nothing moves, the run succeeds with promote skipped
    third = trigger(api, TRAINING, {"force": True})
    wait_for_approval(api, third)
    answer(api, third, "Reject", "no gain, no need")
    state, tis = wait_run(api, TRAINING, third)
    assert state == "success" and tis["approve"] == "success" and tis["promote"] == "skipped", tis
    assert registry.by_alias("loans", CHAMPION).version == v2 and registry.by_alias("loans", CHALLENGER) is None
    assert len(mails(settings, "REJECTED by airflow:admin")) == 1

    entries = ledger.history(registry, "loans")
    decisions = [(e["decision"], e["who"], e["to"]) for e in entries if e.get("decision")]
    assert decisions == [("approved", "airflow:admin", v2), ("rejected", "airflow:admin", None)], entries
    assert entries[-1]["why"].endswith("rejected by airflow:admin: no gain, no need")
    assert all(e.get("dag_id") for e in entries)
