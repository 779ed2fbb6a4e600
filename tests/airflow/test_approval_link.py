"""The Sluice view's "waiting for approval" link goes to the approval task the training DAG file defines: found
by its operator in the DAG (parsed, and as the API server reads it, serialized), never by a guessed name."""

from __future__ import annotations

import pytest

from sluice.airflow.operators import ApprovePromotionOperator
from sluice.airflow.ui.view import approval_task, approval_task_of


@pytest.fixture(scope="module")
def training_dag(airflow_db):
    from sluice.airflow.runner import load_dag

    return load_dag("loans_training")


def test_the_approval_task_is_the_one_the_dag_file_defines(training_dag) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    (expected,) = [t.task_id for t in training_dag.tasks if isinstance(t, ApprovePromotionOperator)]
    assert approval_task_of(training_dag) == expected
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(training_dag))
    assert approval_task_of(serialized) == expected, "the API server reads the serialized DAG"


def test_a_dag_without_an_approval_task_or_not_serialized_gives_no_task(airflow_db) -> None:
    from sluice.airflow.runner import load_dag

    assert approval_task_of(load_dag("loans_monitoring")) is None
    assert approval_task("no_such_dag_anywhere") is None
