"""Schema inference, as TFX's SchemaGen does it: profile known-good partitions, propose a GX suite.

The proposal is written for a person to review and commit (``include/expectations/<suite>.json``); it is
never applied silently. It is built to generalise to days it has not seen (docs/validation.md has the
held-out test and its table), so every bound comes from what the known-good partitions showed, with a
margin sized by what they showed BETWEEN THEMSELVES or by sampling error, never by a fixed percentage:

- row checks: value ranges from robust quantiles (1st/99th) widened by their own spread, and for a heavy
  tail a row-level ``mostly`` from the share of known-good rows beyond that range; null limits from the
  observed null rate plus a binomial margin (a column never null stays strictly not-null); category sets of
  the values holding at least ``CATEGORY_SHARE`` of the rows (rare values are tolerated, not baked in);
  id pattern and no-surrounding-whitespace checks for strings;
- distribution checks, one value per partition: the mean and the standard deviation of each numeric
  column, the share of each major category, compared with the
  range the known-good partitions spanned (a constant column, a unit change hidden inside the old range,
  a category's share moved by 30 points), and duplicated rows.

A location move smaller than one standard deviation passes on purpose: that is drift, which monitoring
judges on the features; validation stops broken deliveries. Every expectation's ``meta.sluice`` says why it
was chosen and from what.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from sluice.config import ModelConfig
from sluice.validation.gx import TIMESTAMP_DTYPE

#: A string column with at most this many distinct values in the known-good data is categorical.
MAX_CATEGORIES = 100
#: A category holding less than this share of known-good rows is rare: tolerated, not part of the set.
CATEGORY_SHARE = 0.005
#: Room for unseen or rare categories in one partition, at least (a new state, a new airport).
UNSEEN_FLOOR = 0.02
#: Sampling margin of share limits (nulls, rows beyond a heavy tail, rare categories), in binomial
#: standard errors of one partition: 4 is about one false alarm in 30,000 checks from sampling alone.
Z = 4.0
#: Ranges: the 1st..99th percentile widened by this many times its own width on each side.
TAIL_WIDTH = 1.0
#: The mean may move this many pooled standard deviations beyond the partitions' own range (drift is smaller).
MEAN_SDS = 1.0
#: A heavy tail: the largest value beyond the 99th percentile by more than this times the 1st..99th width.
HEAVY_TAIL = 0.5
#: No spread check where a partition of only the most common value is likelier than this.
CONSTANT_CHANCE = 1e-6
#: The standard deviation may fall to the smallest one seen divided by max(this, largest / smallest seen).
STDEV_FACTOR = 2.0
#: Categories holding at least this share get share bounds (the most common one always does).
MAJOR_SHARE = 0.25


class ExpectationSpec(TypedDict, total=False):
    """One expectation of a suite JSON, as ``gx.validate`` reads it (``meta`` is optional)."""

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]


class SuiteSpec(TypedDict):
    """A suite JSON (``include/expectations/<suite>.json``): name, expectations and a ``meta`` of free data."""

    name: str
    expectations: list[ExpectationSpec]
    meta: dict[str, Any]


def _e(kind: str, why: str = "", /, **kwargs: Any) -> ExpectationSpec:
    spec: ExpectationSpec = {"type": kind, "kwargs": kwargs}
    if why:
        spec["meta"] = {"sluice": {"why": why}}
    return spec


def _with(spec: ExpectationSpec, **facts: Any) -> ExpectationSpec:
    """``spec`` with ``facts`` (what the bound was computed from) added to its ``meta.sluice``."""
    meta = spec.setdefault("meta", {}).setdefault("sluice", {})
    meta.update({k: _plain(v) for k, v in facts.items()})
    return spec


def _plain(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return _bound(float(v)) if math.isfinite(v) else str(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def category_like(s: pd.Series) -> bool:
    """A column the suite treats as categorical: categorical, or strings with few distinct values."""
    return isinstance(s.dtype, pd.CategoricalDtype) or (
        pd.api.types.is_string_dtype(s) and s.nunique() <= MAX_CATEGORIES
    )


def _dtype_name(s: pd.Series) -> str:
    """The dtype the column has after ``gx.prepare``, which is what the suite's type checks see."""
    if category_like(s):
        return "category"
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return TIMESTAMP_DTYPE
    return str(s.dtype)


