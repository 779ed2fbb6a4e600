"""Schema inference, as TFX's SchemaGen does it: profile known-good partitions, propose a GX suite.

The proposal is written for a person to review and commit (``include/expectations/<suite>.json``); it is
never applied silently. Ranges get a margin, categorical columns allow a small share of unseen values,
and the row-count bounds leave room for ordinary seasonality but not for a 20x spike.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, TypedDict

import pandas as pd

from sluice.config import ModelConfig
from sluice.validation.gx import TIMESTAMP_DTYPE

MAX_CATEGORIES = 50
UNSEEN_CATEGORY_SHARE = 0.05


class ExpectationSpec(TypedDict):
    """One expectation of a suite JSON, as ``gx.validate`` reads it."""

    type: str
    kwargs: dict[str, Any]


class SuiteSpec(TypedDict):
    """A suite JSON (``include/expectations/<suite>.json``): name, expectations and a ``meta`` of free data."""

    name: str
    expectations: list[ExpectationSpec]
    meta: dict[str, Any]


def _e(kind: str, **kwargs: Any) -> ExpectationSpec:
    return {"type": kind, "kwargs": kwargs}


def _dtype_name(s: pd.Series) -> str:
    """The dtype the column has after ``gx.prepare``, which is what the suite's type checks see."""
    if isinstance(s.dtype, pd.CategoricalDtype) or (pd.api.types.is_string_dtype(s) and s.nunique() <= MAX_CATEGORIES):
        return "category"
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return TIMESTAMP_DTYPE
    return str(s.dtype)


def _bound(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 6)


def infer_suite(
    frames: Sequence[pd.DataFrame], cfg: ModelConfig, days: Sequence[dt.date], margin: float = 0.25
) -> SuiteSpec:
    if not frames:
        raise ValueError("schema inference needs at least one known-good partition")
    df = pd.concat(frames, ignore_index=True)
    ds_cfg = cfg.dataset
    for col in (ds_cfg.id_column, ds_cfg.timestamp_column):
        if col not in df.columns:
            raise ValueError(f"column {col!r} named in dataset config is not in the data; columns: {list(df.columns)}")
    rows = [len(f) for f in frames]
    exps: list[ExpectationSpec] = [
        _e("expect_table_columns_to_match_set", column_set=sorted(df.columns), exact_match=True),
        _e(
            "expect_table_row_count_to_be_between",
            min_value=max(1, math.floor(min(rows) * 0.5)),
            max_value=math.ceil(max(rows) * 2),
        ),
        _e("expect_column_values_to_be_unique", column=ds_cfg.id_column),
        _e(
            "expect_column_values_to_be_between",
            column=ds_cfg.timestamp_column,
            min_value={"$PARAMETER": "interval_start"},
            max_value={"$PARAMETER": "interval_end"},
        ),
    ]
    for col in sorted(df.columns):
        s = df[col]
        kind = _dtype_name(s) if col != ds_cfg.id_column else str(s.dtype)
        exps.append(_e("expect_column_type_to_be", column=col, type_=kind))
        null_share = float(s.isna().mean())
        if null_share == 0:
            exps.append(_e("expect_column_values_to_not_be_null", column=col))
        else:
            # Room for ordinary variation (3x what was seen, at least 5 points more), not for a null burst.
            mostly = max(0.0, round(1 - min(1.0, max(null_share * 3, null_share + 0.05)), 4))
            exps.append(_e("expect_column_values_to_not_be_null", column=col, mostly=mostly))
        if col in (ds_cfg.id_column, ds_cfg.timestamp_column):
            continue
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            lo, hi = float(s.min()), float(s.max())
            pad = (hi - lo) * margin
            lo_b = 0 if lo >= 0 and lo - pad < 0 else lo - pad
            exps.append(
                _e("expect_column_values_to_be_between", column=col, min_value=_bound(lo_b), max_value=_bound(hi + pad))
            )
        elif kind == "category":
            values = sorted(str(v) for v in s.dropna().unique())
            exps.append(
                _e("expect_column_values_to_be_in_set", column=col, value_set=values, mostly=1 - UNSEEN_CATEGORY_SHARE)
            )
    return {
        "name": cfg.validation.suite,
        "expectations": exps,
        "meta": {
            "sluice": {
                "dataset": ds_cfg.name,
                "inferred_from": [d.isoformat() for d in days],
                "rows_profiled": int(len(df)),
                "margin": margin,
                "generated_by": f"python -m sluice suite {cfg.name}",
                "note": "proposed by schema inference: review the bounds before committing",
            }
        },
    }
