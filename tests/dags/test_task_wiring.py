"""Operators read their upstream XComs by the task ids the DAG file passes them (``*_task`` arguments): each
such id names a task of the same DAG that runs before the operator, so a renamed task cannot leave an
operator reading nothing."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))


def wired(task: Any) -> dict[str, str]:
    """The operator's upstream task-id arguments: attributes named ``<something>_task`` holding a string."""
    return {k: v for k, v in vars(task).items() if k.endswith("_task") and isinstance(v, str)}


def wiring_problems(dag: Any) -> list[str]:
    problems = []
    for task in dag.tasks:
        before = task.get_flat_relative_ids(upstream=True)
        for arg, task_id in wired(task).items():
            if task_id not in before:
                problems.append(f"{dag.dag_id}.{task.task_id}: {arg}={task_id!r} is not a task upstream of it")
    return problems


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.sdk import DAG

    found: dict[str, Any] = {}
    for path in DAG_FILES:
        found.update({k: v for k, v in runpy.run_path(str(path)).items() if isinstance(v, DAG)})
    return found


def test_every_upstream_task_id_names_an_upstream_task(dags: dict[str, Any]) -> None:
    assert [p for dag in dags.values() for p in wiring_problems(dag)] == []


@pytest.mark.parametrize(
    ("dag_id", "expected"),
    [
        (
            "loans_training",
            {
                "train": {"plan_task": "plan"},
                "evaluate": {"train_task": "train"},
                "gate": {"train_task": "train", "evaluate_task": "evaluate"},
                "approve": {"train_task": "train", "evaluate_task": "evaluate", "gate_task": "gate"},
                "promote": {
                    "train_task": "train",
                    "evaluate_task": "evaluate",
                    "gate_task": "gate",
                    "approve_task": "approve",
                },
            },
        ),
        (
            "loans_deployment",
            {
                "infra_validate": {"resolve_task": "resolve"},
                "deploy": {"resolve_task": "resolve"},
                "smoke_test": {"resolve_task": "resolve"},
                "set_champion": {"resolve_task": "resolve", "infra_validate_task": "infra_validate"},
            },
        ),
        (
            "loans_monitoring",
            {"retrain_on_drift": {"signal_task": "drift"}, "retrain_on_decay": {"signal_task": "performance"}},
        ),
        ("loans_batch_inference", {"shadow_ready": {"shadow_task": "shadow_score"}}),
    ],
)
def test_the_dag_files_pass_the_upstream_ids(dags: dict[str, Any], dag_id: str, expected: dict) -> None:
    """The check above sees the arguments (it is not vacuous): these are the wirings the DAG files make."""
    dag = dags[dag_id]
    assert {t.task_id: wired(t) for t in dag.tasks if wired(t)} == expected


def test_a_wrong_upstream_id_is_reported() -> None:
    from airflow.sdk import DAG

    from sluice.airflow.operators import EvaluateModelOperator, PlanTrainingOperator, TrainModelOperator

    with DAG(dag_id="wiring_probe", schedule=None) as dag:
        plan = PlanTrainingOperator(task_id="plan", model="loans")
        train = TrainModelOperator(task_id="train", model="loans", plan_task="plan")
        evaluate = EvaluateModelOperator(task_id="evaluate", model="loans", train_task="fit")  # no such task
        plan >> train >> evaluate
    assert wiring_problems(dag) == ["wiring_probe.evaluate: train_task='fit' is not a task upstream of it"]


def test_shadow_evidence_starts_the_deployment_dag(dags: dict[str, Any]) -> None:
    """The batch DAG's shadow_ready emits the shadow Asset; the deployment DAG runs on it as on the model Asset."""
    batch, deployment = dags["loans_batch_inference"], dags["loans_deployment"]
    ready = batch.get_task("shadow_ready")
    assert [a.uri for a in ready.outlets] == ["sluice://shadow/loans"]
    assert ready.upstream_task_ids == {"shadow_score"}
    assert batch.get_task("shadow_score").upstream_task_ids == {"score"}
    from sluice.airflow.inventory import _assets

    assert {a.uri for a in _assets(deployment.schedule)} == {"sluice://model/loans", "sluice://shadow/loans"}
