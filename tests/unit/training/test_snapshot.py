"""The training snapshot: published days only, arrived labels only, and a manifest that names its inputs."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil

import pandas as pd
import pytest

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.lake import Lake, LocalStorage, sha256
from sluice.training.snapshot import build_snapshot, read_manifest, time_split, write_manifest

START = dt.date(2025, 1, 1)
DAYS = 14
ROWS = 200
QUARANTINED = dt.date(2025, 1, 3)  # never published, as if its landing partition had failed validation


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


@pytest.fixture(scope="module")
def cfg():
    base = get_model_config("loans")
    return base.model_copy(update={"training": base.training.model_copy(update={"window_days": DAYS})})


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory, cfg):
    root = tmp_path_factory.mktemp("snapshot_lake")
    lake = Lake(LocalStorage(root))
    generate_into_lake(cfg, lake, START, DAYS, rows_per_day=ROWS)
    for i in range(DAYS):
        if START + dt.timedelta(days=i) != QUARANTINED:
            publish_features(cfg, lake, START + dt.timedelta(days=i))
    return root


@pytest.fixture(scope="module")
def lake(lake_dir):
    return Lake(LocalStorage(lake_dir))


@pytest.fixture
def lake_copy(lake_dir, tmp_path):
    """A private copy of the module's lake, for tests that change it."""
    shutil.copytree(lake_dir, tmp_path / "lake")
    return Lake(LocalStorage(tmp_path / "lake"))


def event_days(frame: pd.DataFrame) -> set[dt.date]:
    return set(frame["applied_at"].dt.date)


def test_unpublished_days_are_excluded_and_recorded_as_missing(cfg, lake) -> None:
    snap = build_snapshot(cfg, lake, day(14))
    m = snap.manifest
    assert m["window"] == ["2025-01-01", "2025-01-14"]
    assert m["missing_days"] == [QUARANTINED.isoformat()]
    assert [p["ds"] for p in m["partitions"]] == [day(i).isoformat() for i in range(1, 15) if day(i) != QUARANTINED]
    assert QUARANTINED not in event_days(snap.frame)
    for p in m["partitions"]:
        assert p["content_sha256"] == lake.manifest("features", "loans_v1", p["ds"])["content_sha256"]
    assert m["model"] == "loans" and m["feature_set"] == "loans_v1" and "config_hash" not in m


def test_window_override_and_missing_days_inside_it(cfg, lake) -> None:
    snap = build_snapshot(cfg, lake, day(14), window_days=9)
    assert snap.manifest["window"] == ["2025-01-06", "2025-01-14"]
    assert snap.manifest["missing_days"] == []
    assert [p["ds"] for p in snap.manifest["partitions"]] == [day(i).isoformat() for i in range(6, 15)]
    assert event_days(snap.frame) == {day(6), day(7)}


def test_only_labels_that_arrived_by_end_ds_are_joined(cfg, lake) -> None:
    delay = cfg.labels.delay_days
    assert delay == 7
    snap = build_snapshot(cfg, lake, day(10), window_days=10)
    # Label partitions of Jan 8..10 carry the events of Jan 1..3; Jan 3 was never published.
    assert [entry["ds"] for entry in snap.manifest["labels"]] == [day(i).isoformat() for i in (8, 9, 10)]
    assert event_days(snap.frame) == {day(1), day(2)}
    rows = {p["ds"]: p["rows"] for p in snap.manifest["partitions"]}
    assert snap.manifest["rows"] == len(snap.frame) == rows["2025-01-01"] + rows["2025-01-02"]
    assert snap.manifest["unlabelled_rows"] == sum(rows.values()) - len(snap.frame)
    assert snap.manifest["unlabelled_rows"] == sum(rows[day(i).isoformat()] for i in range(4, 11))

    later = build_snapshot(cfg, lake, day(14))
    assert event_days(later.frame) == {day(i) for i in (1, 2, 4, 5, 6, 7)}
    assert max(event_days(later.frame)) <= day(14) - dt.timedelta(days=delay)


def test_joined_labels_are_the_producers_labels(cfg, lake) -> None:
    snap = build_snapshot(cfg, lake, day(10), window_days=10)
    raw = lake.landing_files("labels", "loans_labels", day(8))["part-00000.parquet"]
    truth = pd.read_parquet(io.BytesIO(raw)).set_index("application_id")["defaulted"]
    got = snap.frame.set_index("application_id")["defaulted"]
    day1 = got[got.index.str.startswith("20250101")]
    assert len(day1) == len(truth)
    assert (day1.sort_index() == truth.sort_index()).all()
    assert snap.manifest["labels"][0]["sha256"] == sha256(raw)
    assert list(snap.frame.columns) == [
        *pd.read_parquet(io.BytesIO(lake.read_published("features", "loans_v1", day(1))[0])).columns,
        "defaulted",
    ]
    assert 0 < snap.manifest["positive_share"] < 1
    assert snap.manifest["positive_share"] == pytest.approx(snap.frame["defaulted"].mean())


