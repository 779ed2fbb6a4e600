"""A model over columns with nulls deploys: MLflow stores the logged input example's missing values as NaN,
infra validation sends them as null (a model server refuses NaN with 422), against a real MLflow server and
a real model server process."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import numpy as np
import pytest

from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.deployment.infra import infra_validate, input_example_records
from sluice.lake import Lake, LocalStorage
from sluice.registry.artifact import fetch_release, release_of
from sluice.registry.mlflow_registry import Registry
from sluice.runtime import Settings
from sluice.training.model import feature_columns, fit

pytestmark = pytest.mark.integration

START, DAYS = dt.date(2025, 1, 1), 8  # labels arrive 7 days late (loans.yaml)


def test_an_input_example_with_missing_values_passes_infra_validation(tmp_path, register_model, mlflow_server) -> None:
    from sluice.training.snapshot import build_snapshot

    base = get_model_config("loans")
    cfg = base.model_copy(update={"name": f"loans_nan_{uuid.uuid4().hex[:8]}"})
    lake = Lake(LocalStorage(tmp_path / "lake"))
    seed_feature_store(base, lake, START, DAYS, rows_per_day=400)
    frame = build_snapshot(base, lake, START + dt.timedelta(days=DAYS - 1), DAYS).frame
    numeric, categorical = cfg.features.numeric[0], cfg.features.categorical[0]
    example = frame[feature_columns(cfg)].head(3).copy()
    example.loc[example.index[0], numeric] = np.nan
    example.loc[example.index[1], categorical] = np.nan
    version, _ = register_model(cfg, fit(cfg, frame), example)
    release = release_of(Registry(mlflow_server), cfg.name, version)

    stored = (fetch_release(release) / "input_example.json").read_text()
    assert "NaN" in stored, stored  # what MLflow logs: the case this test is about
    sent = input_example_records(fetch_release(release))
    assert sent[0][numeric] is None and sent[1][categorical] is None
    assert all(not (isinstance(v, float) and math.isnan(v)) for row in sent for v in row.values())
    json.dumps(sent, allow_nan=False)

    settings = Settings(home=tmp_path / "home", airflow_port=0, mlflow_port=0, smtp_port=0)
    report = infra_validate(cfg, lake, release, settings=settings)
    [check] = [c for c in report["checks"] if c["check"] == "input_example"]
    assert check["passed"] and check["observed"] == 200, check
