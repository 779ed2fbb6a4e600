"""`sluice init`: a config drafted from landed partitions and their labels, every choice with its reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sluice.apps.cli import main
from sluice.config import latency_budget_ms, load_model_config
from sluice.datagen.corrupt import render
from sluice.lake import Lake, open_lake
from sluice.onboarding.draft import OnboardingError, draft, sizing, write_draft

START = dt.date(2024, 3, 1)


def events(day: int, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(day)
    ds = START + dt.timedelta(days=day)
    n = np.arange(rows)
    return pd.DataFrame(
        {
            "order_ref": [f"O{day:03d}-{i:04d}" for i in n],  # unique string, not named like an id
            "order_id": [f"X{day:03d}{i:04d}" for i in n],  # the id by name
            "placed": [(pd.Timestamp(ds) + pd.Timedelta(minutes=int(m))).isoformat() for m in n * 10],  # CSV text
            "amount": rng.gamma(2.0, 50.0, rows).round(2),
            "items": rng.integers(1, 9, rows),
            "country": rng.choice(["DE", "FR", "NL", None], rows),
            "comment": [f"free text number {k}" for k in rng.integers(0, 5000, rows)],  # repeats, rarely
            "source": "web",  # constant
            "coupon": None,  # all null
            "shipped": [(pd.Timestamp(ds) + pd.Timedelta(days=3)).isoformat()] * rows,  # a datetime, not the event
        }
    )


def land(lake: Lake, days: int = 4, delay: int = 2) -> None:
    for d in range(days):
        ds = START + dt.timedelta(days=d)
        ev = events(d)
        lake.put_landing("landing", "orders", ds, {"part-00000.csv": render(ev, "csv")})
        labels = pd.DataFrame({"order_id": ev["order_id"], "returned": (ev["amount"] > 120).astype("int64")})
        lake.put_landing(
            "labels", "orders_returns", ds + dt.timedelta(days=delay), {"p.parquet": render(labels, "parquet")}
        )


def test_draft_infers_keys_features_labels_and_says_why(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    land(lake)
    d = draft(lake, "orders", "orders", measure_latency=False)
    assert (d.fmt, d.id_column, d.timestamp_column) == ("csv", "order_id", "placed")
    assert (d.labels_dataset, d.join_key, d.label_column, d.delay_days, d.task) == (
        "orders_returns",
        "order_id",
        "returned",
        2,
        "classification",
    )
    assert d.numeric == ["amount", "items"] and d.categorical == ["country"]
    assert set(d.left_out) == {"order_ref", "comment", "source", "coupon", "shipped"}
    assert d.left_out["source"].startswith("constant: 'web'")
    assert d.left_out["coupon"].startswith("all null")
    assert d.left_out["comment"].startswith("free text")
    assert d.left_out["order_ref"].startswith("id-like")
    assert d.left_out["shipped"].startswith("a datetime other than the event time")

    text = d.to_yaml()
    assert "#   comment: free text" in text and "# labels.delay_days 2: labels of event day D land in ds=D+2" in text
    path = write_draft(d, tmp_path / "models" / "orders.yaml")
    cfg = load_model_config(path)  # the draft validates as written
    assert cfg.training.min_rows == sizing(120, 120)["min_rows"]
    assert cfg.monitoring.performance.min_rows == 96  # 80% of the 120 labelled rows a day
    assert cfg.deploy.infra_validation.max_latency_ms_p95 == 50.0  # not measured: the fixed fallback
    with pytest.raises(OnboardingError, match="exists: review it, or pass --force"):
        write_draft(d, path)
    assert write_draft(d, path, force=True) == path


def test_sizing_and_latency_budget_follow_the_documented_rules() -> None:
    assert sizing(250, 250) == {
        "window_days": 20,
        "min_rows": 2500,
        "min_new_partitions": 5,
        "performance_min_rows": 200,
    }
    assert sizing(1000, 900)["window_days"] == 14  # never below two weeks
    assert sizing(10, 10)["window_days"] == 90 and sizing(10, 10)["performance_min_rows"] == 30
    assert latency_budget_ms(4.2) == 71.0  # 5 x 4.2 + 50, whole ms up


def test_missing_data_and_ambiguous_labels_are_clear_errors(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    with pytest.raises(OnboardingError, match=r"landing/orders/ds=YYYY-MM-DD/: land some first"):
        draft(lake, "orders", "orders", measure_latency=False)
    land(lake)
    twin = pd.DataFrame({"order_id": events(0)["order_id"], "flag": 1})
    lake.put_landing("labels", "orders_other", START, {"p.parquet": render(twin, "parquet")})
    with pytest.raises(OnboardingError, match=r"several hold 'order_id'.*--labels"):
        draft(lake, "orders", "orders", measure_latency=False)
    assert draft(lake, "orders", "orders", labels_dataset="orders_returns", measure_latency=False).delay_days == 2


def test_cli_init_measures_latency_prints_reasons_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    lake = tmp_path / "lake"
    land(open_lake(str(lake)))
    out = tmp_path / "orders.yaml"
    argv = ["init", "orders", "--dataset", "orders", "--lake", str(lake), "--output", str(out)]
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "id order_id: no nulls, unique" in printed and "left out: " in printed
    budget = yaml.safe_load(out.read_text())["deploy"]["infra_validation"]["max_latency_ms_p95"]
    assert budget > 50 and "x the drafted model's in-process single-row p95" in printed
    with pytest.raises(SystemExit) as again:
        main(argv)
    assert again.value.code == 1 and "pass --force" in capsys.readouterr().err


def test_hostile_column_names_stay_inside_their_comment(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    land(lake)
    d = draft(lake, "orders", "orders", measure_latency=False)
    d.left_out["x\nname: evil\rowner: evil"] = "constant: 'a\nb'"
    d.notes.append("read column 'y\nalerts: {}'")
    loaded = yaml.safe_load(d.to_yaml())
    assert loaded["name"] == "orders" and loaded["owner"] == "data-science" and "alerts" in loaded
    assert "#   x name: evil owner: evil: constant" in d.to_yaml()
    assert not any("\n" in line or "\r" in line for line in d.summary())
    d.validated()
