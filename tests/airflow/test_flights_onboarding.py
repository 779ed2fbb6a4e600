"""The second model, on real data no one here wrote, is onboarded by config files only."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pandas as pd
import pendulum
import pytest

from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.lake import open_lake

REPO = Path(__file__).resolve().parents[2]
DEMO_ONLY = {"datagen", "demo.py"}  # the loader, and the demo script that plays the upstream producer
PLATFORM = [
    *(REPO / "dags").glob("*.py"),
    *(p for p in (REPO / "include/sluice").rglob("*.py") if not DEMO_ONLY & set(p.parts)),
]


def test_no_platform_code_knows_about_flights() -> None:
    """Only the loader (datagen) and the config files name the dataset; DAGs and library code do not."""
    offenders = [str(p.relative_to(REPO)) for p in PLATFORM if re.search(r"flight|nycflights", p.read_text(), re.I)]
    assert offenders == []


@pytest.fixture(scope="module")
def flights_dag(airflow_db):
    from sluice.airflow.runner import load_dag

    return load_dag("flights_features")


def test_flights_days_publish_features_with_joined_references(flights_dag, lake_root, smtp_sink) -> None:
    cfg = get_model_config("flights")
    lake = open_lake()
    start = dt.date(2013, 12, 24)
    generate_into_lake(cfg, lake, start, 2)
    for d in (start, start + dt.timedelta(days=1)):
        dr = flights_dag.test(logical_date=pendulum.datetime(d.year, d.month, d.day, tz="UTC"))
        assert str(dr.state) == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
        (data,) = lake.read_published("features", "flights_v1", d)
        feats = pd.read_parquet(io.BytesIO(data))
        assert list(feats.columns) == [*cfg.features.passthrough, *cfg.features.numeric, *cfg.features.categorical]
        assert feats["temp"].notna().mean() > 0.9, "weather joined by origin and hour"
        assert feats["plane_age"].notna().mean() > 0.6 and feats["plane_age"].dropna().between(0, 60).all()
        assert set(feats["dep_month"]) == {12} and feats["flight_id"].is_unique
