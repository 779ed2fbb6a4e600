"""The Sluice view's links for a training run waiting for a person: to the approval task of its DAG run, by the
id the DAG defines (``approval_task``), or to the run when that cannot be read."""

from __future__ import annotations

from types import SimpleNamespace

from sluice.airflow.ui.view import _candidates_html, _Links

WAITING = {
    "run_id": "0123456789abcdef0123456789abcdef",
    "experiment_id": "7",
    "started": "2025-01-24T00:00:00+00:00",
    "gate_decision": "INCONCLUSIVE",
    "state": "awaiting_approval",
    "dag_id": "loans_training",
    "dag_run_id": "manual__2025-01-24",
    "awaiting_approval": True,
}


def links() -> _Links:
    request = SimpleNamespace(scope={"root_path": "/pluginsv2/sluice"})
    return _Links(request, "http://mlflow.test")  # type: ignore[arg-type]


def test_the_decide_link_goes_to_the_task_the_dag_defines() -> None:
    asked: list[str] = []

    def approval(dag_id: str) -> str:
        asked.append(dag_id)
        return "ask_a_person"

    page = _candidates_html("loans", [WAITING], links(), approval)
    assert asked == ["loans_training"]
    assert 'href="/pluginsv2/dags/loans_training/runs/manual__2025-01-24/tasks/ask_a_person"' in page


def test_without_the_dag_the_link_goes_to_the_run_not_a_guessed_task() -> None:
    page = _candidates_html("loans", [WAITING], links(), lambda dag_id: None)
    assert 'href="/pluginsv2/dags/loans_training/runs/manual__2025-01-24"' in page and "/tasks/" not in page


def test_a_run_not_waiting_has_no_decide_link() -> None:
    done = {**WAITING, "awaiting_approval": False, "state": "approved"}
    page = _candidates_html("loans", [done], links(), lambda dag_id: "approve")
    assert "waiting for approval" not in page
