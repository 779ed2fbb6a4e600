"""Schema inference proposes a suite that known-good data passes and that names what a broken day breaks."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.features.job import interval_params
from sluice.validation.gx import validate
from sluice.validation.schema import SuiteSpec, infer_suite

DAYS = [dt.date(2025, 1, 6), dt.date(2025, 1, 7)]


@pytest.fixture(scope="module")
def suite() -> SuiteSpec:
    frames = [loans.generate_events(d, seed=7, rows_per_day=300) for d in DAYS]
    return infer_suite(frames, get_model_config("loans"), DAYS)


def test_the_proposal_types_columns_and_records_where_it_came_from(suite: SuiteSpec) -> None:
    types = {
        e["kwargs"]["column"]: e["kwargs"]["type_"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_type_to_be"
    }
    assert types["purpose"] == "category" and types["age"] == "int64" and types["applied_at"] == "datetime64[ns]"
    assert suite["name"] == "loans_raw"
    assert suite["meta"]["sluice"]["inferred_from"] == ["2025-01-06", "2025-01-07"]


def test_a_new_clean_day_passes_and_a_broken_one_fails_on_the_broken_column(suite: SuiteSpec) -> None:
    ds = dt.date(2025, 1, 8)
    day = loans.generate_events(ds, seed=7, rows_per_day=300)
    assert validate(day, suite, interval_params(ds)).success
    broken = validate(day.assign(age=-5), suite, interval_params(ds))
    assert not broken.success
    assert {f["column"] for f in broken.failures} == {"age"}
    assert {f["expectation"] for f in broken.failures} >= {
        "expect_column_values_to_be_between",  # the range
        "expect_column_stdev_to_be_between",  # one value on every row
    }


def test_rows_repeated_under_fresh_ids_fail_naming_the_columns(suite: SuiteSpec) -> None:
    ds = dt.date(2025, 1, 8)
    day = loans.generate_events(ds, seed=7, rows_per_day=300)
    again = day.head(len(day) // 2).assign(application_id=lambda d: d["application_id"].str.replace("-0", "-9"))
    replayed = pd.concat([day, again], ignore_index=True)
    out = validate(replayed, suite, interval_params(ds), id_column="application_id")
    (failure,) = [f for f in out.failures if f["expectation"] == "expect_compound_columns_to_be_unique"]
    assert failure["columns"] == sorted(c for c in day.columns if c != "application_id")
    assert failure["column"] == ", ".join(failure["columns"][:4]) + f" and {len(failure['columns']) - 4} more"
    assert f"expect_compound_columns_to_be_unique({failure['column']})" in out.summary()
