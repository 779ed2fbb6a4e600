"""A deterministic INCONCLUSIVE gate, for the approval tests (REST here, the browser tier elsewhere).

Recipe: the loans model with ``gate.non_inferiority_margin: 0``. Train once (no champion: floors only, PASS),
deploy it (champion), then retrain with ``force`` on the same window: the snapshot, the seed and so the model
are identical, every bootstrap difference is exactly 0, and the interval [0, 0] straddles the margin 0:
``non_inferiority`` is INCONCLUSIVE, every other rule passes. The training run then waits in ``approve``.
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from sluice.config import MODELS_DIR

TRAINING, DEPLOYMENT = "loans_training", "loans_deployment"
APPROVE_TASK = "approve"
#: Seconds a test waits after the approval request appears before it answers, as a person would. Answered
#: within about 5 s, Airflow 3.3's scheduler can process the LocalExecutor's "success" event of the attempt
#: that paused for input only after the answer has requeued the task; it then marks the resumed task
#: UP_FOR_RETRY ("finished with state success, but the task instance's state attribute is queued"), and the
#: retry asks again. Seen once in CI (the browser tier's Reject); docs/testing.md.
ANSWER_SETTLE_S = 15


def inconclusive_model_config(timeout_hours: float = 1.0) -> dict[str, Any]:
    """loans.yaml with a zero non-inferiority margin (a stack of its own: ``STACK_MODELS``/``SLUICE_MODELS_DIR``)."""
    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["gate"]["non_inferiority_margin"] = 0.0
    data["gate"]["approval"] = {"timeout_hours": timeout_hours}
    # latency budgets a loaded 2-core test machine can meet: this stack is about the approval, not speed
    data["gate"]["max_latency_ms"] = 5000
    data.setdefault("deploy", {})["infra_validation"] = {"max_latency_ms_p95": 5000, "startup_timeout_s": 600}
    return data


def trigger(api, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"logical_date": None}
    if conf is not None:
        body["conf"] = conf
    return api.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]


def task_states(api, dag_id: str, run_id: str) -> dict[str, str]:
    tis = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}


def wait_run(api, dag_id: str, run_id: str, timeout: float = 1800) -> tuple[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        state = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    return state, task_states(api, dag_id, run_id)


def wait_for_approval(api, run_id: str, timeout: float = 1800) -> dict[str, Any]:
    """The pending HITL request of ``approve`` in ``run_id`` (its subject, body, options, params)."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = task_states(api, TRAINING, run_id)
        if states.get(APPROVE_TASK) == "awaiting_input":
            time.sleep(ANSWER_SETTLE_S)
            return api.call("GET", hitl_path(run_id))
        if any(s in ("failed", "upstream_failed") for s in states.values()):
            break
        time.sleep(3)
    raise AssertionError(f"{run_id}: the approval request did not appear: {states}")


def hitl_path(run_id: str) -> str:
    """REST path of the approval form: GET reads it, PATCH answers it."""
    return f"/dags/{TRAINING}/dagRuns/{run_id}/taskInstances/{APPROVE_TASK}/-1/hitlDetails"


#: Airflow 3.3.2 race: an answer that arrives while the worker that parked the task is still exiting resumes the
#: task, then that worker's late "success" event makes the scheduler retry it (a second request). A person takes
#: longer than this to answer; a test waits it out.
PARK_SETTLE_SECONDS = 30


def answer(api, run_id: str, option: str, why: str) -> dict[str, Any]:
    """Approve or Reject as the API's user, the way the UI's form does."""
    time.sleep(PARK_SETTLE_SECONDS)
    return api.call("PATCH", hitl_path(run_id), json={"chosen_options": [option], "params_input": {"why": why}})
