"""Pure feature transforms: ``fn(df, **params) -> df``, referenced from model configs by dotted path.

Each returns a new frame and never mutates its input, so a transform can be tested on three rows without
Airflow, a lake or a model config. A parameter named ``lookup`` is a reference table: the pipeline loads
it from ``<lake>/reference/<name>/`` and passes the DataFrame in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def ratio(df: pd.DataFrame, *, numerator: str, denominator: str, output: str) -> pd.DataFrame:
    """``numerator / denominator``; a zero or missing denominator gives NaN, never inf."""
    den = df[denominator].astype("float64").replace(0.0, np.nan)
    return df.assign(**{output: df[numerator].astype("float64") / den})


def log1p(df: pd.DataFrame, *, column: str, output: str | None = None) -> pd.DataFrame:
    """``log(1 + x)`` for heavy-tailed amounts; negative values are clipped to 0 first."""
    return df.assign(**{output or f"log_{column}": np.log1p(df[column].astype("float64").clip(lower=0))})


def datetime_parts(
    df: pd.DataFrame, *, column: str, parts: Sequence[str] = ("hour", "dayofweek"), prefix: str | None = None
) -> pd.DataFrame:
    """Calendar parts of a timestamp column as integer features (hour, dayofweek, month, ...)."""
    ts = pd.to_datetime(df[column])
    pre = prefix if prefix is not None else f"{column}_"
    aliases = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}  # pandas 3 deprecates the short names
    return df.assign(**{f"{pre}{p}": getattr(ts.dt, aliases.get(p, p)).astype("int64") for p in parts})


def combine_datetime(df: pd.DataFrame, *, date_column: str, hhmm_column: str, output: str) -> pd.DataFrame:
    """A timestamp from a date and an ``HHMM`` integer (e.g. 1545), rounded down to the hour."""
    hhmm = df[hhmm_column].astype("int64")
    hours = (hhmm // 100).clip(0, 23)
    base = pd.to_datetime(df[date_column]).dt.floor("D")
    return df.assign(**{output: (base + pd.to_timedelta(hours, unit="h")).astype("datetime64[us]")})


def join_lookup(
    df: pd.DataFrame,
    *,
    lookup: pd.DataFrame,
    keys: str | Sequence[str],
    columns: Sequence[str],
    prefix: str = "",
    left_keys: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Left join of reference columns; rows without a match keep NaN (the model's imputer handles it).

    The lookup is de-duplicated on its keys first, so a join can never multiply the rows of an event table.
    """
    right_keys = [keys] if isinstance(keys, str) else list(keys)
    left_keys = right_keys if left_keys is None else ([left_keys] if isinstance(left_keys, str) else list(left_keys))
    right = lookup[[*right_keys, *columns]].drop_duplicates(subset=right_keys, keep="first")
    right = right.rename(columns={c: f"{prefix}{c}" for c in columns})
    for lk, rk in zip(left_keys, right_keys, strict=True):
        if lk != rk:
            right = right.rename(columns={rk: lk})
        if pd.api.types.is_datetime64_any_dtype(df[lk]):
            right[lk] = pd.to_datetime(right[lk]).astype(df[lk].dtype)
    out = df.merge(right, how="left", on=left_keys, validate="many_to_one")
    return out


def age_from_year(df: pd.DataFrame, *, year_column: str, reference_column: str, output: str) -> pd.DataFrame:
    """Age in years of e.g. an aircraft: ``year(reference timestamp) - year_column``."""
    ref_year = pd.to_datetime(df[reference_column]).dt.year
    return df.assign(**{output: (ref_year - df[year_column]).astype("float64")})


def floor_datetime(df: pd.DataFrame, *, column: str, freq: str, output: str) -> pd.DataFrame:
    """A timestamp rounded down (``freq`` as in pandas: ``"h"``, ``"D"``), e.g. as a join key to hourly data."""
    return df.assign(**{output: pd.to_datetime(df[column]).dt.floor(freq).astype("datetime64[us]")})
