"""The training-set suite: a bad training set fails before any training, with the check named."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.lake import Lake, LocalStorage
from sluice.training.snapshot import build_snapshot
from sluice.training.suite import check_training_set, training_set_suite

START = dt.date(2025, 1, 1)
DAYS = 9  # labels of Jan 1 and Jan 2 have arrived by Jan 9


@pytest.fixture(scope="module")
def cfg():
    base = get_model_config("loans")
    return base.model_copy(update={"training": base.training.model_copy(update={"window_days": DAYS, "min_rows": 300})})


@pytest.fixture(scope="module")
def good(tmp_path_factory, cfg):
    lake = Lake(LocalStorage(tmp_path_factory.mktemp("suite_lake")))
    generate_into_lake(cfg, lake, START, DAYS, rows_per_day=300)
    for i in range(DAYS):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    frame = build_snapshot(cfg, lake, START + dt.timedelta(days=DAYS - 1)).frame
    assert len(frame) >= cfg.training.min_rows
    return frame


def failed(outcome) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["column"]) for f in outcome.failures}


def test_suite_is_gx_json_built_from_the_config(cfg) -> None:
    suite = training_set_suite(cfg)
    json.dumps(suite, allow_nan=False)
    assert suite["name"] == "loans_training_set"
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    assert ("expect_column_values_to_not_be_null", "defaulted") in kinds
    assert ("expect_column_values_to_be_in_set", "defaulted") in kinds
    assert ("expect_column_mean_to_be_between", "defaulted") in kinds
    assert {("expect_column_to_exist", c) for c in (*cfg.features.numeric, *cfg.features.categorical)} <= kinds
    mean = next(e for e in suite["expectations"] if e["type"] == "expect_column_mean_to_be_between")
    assert (mean["kwargs"]["min_value"], mean["kwargs"]["max_value"]) == cfg.training.positive_share
    rows = next(e for e in suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    assert rows["kwargs"]["min_value"] == cfg.training.min_rows


def test_good_snapshot_passes(cfg, good) -> None:
    outcome = check_training_set(good, cfg)
    assert outcome.success, outcome.failures


def test_a_nan_label_fails(cfg, good) -> None:
    bad = good.assign(defaulted=good["defaulted"].astype("float64"))
    bad.loc[bad.index[3], "defaulted"] = np.nan
    outcome = check_training_set(bad, cfg)
    assert not outcome.success
    assert ("expect_column_values_to_not_be_null", "defaulted") in failed(outcome)
    assert "expect_column_values_to_not_be_null(defaulted)" in outcome.summary()


def test_all_negative_labels_fail_the_positive_share_bounds(cfg, good) -> None:
    outcome = check_training_set(good.assign(defaulted=0), cfg)
    assert failed(outcome) == {("expect_column_mean_to_be_between", "defaulted")}


def test_too_few_rows_fail(cfg, good) -> None:
    outcome = check_training_set(good.head(cfg.training.min_rows - 1), cfg)
    assert ("expect_table_row_count_to_be_between", None) in failed(outcome)


def test_labels_outside_zero_one_and_missing_features_fail(cfg, good) -> None:
    bad = good.assign(defaulted=good["defaulted"] * 2).drop(columns=["region"])
    outcome = check_training_set(bad, cfg)
    assert {
        ("expect_column_values_to_be_in_set", "defaulted"),
        ("expect_column_to_exist", "region"),
    } <= failed(outcome)


def test_missing_label_column_fails(cfg, good) -> None:
    outcome = check_training_set(good.drop(columns=["defaulted"]), cfg)
    assert ("expect_column_to_exist", "defaulted") in failed(outcome)
