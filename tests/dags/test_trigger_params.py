"""The trigger forms of training and deployment work with their defaults: no Param the UI marks required is
left empty (Airflow 3.3's form: a field is required when its schema has a ``type`` without ``"null"``), the
defaults validate, and ``reason`` (set by monitoring) is no form field."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ui_required(schema: dict) -> bool:
    """The rule of the Airflow 3.3 trigger form (``isRequired`` in its FlexibleForm)."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


@pytest.fixture(scope="module")
def dags() -> dict:
    return {
        **runpy.run_path(str(REPO / "dags" / "training.py")),
        **runpy.run_path(str(REPO / "dags" / "deployment.py")),
    }


@pytest.mark.parametrize("dag_id", ["loans_training", "flights_training", "loans_deployment", "flights_deployment"])
def test_the_trigger_form_is_valid_with_defaults_only(dags, dag_id: str) -> None:
    dag = dags[dag_id]
    values = dag.params.validate()  # raises ParamValidationError if a default does not satisfy its schema
    for name in dag.params:
        param = dag.params.get_param(name)
        if ui_required(param.schema):
            assert values[name] not in (None, ""), f"{dag_id}: {name} is required by the form but empty by default"
    assert "reason" not in dag.params, "reason is set by the monitoring DAG in the run conf, not typed by a person"


def test_the_rule_recognises_a_required_empty_field() -> None:
    assert ui_required({"type": "string"}) and ui_required({"type": ["string"]})
    assert not ui_required({"type": ["null", "string"]}) and not ui_required({"enum": ["a", "b"]})
