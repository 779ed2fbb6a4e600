"""Loans generator: determinism, schema, label signal, scenarios (shifts, corruptions, validation)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sluice.datagen import loans
from sluice.datagen.corrupt import CORRUPTIONS
from sluice.datagen.loans import Scenario, ScenarioError

pytestmark = pytest.mark.unit

D = dt.date(2024, 3, 5)  # a Tuesday
SEED = 7


def _events(ds: dt.date = D, scenario: Scenario | None = None, rows: int = 2000, seed: int = SEED) -> pd.DataFrame:
    return loans.generate_events(ds, seed=seed, rows_per_day=rows, scenario=scenario)


def _labels(ds: dt.date = D, scenario: Scenario | None = None, rows: int = 2000) -> pd.DataFrame:
    return loans.generate_labels_for(ds, seed=SEED, rows_per_day=rows, scenario=scenario)


# -- determinism ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_inputs_give_identical_bytes(fmt: str) -> None:
    a = loans.landing_file_bytes(D, fmt, seed=SEED, rows_per_day=500)
    b = loans.landing_file_bytes(D, fmt, seed=SEED, rows_per_day=500)
    assert a == b
    assert loans.render(_events(rows=500), fmt) == a


def test_day_alone_equals_day_generated_inside_a_range() -> None:
    alone_events, alone_labels = _events(), _labels()
    in_range = {}
    for offset in range(-2, 2):
        day = D + dt.timedelta(days=offset)
        in_range[day] = (_events(day), _labels(day))
    pd.testing.assert_frame_equal(in_range[D][0], alone_events)
    pd.testing.assert_frame_equal(in_range[D][1], alone_labels)


def test_seed_and_day_change_the_data() -> None:
    base = _events(rows=300)
    assert not base.drop(columns="application_id").equals(
        _events(rows=300, seed=SEED + 1).drop(columns="application_id")
    )
    other_day = _events(D + dt.timedelta(days=7), rows=300)  # same weekday, different day
    assert not np.array_equal(base["credit_score"].to_numpy()[:100], other_day["credit_score"].to_numpy()[:100])


# -- schema and volume ------------------------------------------------------------------------------------


def test_schema_and_dtypes() -> None:
    df = _events()
    assert tuple(df.columns) == loans.COLUMNS
    assert len(loans.FEATURE_COLUMNS) >= 12
    assert str(df["applied_at"].dtype) == "datetime64[us]"
    assert df["application_id"].dtype == "str"
    for col, dtype in loans.NUMERIC_COLUMNS.items():
        assert str(df[col].dtype) == dtype, col
    for col, cats in loans.CATEGORICAL_COLUMNS.items():
        assert df[col].dtype == "str", col
        assert set(df[col]) == set(cats), col
    assert not df.isna().any().any()
    assert set(df["term_months"]) <= set(loans.TERMS)
    assert df["credit_score"].between(300, 850).all()
    assert df["age"].between(18, 85).all()
    assert (df["annual_income"] > 0).all()


def test_ids_unique_across_days_and_timestamps_inside_the_day() -> None:
    days = [D, D + dt.timedelta(days=1)]
    frames = [_events(d, rows=400) for d in days]
    ids = pd.concat([f["application_id"] for f in frames])
    assert ids.is_unique
    for day, df in zip(days, frames, strict=True):
        assert df["application_id"].str.fullmatch(rf"{day:%Y%m%d}-\d{{7}}").all()
        assert (df["applied_at"].dt.date == day).all()
        assert df["applied_at"].is_monotonic_increasing


def test_weekday_seasonality_and_rows_per_day() -> None:
    week = [D + dt.timedelta(days=i) for i in range(7)]
    counts = {d.weekday(): len(_events(d, rows=1000)) for d in week}
    assert counts[1] > counts[6] * 1.2  # Tuesday busier than Sunday
    assert 900 <= np.mean(list(counts.values())) <= 1100


def test_reference_sd_matches_generated_data() -> None:
    df = _events(rows=20000)
    for col, sd in loans.REFERENCE_SD.items():
        assert df[col].std() == pytest.approx(sd, rel=0.15), col


# -- labels -----------------------------------------------------------------------------------------------


def _xy(days: list[dt.date]) -> tuple[pd.DataFrame, np.ndarray]:
    ev = pd.concat([_events(d) for d in days], ignore_index=True)
    lab = pd.concat([_labels(d) for d in days], ignore_index=True)
    assert (ev["application_id"] == lab["application_id"]).all()
    x = pd.get_dummies(ev[list(loans.FEATURE_COLUMNS)], dtype=float)
    return x, lab["defaulted"].to_numpy()


def test_label_has_learnable_signal() -> None:
    train_days = [D - dt.timedelta(days=i) for i in range(1, 4)]
    x_train, y_train = _xy(train_days)
    x_test, y_test = _xy([D])
    x_test = x_test.reindex(columns=x_train.columns, fill_value=0.0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    assert auc > 0.7
    assert 0.08 < y_train.mean() < 0.25


def test_labels_schema_and_partition_arrival() -> None:
    lab = loans.label_partition(D, 3, seed=SEED, rows_per_day=300)
    event_day = D - dt.timedelta(days=3)
    assert list(lab.columns) == ["application_id", "defaulted", "event_ds", "label_ts"]
    assert set(lab["defaulted"]) <= {0, 1} and lab["defaulted"].dtype == "int64"
    assert (lab["event_ds"] == event_day).all()
    assert (lab["label_ts"].dt.date == D).all()
    ev = _events(event_day, rows=300)
    assert lab["application_id"].tolist() == ev["application_id"].tolist()


# -- scenarios --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["credit_score", "annual_income", "num_delinquencies"])
def test_numeric_covariate_shift_moves_only_that_column(column: str) -> None:
    scenario = Scenario.from_dict({"covariate_shifts": [{"start": D, "column": column, "shift_sd": 0.3}]})
    base, shifted = _events(rows=5000), _events(scenario=scenario, rows=5000)
    moved = (shifted[column].mean() - base[column].mean()) / loans.REFERENCE_SD[column]
    assert moved == pytest.approx(0.3, abs=0.05)
    pd.testing.assert_frame_equal(base.drop(columns=column), shifted.drop(columns=column))
    assert shifted[column].dtype == base[column].dtype


def test_shift_respects_its_window() -> None:
    scenario = Scenario.from_dict(
        {"covariate_shifts": [{"start": "2024-03-05", "end": "2024-03-06", "column": "age", "shift_sd": 1.0}]}
    )
    for day, changed in [
        (D - dt.timedelta(days=1), False),
        (D, True),
        (D + dt.timedelta(days=1), True),
        (D + dt.timedelta(days=2), False),
    ]:
        assert (not _events(day, rows=200).equals(_events(day, scenario, rows=200))) is changed, day


@pytest.mark.parametrize(("category", "share"), [("crypto", 0.2), ("MORTGAGE", 0.6), ("OTHER", 0.01)])
def test_categorical_share_shift(category: str, share: float) -> None:
    column = "purpose" if category == "crypto" else "home_ownership"
    scenario = Scenario.from_dict(
        {"covariate_shifts": [{"start": D, "column": column, "category": category, "share": share}]}
    )
    base, shifted = _events(), _events(scenario=scenario)
    assert (shifted[column] == category).mean() == pytest.approx(share, abs=1 / len(base))
    assert shifted[column].dtype == "str"
    pd.testing.assert_frame_equal(base.drop(columns=column), shifted.drop(columns=column))


def test_concept_shift_changes_labels_not_features() -> None:
    scenario = Scenario.from_dict(
        {"concept_shifts": [{"start": D, "column": "credit_score", "weight_multiplier": -1.0}]}
    )
    pd.testing.assert_frame_equal(_events(), _events(scenario=scenario))
    base, shifted = _labels(), _labels(scenario=scenario)
    assert (base["application_id"] == shifted["application_id"]).all()
    assert (base["defaulted"] != shifted["defaulted"]).mean() > 0.1
    # The relationship really flipped: high credit scores now default more.
    ev = _events()
    high = ev["credit_score"] > ev["credit_score"].median()
    assert shifted.loc[high, "defaulted"].mean() > shifted.loc[~high, "defaulted"].mean()
    assert base.loc[high, "defaulted"].mean() < base.loc[~high, "defaulted"].mean()


def test_intercept_only_concept_shift_moves_base_rate() -> None:
    scenario = Scenario.from_dict({"concept_shifts": [{"start": D, "intercept_shift": 1.0}]})
    assert _labels(scenario=scenario)["defaulted"].mean() > _labels()["defaulted"].mean() + 0.05


def test_landing_file_applies_the_scenario_corruption_on_its_day_only() -> None:
    scenario = Scenario.from_dict({"corruptions": [{"ds": D, "kind": "null_burst", "column": "age"}]})
    clean = loans.landing_file_bytes(D, "parquet", seed=SEED, rows_per_day=300)
    bad = loans.landing_file_bytes(D, "parquet", seed=SEED, rows_per_day=300, scenario=scenario)
    assert bad != clean
    rows = len(_events(rows=300))
    assert pq.read_table(io.BytesIO(bad)).column("age").null_count == round(0.3 * rows)
    other = D + dt.timedelta(days=1)
    assert loans.landing_file_bytes(other, "csv", seed=SEED, rows_per_day=300, scenario=scenario) == (
        loans.landing_file_bytes(other, "csv", seed=SEED, rows_per_day=300)
    )


def test_scenario_from_yaml_like_dict() -> None:
    scenario = Scenario.from_dict(
        {
            "name": "drift_demo",
            "covariate_shifts": [
                {"start": "2024-03-01", "end": None, "column": "credit_score", "shift_sd": -0.5},
                {"start": dt.date(2024, 3, 2), "column": "channel", "category": "partner_app", "share": 0.3},
            ],
            "concept_shifts": [{"start": "2024-04-01", "end": "2024-04-30", "column": "debt_to_income"}],
            "corruptions": [{"ds": "2024-03-10", "kind": "row_count_spike", "factor": 5}],
        }
    )
    assert scenario.name == "drift_demo"
    assert isinstance(scenario.covariate_shifts[1], loans.CategoryShift)
    assert scenario.concept_shifts[0].weight_multiplier == -1.0
    assert scenario.corruption_for(dt.date(2024, 3, 10)).params == (("factor", 5),)  # type: ignore[union-attr]
    assert scenario == Scenario.from_dict(
        {
            "name": "drift_demo",
            "covariate_shifts": [
                {"start": dt.date(2024, 3, 1), "column": "credit_score", "shift_sd": -0.5},
                {"start": "2024-03-02", "column": "channel", "category": "partner_app", "share": 0.3},
            ],
            "concept_shifts": [{"start": "2024-04-01", "end": "2024-04-30", "column": "debt_to_income"}],
            "corruptions": [{"ds": "2024-03-10", "kind": "row_count_spike", "factor": 5}],
        }
    )
    assert Scenario.from_dict(None) == Scenario()


@pytest.mark.parametrize(
    ("data", "field", "value"),
    [
        (
            {"covariate_shifts": [{"start": D, "column": "salary", "shift_sd": 1}]},
            "covariate_shifts[0].column",
            "salary",
        ),
        (
            {"covariate_shifts": [{"start": D, "end": "2024-03-01", "column": "age", "shift_sd": 1}]},
            "covariate_shifts[0].end",
            dt.date(2024, 3, 1),
        ),
        (
            {"covariate_shifts": [{"start": D, "column": "purpose", "shift_sd": 1}]},
            "covariate_shifts[0].column",
            "purpose",
        ),
        (
            {"covariate_shifts": [{"start": D, "column": "age", "category": "x", "share": 0.2}]},
            "covariate_shifts[0].column",
            "age",
        ),
        (
            {"covariate_shifts": [{"start": D, "column": "region", "category": "X", "share": 1.5}]},
            "covariate_shifts[0].share",
            1.5,
        ),
        (
            {"covariate_shifts": [{"start": "03/05/2024", "column": "age", "shift_sd": 1}]},
            "covariate_shifts[0].start",
            "03/05/2024",
        ),
        (
            {"covariate_shifts": [{"start": D, "column": "age", "shift_sd": "big"}]},
            "covariate_shifts[0].shift_sd",
            "big",
        ),
        (
            {"covariate_shifts": [{"start": D, "column": "age", "shift_sd": 1, "typo": 1}]},
            "covariate_shifts[0].typo",
            1,
        ),
        (
            {"concept_shifts": [{"start": D, "column": "zodiac_sign"}]},
            "concept_shifts[0].column",
            "zodiac_sign",
        ),
        ({"corruptions": [{"ds": D, "kind": "gremlins"}]}, "corruptions[0].kind", "gremlins"),
        ({"corruptions": [{"ds": D, "kind": "null_burst", "colum": "age"}]}, "corruptions[0].colum", "age"),
        ({"corruptions": [{"kind": "empty_file"}]}, "corruptions[0].ds", None),
        (
            {"corruptions": [{"ds": D, "kind": "empty_file"}, {"ds": D, "kind": "header_only"}]},
            "corruptions[1].ds",
            D,
        ),
        ({"covariate_shift": []}, "covariate_shift", []),
    ],
)
def test_scenario_validation_names_field_and_value(data: dict, field: str, value: object) -> None:
    with pytest.raises(ScenarioError) as err:
        Scenario.from_dict(data)
    assert err.value.field == field
    assert err.value.value == value
    assert field in str(err.value) and repr(value) in str(err.value)


def test_directly_built_scenario_objects_are_validated() -> None:
    with pytest.raises(ScenarioError, match="kind"):
        loans.CorruptionSpec(ds=D, kind="nope")
    with pytest.raises(ScenarioError, match="end"):
        loans.NumericShift(start=D, end=D - dt.timedelta(days=1), column="age", shift_sd=0.3)
    assert set(CORRUPTIONS) >= {"empty_file", "truncated_parquet"}
