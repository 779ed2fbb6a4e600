"""The features DAG run through Airflow (dag.test against the metadata DB), with a real SMTP server."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pendulum
import pytest

from sluice.alerts.mailsink import read_outbox
from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.datagen.corrupt import corrupt, render
from sluice.lake import open_lake

DS = dt.date(2025, 1, 14)


@pytest.fixture(scope="module")
def features_dag(airflow_db):
    from sluice.airflow.runner import load_dag

    return load_dag("loans_features")


def run(dag, ds: dt.date):
    dr = dag.test(logical_date=pendulum.datetime(ds.year, ds.month, ds.day, tz="UTC"))
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_clean_day_publishes_features_and_the_asset_event(features_dag, lake_root, smtp_sink) -> None:
    lake = open_lake()
    lake.put_landing(
        "landing", "loans", DS, {"part-00000.parquet": render(loans.generate_events(DS, seed=5), "parquet")}
    )
    dr, states = run(features_dag, DS)
    assert states == {"wait_for_landing": "success", "validate": "success", "publish_features": "success"}
    man = lake.manifest("features", "loans_v1", DS)
    assert man and man["rows"] > 1000 and man["feature_set"] == "loans_v1"

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == "sluice://features/loans_v1", AssetEvent.source_run_id == dr.run_id)
        ).all()
        extras = [e.extra for e in events]
    assert len(extras) == 1
    assert extras[0]["content_sha256"] == man["content_sha256"] and extras[0]["rows"] == man["rows"]
    assert read_outbox(smtp_sink) == []


def test_bad_day_is_quarantined_and_the_alert_arrives(features_dag, lake_root, smtp_sink) -> None:
    lake = open_lake()
    bad = corrupt("null_burst", loans.generate_events(DS, seed=5), "parquet", np.random.default_rng(2))
    lake.put_landing("landing", "loans", DS, {"part-00000.parquet": bad})

    dr, states = run(features_dag, DS)

    assert str(dr.state) == "failed"
    assert states["validate"] == "failed" and states["publish_features"] == "upstream_failed"
    assert lake.manifest("features", "loans_v1", DS) is None, "nothing downstream of a failed gate"
    assert lake.landing_files("landing", "loans", DS) == {"part-00000.parquet": bad}, "raw data untouched"
    mails = read_outbox(smtp_sink)
    assert len(mails) == 1, [m["Subject"] for m in mails]  # the detailed alert, and no second generic one
    mail = mails[0]
    cfg = get_model_config("loans")
    assert mail["Subject"] == "[sluice] loans: landing loans ds=2025-01-14 QUARANTINED (1 failed checks)"
    assert mail["X-Sluice-Envelope-To"] == ", ".join(cfg.alerts.emails)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for body in (text, html):
        assert "expect_column_values_to_not_be_null" in body and "annual_income" in body
        assert "/sluice/lake/quarantine/loans/ds=2025-01-14/" in body  # Data Docs link through the UI plugin
        assert "/dags/loans_features/runs/" in body  # the Airflow task log
    assert "sample:" in text and "(30.0" in text
    record_keys = [k for k in lake.list("quarantine/loans/ds=2025-01-14") if k.endswith("_RECORD.json")]
    record = json.loads(lake.read(record_keys[0]))
    assert record["failures"][0]["column"] == "annual_income"


def test_corrected_file_then_rerun_publishes_and_keeps_the_record(features_dag, lake_root, smtp_sink) -> None:
    lake = open_lake()
    events = loans.generate_events(DS, seed=5)
    lake.put_landing(
        "landing",
        "loans",
        DS,
        {"part-00000.parquet": corrupt("duplicate_ids", events, "parquet", np.random.default_rng(1))},
    )
    _, states = run(features_dag, DS)
    assert states["validate"] == "failed"
    lake.put_landing("landing", "loans", DS, {"part-00000.parquet": render(events, "parquet")})  # upstream fixes it
    _, states = run(features_dag, DS)
    assert states["publish_features"] == "success"
    assert lake.manifest("features", "loans_v1", DS) is not None
    assert len([k for k in lake.list("quarantine/loans") if k.endswith("_RECORD.json")]) == 1
