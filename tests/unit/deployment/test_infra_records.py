"""Infra validation sends missing values as null, whichever path the rows come from (no server)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sluice.deployment.infra import input_example_records, json_records
from sluice.deployment.targets import DeploymentError

pytestmark = pytest.mark.unit


def test_mlflow_split_example_with_nan_becomes_null(tmp_path) -> None:
    # what MLflow writes for a pandas example holding missing values: bare NaN literals
    (tmp_path / "input_example.json").write_text(
        '{"columns": ["age", "income", "region"], "data": [[41, NaN, "north"], [NaN, 5.5, NaN]]}'
    )
    records = input_example_records(tmp_path)
    assert records == [
        {"age": 41.0, "income": None, "region": "north"},
        {"age": None, "income": 5.5, "region": None},
    ]
    json.dumps(records, allow_nan=False)  # sendable as strict JSON


def test_records_layout_and_no_example(tmp_path) -> None:
    assert input_example_records(tmp_path) == []
    (tmp_path / "input_example.json").write_text('[{"age": NaN, "region": "x"}]')
    assert input_example_records(tmp_path) == [{"age": None, "region": "x"}]
    (tmp_path / "input_example.json").write_text('{"inputs": [1]}')
    with pytest.raises(DeploymentError, match="unrecognised input example layout"):
        input_example_records(tmp_path)


def test_sampled_rows_use_the_same_conversion() -> None:
    frame = pd.DataFrame({"x": [1.5, np.nan], "c": ["a", None], "t": pd.to_datetime(["2025-01-02", None])})
    assert json_records(frame) == [
        {"x": 1.5, "c": "a", "t": "2025-01-02T00:00:00.000"},
        {"x": None, "c": None, "t": None},
    ]
