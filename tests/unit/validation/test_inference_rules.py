"""The rules suite inference follows, each on a frame built to show it (no GX run: fast)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sluice.validation.schema import SuiteSpec, id_pattern, infer, share_limit

pytestmark = pytest.mark.unit

DAYS = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(6)]
ROWS = 250


def _day(i: int, rng: np.random.Generator) -> pd.DataFrame:
    n = ROWS
    return pd.DataFrame(
        {
            "row_id": [f"R-{i:02d}{k:04d}" for k in range(n)],
            "ts": pd.Timestamp(DAYS[i]) + pd.to_timedelta(np.arange(n) * 60, unit="s"),
            "normal": rng.normal(50, 5, n),
            "zeros": np.zeros(n, dtype="int64"),
            "mostly_null": np.where(rng.random(n) < 0.85, np.nan, rng.normal(0, 1, n)),
            "tail": np.round(rng.pareto(1.5, n) * 1000),
            "cat": pd.Series(rng.choice(["a", "b", "c", "rare"], n, p=[0.5, 0.3, 0.199, 0.001]), dtype="str"),
        }
    )


@pytest.fixture(scope="module")
def suite() -> SuiteSpec:
    rng = np.random.default_rng(3)
    frames = [_day(i, rng) for i in range(len(DAYS))]
    return infer(frames, DAYS, id_column="row_id", timestamp_column="ts", suite="t", dataset="t", generated_by="test")


def _of(suite: SuiteSpec, kind: str, column: str) -> list[dict]:
    return [dict(e) for e in suite["expectations"] if e["type"] == kind and e["kwargs"].get("column") == column]


def test_every_expectation_says_why_and_from_what(suite: SuiteSpec) -> None:
    for e in suite["expectations"]:
        if e["type"] != "expect_column_type_to_be":
            assert e.get("meta", {}).get("sluice", {}).get("why"), e
    (mean,) = _of(suite, "expect_column_mean_to_be_between", "normal")
    assert mean["meta"]["sluice"]["partitions"] == len(DAYS)
    assert mean["kwargs"]["min_value"] < 50 < mean["kwargs"]["max_value"]


def test_an_all_zero_column_gets_no_zero_width_range(suite: SuiteSpec) -> None:
    assert _of(suite, "expect_column_values_to_be_between", "zeros") == []
    assert _of(suite, "expect_column_values_to_not_be_null", "zeros")  # nulls and type still checked


def test_a_mostly_null_column_gets_a_null_limit_that_checks_something(suite: SuiteSpec) -> None:
    (nn,) = _of(suite, "expect_column_values_to_not_be_null", "mostly_null")
    assert 0 < nn["kwargs"]["mostly"] < 0.15  # ~85% null: at least a few rows per partition must be there


def test_a_heavy_tail_is_tolerated_row_by_row_not_by_the_maximum(suite: SuiteSpec) -> None:
    (rng_check,) = _of(suite, "expect_column_values_to_be_between", "tail")
    assert 0.9 < rng_check["kwargs"]["mostly"] < 1
    assert rng_check["kwargs"]["max_value"] < rng_check["meta"]["sluice"]["observed_max"]


def test_rare_categories_are_not_baked_into_the_set_and_major_shares_are_bounded(suite: SuiteSpec) -> None:
    (in_set,) = [e for e in _of(suite, "expect_column_values_to_be_in_set", "cat") if len(e["kwargs"]["value_set"]) > 1]
    assert in_set["kwargs"]["value_set"] == ["a", "b", "c"]
    shares = _of(suite, "expect_column_values_to_not_be_in_set", "cat")
    assert [e["kwargs"]["value_set"] for e in shares] == [["a"], ["b"]]  # the categories holding >= 25%


def test_ids_get_their_shape_and_strings_no_surrounding_space(suite: SuiteSpec) -> None:
    (regex,) = _of(suite, "expect_column_values_to_match_regex", "row_id")
    assert regex["kwargs"]["regex"] == r"^[A-Z]{1}\-[0-9]{6}$"
    assert _of(suite, "expect_column_values_to_not_match_regex", "row_id") == []  # the shape has no space
    assert id_pattern(pd.Series(["a1", "B-2"])) is None  # no common shape: no pattern


def test_share_limits_grow_with_the_rate_and_shrink_with_the_partition() -> None:
    assert share_limit(0.02, 0.03, 250) < 0.3  # a 30% null burst in a 2% column fails
    assert share_limit(0.02, 0.03, 250) > 0.03  # the worst known-good partition passes
    assert share_limit(0.02, 0.0, 10_000) < share_limit(0.02, 0.0, 250)