def _bound(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 6)


def share_limit(rate: float, worst: float, n: int) -> float:
    """The largest share of a partition of ``n`` rows that may have a property (null, beyond the range,
    a rare category) when known-good data had it at ``rate`` overall and ``worst`` in its worst partition:
    the rate plus ``Z`` binomial standard errors, at least the worst partition, plus one row."""
    sampling = rate + Z * math.sqrt(rate * (1 - rate) / max(n, 1))
    return min(1.0, max(sampling, worst) + 1 / max(n, 1))


def _floor4(x: float) -> float:
    return math.floor(x * 10_000) / 10_000


def _mostly(limit: float) -> float:
    return _floor4(1 - limit)


# -- strings: id patterns --------------------------------------------------------------------------------

_RUNS = re.compile(r"[A-Z]+|[a-z]+|[0-9]+|.", re.S)


def _shape(value: str) -> tuple[str, ...]:
    """The character classes of ``value``, one per run: ``LFS-000123`` -> (``A``, ``-``, ``9``)."""
    return tuple(_class_of(run[0]) for run in _RUNS.findall(value))


def _class_of(c: str) -> str:
    """``A``, ``a`` or ``9`` for an ASCII letter or digit (a run of them), else the character itself."""
    if not c.isascii():
        return c
    return "A" if c.isupper() else "a" if c.islower() else "9" if c.isdigit() else c


def id_pattern(values: pd.Series) -> str | None:
    """A regex every known-good id matches, by runs of character classes with their length range
    (``^[A-Z]{3}\\-[0-9]{6}$``), or None when the ids do not share one shape."""
    texts = values.dropna().astype("str")
    if texts.empty:
        return None
    shapes = {_shape(t) for t in texts.head(2000)}
    if len(shapes) != 1:
        return None
    (shape,) = shapes
    runs = texts.str.findall(_RUNS.pattern)
    if not runs.map(len).eq(len(shape)).all():
        return None
    lengths = pd.DataFrame(runs.map(lambda r: [len(x) for x in r]).tolist())
    parts = []
    for i, cls in enumerate(shape):
        lo, hi = int(lengths[i].min()), int(lengths[i].max())
        rep = f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"
        if cls in ("A", "a", "9"):
            parts.append({"A": "[A-Z]", "a": "[a-z]", "9": "[0-9]"}[cls] + rep)
        else:
            parts.append(re.escape(cls))
    return "^" + "".join(parts) + "$"


#: A value with leading or trailing whitespace.
SURROUNDING_SPACE = r"^\s|\s$"


# -- the suite --------------------------------------------------------------------------------------------


def infer_suite(
    frames: Sequence[pd.DataFrame], cfg: ModelConfig, days: Sequence[dt.date], margin: float = 0.0
) -> SuiteSpec:
    """The suite for ``cfg``'s dataset proposed from its known-good partitions ``frames`` (of ``days``)."""
    return infer(
        frames,
        days,
        id_column=cfg.dataset.id_column,
        timestamp_column=cfg.dataset.timestamp_column,
        suite=cfg.validation.suite,
        dataset=cfg.dataset.name,
        generated_by=f"python -m sluice suite {cfg.name}",
        margin=margin,
    )


