"""The corruption corpus: registered, deterministic, and each file is broken in the advertised way."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.datagen import corrupt, loans
from sluice.datagen.corrupt import CORRUPTIONS, render

pytestmark = pytest.mark.unit

D = dt.date(2024, 3, 5)
REQUIRED_KINDS = {
    "empty_file",
    "header_only",
    "missing_column",
    "extra_column",
    "renamed_column",
    "numbers_as_strings",
    "decimal_commas",
    "null_burst",
    "out_of_range",
    "nan_inf",
    "duplicate_ids",
    "unseen_categories",
    "timestamps_outside_interval",
    "utf16_encoding",
    "invalid_utf8",
    "truncated_parquet",
    "row_count_spike",
}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return loans.generate_events(D, seed=3, rows_per_day=400)


def _apply(kind: str, df: pd.DataFrame, fmt: str, seed: int = 0, **params: object) -> bytes:
    return corrupt.corrupt(kind, df, fmt, np.random.default_rng(seed), **params)


def _pq(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def _csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


def test_all_kinds_registered_and_documented() -> None:
    assert set(CORRUPTIONS) >= REQUIRED_KINDS
    for kind, fn in CORRUPTIONS.items():
        assert fn.__name__ == kind
        assert fn.__doc__ and "Caught by" in fn.__doc__, kind


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("kind", sorted(REQUIRED_KINDS))
def test_every_kind_differs_from_clean_and_is_deterministic(kind: str, fmt: str, df: pd.DataFrame) -> None:
    before = df.copy()
    bad = _apply(kind, df, fmt)
    assert isinstance(bad, bytes)
    assert bad != render(df, fmt)
    assert bad == _apply(kind, df, fmt)
    pd.testing.assert_frame_equal(df, before)  # input untouched


def test_render_round_trips(df: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(_pq(render(df, "parquet")), df)
    back = _csv(render(df, "csv"))
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    with pytest.raises(ValueError, match="fmt"):
        render(df, "xlsx")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_structural_corruptions(df: pd.DataFrame, fmt: str) -> None:
    read = _pq if fmt == "parquet" else _csv
    assert _apply("empty_file", df, fmt) == b""
    header = read(_apply("header_only", df, fmt))
    assert len(header) == 0 and list(header.columns) == list(df.columns)
    assert "credit_score" not in read(_apply("missing_column", df, fmt)).columns
    assert "internal_score" in read(_apply("extra_column", df, fmt)).columns
    renamed = read(_apply("renamed_column", df, fmt)).columns
    assert "annual_income" not in renamed and "annual_income_usd" in renamed
    spike = read(_apply("row_count_spike", df, fmt))
    assert len(spike) == 20 * len(df) and spike["application_id"].is_unique
    assert spike["application_id"].str.fullmatch(r"20240305-\d{7}").all()


def test_type_corruptions(df: pd.DataFrame) -> None:
    as_strings = pq.read_table(io.BytesIO(_apply("numbers_as_strings", df, "parquet")))
    assert "string" in str(as_strings.schema.field("annual_income").type)
    values = as_strings.column("annual_income").to_pylist()
    assert "n/a" in values and any(v.endswith("k") for v in values)
    assert not pd.api.types.is_numeric_dtype(_csv(_apply("numbers_as_strings", df, "csv"))["annual_income"])

    commas_csv = _apply("decimal_commas", df, "csv")
    assert b'",' in commas_csv and not pd.api.types.is_numeric_dtype(_csv(commas_csv)["debt_to_income"])
    commas_pq = _pq(_apply("decimal_commas", df, "parquet"))
    assert commas_pq["interest_rate"].str.contains(",").all()


def test_value_corruptions(df: pd.DataFrame) -> None:
    nulls = _pq(_apply("null_burst", df, "parquet"))
    assert nulls["annual_income"].isna().mean() == pytest.approx(0.3, abs=0.01)
    assert nulls["annual_income"].dtype == df["annual_income"].dtype
    assert _csv(_apply("null_burst", df, "csv"))["annual_income"].isna().mean() == pytest.approx(0.3, abs=0.01)

    oor = _pq(_apply("out_of_range", df, "parquet"))
    assert (oor["age"] == 250).any() and (oor["annual_income"] < 0).any()

    naninf = _pq(_apply("nan_inf", df, "parquet"))["debt_to_income"]
    assert naninf.isna().any() and np.isposinf(naninf).any() and np.isneginf(naninf).any()
    naninf_csv = _csv(_apply("nan_inf", df, "csv"))["debt_to_income"]
    assert np.isinf(naninf_csv).any()

    dup = _pq(_apply("duplicate_ids", df, "parquet"))
    assert len(dup) == len(df) and not dup["application_id"].is_unique

    unseen = _pq(_apply("unseen_categories", df, "parquet"))
    assert (unseen["purpose"] == "crypto").mean() == pytest.approx(0.25, abs=0.01)

    moved = _pq(_apply("timestamps_outside_interval", df, "parquet"))["applied_at"]
    outside = (moved.dt.date != D).mean()
    assert outside == pytest.approx(0.1, abs=0.01)


def test_encoding_and_truncation(df: pd.DataFrame) -> None:
    for fmt in ("parquet", "csv"):
        utf16 = _apply("utf16_encoding", df, fmt)
        assert utf16[:2] in (b"\xff\xfe", b"\xfe\xff")
        with pytest.raises(UnicodeDecodeError):
            utf16.decode("utf-8")
    bad_csv = _apply("invalid_utf8", df, "csv")
    assert b"\xff\xfe" in bad_csv
    with pytest.raises(UnicodeDecodeError):
        bad_csv.decode("utf-8")
    bad_pq = _apply("invalid_utf8", df, "parquet")
    table = pq.read_table(io.BytesIO(bad_pq))  # the footer is fine; the contents are not
    assert table.num_rows == len(df)
    with pytest.raises(pa.ArrowInvalid, match="UTF8"):
        table.validate(full=True)
    with pytest.raises(pa.ArrowException):  # pandas reads lazily, then fails when values materialise
        _pq(bad_pq)["region"].tolist()

    clean_pq = render(df, "parquet")
    truncated = _apply("truncated_parquet", df, "parquet")
    assert truncated == clean_pq[: len(clean_pq) // 2]
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(truncated))
    clean_csv = render(df, "csv")
    truncated_csv = _apply("truncated_parquet", df, "csv")
    assert clean_csv.startswith(truncated_csv) and truncated_csv.count(b"\n") < len(df)


def test_params_override_defaults_and_are_checked(df: pd.DataFrame) -> None:
    out = _pq(_apply("null_burst", df, "parquet", column="credit_score", fraction=0.5))
    assert out["credit_score"].isna().mean() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="column='nope'"):
        _apply("missing_column", df, "csv", column="nope")
    with pytest.raises(ValueError, match="kind='nope'"):
        _apply("nope", df, "csv")
    assert corrupt.corruption_params("null_burst") == {"column", "fraction"}
    assert corrupt.corruption_params("empty_file") == set()


# -- the held-out corruptions: readable, same schema and types, broken only in distribution ----------------


def test_distribution_corruptions_keep_the_schema_and_break_what_they_say(df: pd.DataFrame) -> None:
    assert set(corrupt.DISTRIBUTION_CORRUPTIONS).isdisjoint(CORRUPTIONS)
    out = {kind: _pq(_apply(kind, df, "parquet")) for kind in corrupt.DISTRIBUTION_CORRUPTIONS}
    for kind, frame in out.items():
        assert list(frame.columns) == list(df.columns), kind
    assert out["constant_column"]["annual_income"].nunique() == 1
    assert out["constant_column"]["annual_income"].iloc[0] == df["annual_income"].median()
    scaled = out["unit_change"]["annual_income"]
    assert np.allclose(scaled, df["annual_income"] / 1000) and scaled.between(0, df["annual_income"].max()).all()
    assert (out["string_format_change"]["application_id"] == df["application_id"] + " ").all()
    before = df["purpose"].value_counts(normalize=True)
    after = out["category_share_shift"]["purpose"].value_counts(normalize=True)
    assert after[before.index[0]] - before.iloc[0] == pytest.approx(0.3, abs=0.01)
    assert set(after.index) == set(before.index)
    dup = out["duplicated_rows"]
    assert len(dup) == len(df) * 3 // 2 and dup["application_id"].duplicated().sum() == len(df) // 2


def test_string_format_change_cases_and_bad_parameters(df: pd.DataFrame) -> None:
    lower = _pq(_apply("string_format_change", df, "parquet", column="home_ownership", how="lower"))
    assert (lower["home_ownership"] == df["home_ownership"].str.lower()).all()
    with pytest.raises(ValueError, match="how='title'"):
        _apply("string_format_change", df, "parquet", how="title")
    with pytest.raises(ValueError, match="factor=1"):
        _apply("unit_change", df, "parquet", factor=1)
    assert corrupt.corruption_params("category_share_shift") == {"column", "points"}