def test_rows_are_sorted_by_time_then_id(cfg, lake) -> None:
    frame = build_snapshot(cfg, lake, day(14)).frame
    expected = frame.sort_values(["applied_at", "application_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected)
    assert frame.index.equals(pd.RangeIndex(len(frame)))


def test_incomplete_label_partition_is_skipped(cfg, lake_copy) -> None:
    lake_copy.storage.delete("labels/loans_labels/ds=2025-01-14/_SUCCESS")
    snap = build_snapshot(cfg, lake_copy, day(14))
    assert day(7) not in event_days(snap.frame)
    assert snap.manifest["labels_incomplete"] == ["2025-01-14"]
    assert "2025-01-14" not in [entry["ds"] for entry in snap.manifest["labels"]]


def test_manifest_is_reproducible_and_content_addressed(cfg, lake) -> None:
    a = build_snapshot(cfg, lake, day(14))
    b = build_snapshot(cfg, lake, day(14))
    assert a.manifest == b.manifest
    assert a.manifest_sha256 == b.manifest_sha256
    pd.testing.assert_frame_equal(a.frame, b.frame)
    json.dumps(a.manifest, allow_nan=False)  # strict JSON
    assert "time" not in json.dumps(a.manifest).lower()

    key = write_manifest(lake, cfg, a)
    assert key == f"reports/loans/snapshots/{a.manifest_sha256}.json"
    data = lake.read(key)
    assert sha256(data) == a.manifest_sha256
    assert write_manifest(lake, cfg, b) == key and lake.read(key) == data  # idempotent
    assert read_manifest(lake, cfg, a.manifest_sha256) == a.manifest


def test_manifest_changes_with_the_data_and_not_with_the_config(cfg, lake_copy) -> None:
    before = build_snapshot(cfg, lake_copy, day(14))
    changed = day(5)
    other = loans.landing_file_bytes(changed, "parquet", seed=99, rows_per_day=ROWS)
    lake_copy.put_landing("landing", "loans", changed, {"part-00000.parquet": other})
    publish_features(cfg, lake_copy, changed)
    after = build_snapshot(cfg, lake_copy, day(14))
    assert after.manifest_sha256 != before.manifest_sha256
    diff = [
        p["ds"]
        for p, q in zip(before.manifest["partitions"], after.manifest["partitions"], strict=True)
        if p["content_sha256"] != q["content_sha256"]
    ]
    assert diff == [changed.isoformat()]

    # the manifest describes data only: a training-config change keeps the snapshot (and its test rows)
    edited = cfg.model_copy(update={"training": cfg.training.model_copy(update={"seed": 1})})
    assert build_snapshot(edited, lake_copy, day(14)).manifest_sha256 == after.manifest_sha256


def test_time_split_orders_by_time_with_configured_shares(cfg, lake) -> None:
    frame = build_snapshot(cfg, lake, day(14)).frame
    train, val, test = time_split(frame, cfg)
    n = len(frame)
    assert len(test) == round(n * cfg.training.split.test)
    assert len(val) == round(n * cfg.training.split.validation)
    assert len(train) + len(val) + len(test) == n
    assert train["applied_at"].max() <= val["applied_at"].min()
    assert val["applied_at"].max() <= test["applied_at"].min()
    pd.testing.assert_frame_equal(pd.concat([train, val, test], ignore_index=True), frame)
    shuffled = time_split(frame.sample(frac=1.0, random_state=3), cfg)  # input order does not matter
    for got, want in zip(shuffled, (train, val, test), strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_time_split_refuses_too_few_rows(cfg, lake) -> None:
    frame = build_snapshot(cfg, lake, day(14)).frame
    with pytest.raises(ValueError, match="too few for a time split"):
        time_split(frame.head(2), cfg)


def test_no_feature_partitions_in_window_names_window_and_lake(cfg, lake) -> None:
    with pytest.raises(ValueError, match="no published feature partitions") as err:
        build_snapshot(cfg, lake, dt.date(2025, 3, 1), window_days=7)
    assert "2025-02-23..2025-03-01" in str(err.value)
    assert lake.root in str(err.value)


def test_no_labels_arrived_is_an_error(cfg, lake) -> None:
    with pytest.raises(ValueError, match="no labels have arrived by 2025-01-07"):
        build_snapshot(cfg, lake, day(7), window_days=7)


def test_window_without_any_labelled_row_is_an_error(cfg, lake) -> None:
    """Labels have arrived (of older events), but none of them belongs to a row of the window."""
    with pytest.raises(ValueError, match="none of the .* feature rows of 2025-01-08..2025-01-12 has a label"):
        build_snapshot(cfg, lake, day(12), window_days=5)


def test_missing_label_column_is_named(cfg, lake) -> None:
    wrong = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"column": "is_default"})})
    with pytest.raises(ValueError, match="label column .*'is_default' is missing"):
        build_snapshot(wrong, lake, day(14))