def infer(
    frames: Sequence[pd.DataFrame],
    days: Sequence[dt.date],
    *,
    id_column: str,
    timestamp_column: str,
    suite: str,
    dataset: str,
    generated_by: str,
    margin: float = 0.0,
) -> SuiteSpec:
    """A suite named ``suite`` from known-good ``frames`` (one per partition, of ``days``).

    ``margin`` widens every numeric range by that share of its width on top of the inferred tail margin
    (0 by default: the inferred margin already scales with the tail).
    """
    if not frames:
        raise ValueError("schema inference needs at least one known-good partition")
    df = pd.concat(frames, ignore_index=True)
    for col in (id_column, timestamp_column):
        if col not in df.columns:
            raise ValueError(f"column {col!r} named in dataset config is not in the data; columns: {list(df.columns)}")
    rows = [len(f) for f in frames]
    n = max(1, min(rows))
    part = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
    exps: list[ExpectationSpec] = [
        _e(
            "expect_table_columns_to_match_set",
            "the columns every known-good partition had, exactly",
            column_set=sorted(df.columns),
            exact_match=True,
        ),
        _with(
            _e(
                "expect_table_row_count_to_be_between",
                "half the smallest to twice the largest known-good partition: seasonality passes, a 20x spike not",
                min_value=max(1, math.floor(min(rows) * 0.5)),
                max_value=math.ceil(max(rows) * 2),
            ),
            partitions=len(frames),
            rows_min=min(rows),
            rows_max=max(rows),
        ),
        _e("expect_column_values_to_be_unique", "the dataset's id column", column=id_column),
        _e(
            "expect_column_values_to_be_between",
            "every event time inside the partition's interval",
            column=timestamp_column,
            min_value={"$PARAMETER": "interval_start"},
            max_value={"$PARAMETER": "interval_end"},
        ),
    ]
    rest = [c for c in sorted(df.columns) if c != id_column]
    if rest and not any(f.duplicated(subset=rest).any() for f in frames):
        exps.append(
            _with(
                _e(
                    "expect_compound_columns_to_be_unique",
                    "no known-good partition repeated a row under another id: a replayed batch with fresh ids",
                    column_list=rest,
                ),
                partitions=len(frames),
            )
        )
    for col in sorted(df.columns):
        s = df[col]
        kind = _dtype_name(s) if col != id_column else str(s.dtype)
        exps.append(_e("expect_column_type_to_be", "the type of every known-good partition", column=col, type_=kind))
        exps += _nulls(col, s, part, n)
        if col == timestamp_column:
            continue
        if col == id_column:
            exps += _strings(col, s, identifier=True)
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            exps += _numeric(col, s, part, n, margin)
        elif kind == "category":
            exps += _categorical(col, s, part, n)
        elif pd.api.types.is_string_dtype(s):
            exps += _strings(col, s, identifier=False)
    return {
        "name": suite,
        "expectations": exps,
        "meta": {
            "sluice": {
                "dataset": dataset,
                "inferred_from": [d.isoformat() for d in days],
                "rows_profiled": int(len(df)),
                "method": "robust quantile ranges, binomial null/category limits, between-partition distribution "
                "bounds (sluice.validation.schema, docs/validation.md)",
                "generated_by": generated_by,
                "note": "proposed by schema inference: review the bounds before committing",
            }
        },
    }


def _nulls(col: str, s: pd.Series, part: np.ndarray, n: int) -> list[ExpectationSpec]:
    isna = s.isna().to_numpy()
    rate = float(isna.mean())
    if rate == 0:
        return [_e("expect_column_values_to_not_be_null", "never null in known-good data", column=col)]
    worst = float(pd.Series(isna).groupby(part).mean().max())
    limit = share_limit(rate, worst, n)
    mostly = _mostly(limit)
    if mostly * n < 1:
        return []  # (almost) always null: no partition-sized limit says anything; the type check stays
    spec = _e(
        "expect_column_values_to_not_be_null",
        f"null rate plus {Z:g} binomial standard errors of a {n}-row partition (or the worst partition)",
        column=col,
        mostly=mostly,
    )
    return [_with(spec, null_rate=rate, worst_partition=worst, partition_rows=n)]


def _numeric(col: str, s: pd.Series, part: np.ndarray, n: int, margin: float) -> list[ExpectationSpec]:
    x = s.astype("float64")
    ok = x.notna().to_numpy()
    values, groups = x.to_numpy()[ok], part[ok]
    finite = np.isfinite(values)
    values, groups = values[finite], groups[finite]
    if len(values) == 0 or values.min() == values.max():
        return []  # constant (or empty) in every known-good partition: no scale to size a range from
    q01, q99 = np.quantile(values, [0.01, 0.99])
    width = float(q99 - q01) or float(values.max() - values.min())
    pad = width * (TAIL_WIDTH + margin)
    lo, hi = float(q01) - pad, float(q99) + pad
    if values.min() >= 0 and lo < 0:
        lo = 0.0
    if pd.api.types.is_integer_dtype(s):
        lo, hi = math.floor(lo), math.ceil(hi)
    beyond = (values < lo) | (values > hi)
    rate = float(beyond.mean())
    kwargs: dict[str, Any] = {"column": col, "min_value": _bound(lo), "max_value": _bound(hi)}
    why = f"1st..99th percentile widened by {TAIL_WIDTH + margin:g} x its width each side"
    facts: dict[str, Any] = {
        "q01": float(q01),
        "q99": float(q99),
        "observed_min": values.min(),
        "observed_max": values.max(),
    }
    heavy = values.max() > q99 + width * HEAVY_TAIL or (lo > 0 and values.min() < q01 - width * HEAVY_TAIL)
    if rate > 0 or heavy:
        # a tail this long grows with every day seen: rows beyond the range are allowed at the rate known-good
        # data had them (at least 3 / rows seen, the rule of three for "never seen"), plus sampling error
        worst = float(pd.Series(beyond).groupby(groups).mean().max())
        kwargs["mostly"] = _mostly(share_limit(max(rate, 3 / len(values)), worst, n))
        why += f"; heavy tail: rows beyond it allowed at their known-good rate plus {Z:g} standard errors"
        facts |= {"beyond_rate": rate, "beyond_worst_partition": worst, "partition_rows": n}
    out = [_with(_e("expect_column_values_to_be_between", why, **kwargs), **facts)]

    by_part = pd.Series(values).groupby(groups)
    means, sds = by_part.mean(), by_part.std()
    sd = float(np.std(values, ddof=1))
    if len(means) >= 2:
        span = float(means.max() - means.min())
        w = max(span, MEAN_SDS * sd)
        out.append(
            _with(
                _e(
                    "expect_column_mean_to_be_between",
                    f"the partitions' means widened by max(their range, {MEAN_SDS:g} pooled standard deviation)",
                    column=col,
                    min_value=_bound(float(means.min()) - w),
                    max_value=_bound(float(means.max()) + w),
                ),
                partitions=len(means),
                mean_min=float(means.min()),
                mean_max=float(means.max()),
                pooled_sd=sd,
            )
        )
    sd_min, sd_max = float(sds.min()), float(sds.max())
    mode_share = float(pd.Series(values).value_counts(normalize=True).iloc[0])
    # a column mostly one value (a count that is nearly always 0) is constant on some ordinary days
    if len(sds) >= 2 and sd_min > 0 and mode_share**n < CONSTANT_CHANCE:
        factor = max(STDEV_FACTOR, sd_max / sd_min)
        out.append(
            _with(
                _e(
                    "expect_column_stdev_to_be_between",
                    f"no partition's spread below the smallest seen / max({STDEV_FACTOR:g}, largest / smallest): "
                    "catches a constant column and a unit change inside the range (an upper bound would repeat "
                    "the range check and trip on a heavy tail's outlier)",
                    column=col,
                    min_value=_bound(sd_min / factor),
                ),
                partitions=len(sds),
                stdev_min=sd_min,
                stdev_max=sd_max,
            )
        )
    return out


def _categorical(col: str, s: pd.Series, part: np.ndarray, n: int) -> list[ExpectationSpec]:
    text = s.astype("str").where(s.notna())
    counts = text.value_counts()
    shares = counts / counts.sum()
    kept = shares[shares >= CATEGORY_SHARE]
    values = sorted(str(v) for v in kept.index)
    ok = text.notna().to_numpy()
    rare = (~text.isin(values)).to_numpy()[ok]
    rate = float(rare.mean()) if len(rare) else 0.0
    worst = float(pd.Series(rare).groupby(part[ok]).mean().max()) if len(rare) else 0.0
    limit = max(share_limit(rate, worst, n), UNSEEN_FLOOR)
    out = [
        _with(
            _e(
                "expect_column_values_to_be_in_set",
                f"values holding at least {CATEGORY_SHARE:.1%} of known-good rows; rarer or unseen values allowed at "
                f"their known-good rate plus {Z:g} standard errors (at least {UNSEEN_FLOOR:.0%})",
                column=col,
                value_set=values,
                mostly=_mostly(limit),
            ),
            rare_values=int(len(shares) - len(kept)),
            rare_rate=rate,
            rare_worst_partition=worst,
        )
    ]
    if len(values) < 2:
        return out
    nonnull = text[ok]
    groups = part[ok]
    majors = [v for v in values if shares[v] >= MAJOR_SHARE] or [str(shares.index[0])]
    if len(values) == 2:  # two values: the other's share is the complement, one bound says it all
        majors = [str(shares.index[0])]
    for v in majors:
        per_part = (nonnull == v).groupby(groups).mean()
        share = float(shares[v])
        w = max(Z * math.sqrt(share * (1 - share) / n), float(per_part.max() - per_part.min()))
        lo, hi = max(0.0, float(per_part.min()) - w), min(1.0, float(per_part.max()) + w)
        facts = {"share": share, "share_min": per_part.min(), "share_max": per_part.max(), "partitions": len(per_part)}
        why = (
            f"share of {v!r} inside the partitions' range widened by max(that range, {Z:g} binomial standard "
            f"errors of a {n}-row partition): catches a category's share moved"
        )
        if lo > 0:
            out.append(
                _with(
                    _e("expect_column_values_to_be_in_set", why, column=col, value_set=[v], mostly=_floor4(lo)),
                    **facts,
                )
            )
        if hi < 1:
            out.append(
                _with(
                    _e("expect_column_values_to_not_be_in_set", why, column=col, value_set=[v], mostly=_floor4(1 - hi)),
                    **facts,
                )
            )
    return out


def _strings(col: str, s: pd.Series, *, identifier: bool) -> list[ExpectationSpec]:
    """Ids: the shape they all had (which fixes case, length and whitespace), else their lengths; any string
    column: no surrounding whitespace when no known-good value had any."""
    text = s.dropna().astype("str")
    if text.empty:
        return []
    pattern = id_pattern(text) if identifier else None
    if pattern:
        why = "the shape every known-good id had (character classes and run lengths; no whitespace)"
        return [_with(_e("expect_column_values_to_match_regex", why, column=col, regex=pattern), ids=len(text))]
    out: list[ExpectationSpec] = []
    if identifier:
        lengths = text.str.len()
        why = "the id lengths known-good data had (the ids share no one shape)"
        out.append(
            _e(
                "expect_column_value_lengths_to_be_between",
                why,
                column=col,
                min_value=int(lengths.min()),
                max_value=int(lengths.max()),
            )
        )
    if not text.str.contains(SURROUNDING_SPACE, regex=True).any():
        why = "no known-good value had leading or trailing whitespace"
        out.append(_e("expect_column_values_to_not_match_regex", why, column=col, regex=SURROUNDING_SPACE))
    return out
