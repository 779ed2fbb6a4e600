"""The reference profile: the training distributions that drift monitoring compares production against.

A small, strict-JSON document (no NaN, no infinities) stored next to the model:

- ``features.<numeric column>``: ``kind: "numeric"``, quantile bin ``edges`` (unique, from the data) with
  ``"-inf"`` / ``"inf"`` as the open outer edges, the share of values in each bin (``proportions``), and
  ``mean``, ``std``, ``min``, ``max``, ``n`` (non-null values), ``null_share`` (of all rows);
- ``features.<categorical column>``: ``kind: "categorical"``, ``frequencies`` (shares of the non-null
  values) of the ``max_categories`` most frequent values plus ``"__other__"``, ``n``, ``null_share``;
- ``prediction``: the numeric profile of the model's scores (or ``null``);
- numeric entries (features and scores) of a model's profile also carry ``between_intervals``: how much the
  mean moves from one scheduled interval to the next in the training rows (``intervals``, ``mean_of_means``,
  ``std_of_means``, ``median_rows``). Rows that share a lookup value (every row of an hour joined to
  one hourly reading) make an interval's mean vary far more than independent rows would; monitoring
  judges such features against this variation between intervals instead of against the rows;
- ``meta``: ``rows``, ``config_hash``, ``n_bins``, ``max_categories``, ``model``.

Bin ``i`` holds ``edges[i] <= x < edges[i + 1]``. Monitoring should bin new data with ``bin_proportions``
(and read edges with ``edges_array``) so both sides use exactly the same convention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sluice.config import ModelConfig
from sluice.evaluation.numbers import finite

OTHER = "__other__"
NEG_INF, POS_INF = "-inf", "inf"

#: How long a calendar part of a timestamp stays the same, ranked; a schedule's interval on the same scale.
PART_SPAN = {"hour": 0, "day": 1, "dayofweek": 1, "day_of_week": 1, "weekday": 1, "dayofyear": 1, "day_of_year": 1}
PART_SPAN |= {"week": 2, "month": 3, "quarter": 4, "year": 5}
_PRESET_SPAN = {"@hourly": 0, "@daily": 1, "@weekly": 2, "@monthly": 3, "@yearly": 5}
SPAN_NAME = {0: "hourly", 1: "daily", 2: "weekly", 3: "monthly", 5: "yearly"}
_SPAN_PERIOD = {0: "h", 1: "D", 2: "W-SAT", 3: "M", 5: "Y"}  # W-SAT: Sunday..Saturday, as Airflow's @weekly


def interval_span(schedule: str) -> int | None:
    """The rank of a schedule's interval in ``PART_SPAN`` terms; None when its intervals are irregular."""
    if schedule in _PRESET_SPAN:
        return _PRESET_SPAN[schedule]
    import datetime as dt

    from croniter import croniter

    it = croniter(schedule, dt.datetime(2025, 1, 1))
    fires = [it.get_next(dt.datetime) for _ in range(14)]
    hours = {round((b - a).total_seconds() / 3600) for a, b in zip(fires, fires[1:], strict=False)}
    for span, allowed in ((0, {1}), (1, {24}), (2, {168}), (3, {24 * d for d in range(28, 32)})):
        if hours <= allowed:
            return span
    return 5 if hours <= {24 * 365, 24 * 366} else None


def interval_labels(frame: pd.DataFrame, cfg: ModelConfig) -> np.ndarray | None:
    """Which scheduled interval each row belongs to (by ``dataset.timestamp_column``), or None when the frame
    has no timestamp or the schedule's intervals are irregular."""
    ts_col, span = cfg.dataset.timestamp_column, interval_span(cfg.schedule)
    if span is None or ts_col not in frame.columns:
        return None
    ts = pd.to_datetime(frame[ts_col])
    return ts.dt.to_period(_SPAN_PERIOD[span]).astype(str).to_numpy()


def full_intervals(counts: pd.Series) -> pd.Series:
    """The intervals with at least half the median count: a time split cuts the first and last interval of
    a window short, and a handful of rows would weigh as much as a whole interval."""
    counts = counts[counts > 0]
    return counts[counts >= 0.5 * counts.median()] if len(counts) else counts


def _between_intervals(values: pd.Series, intervals: np.ndarray) -> dict[str, Any] | None:
    grouped = values.groupby(intervals).agg(["mean", "count"])
    grouped = grouped.loc[full_intervals(grouped["count"]).index]
    if len(grouped) < 2:
        return None
    means = grouped["mean"].to_numpy(dtype="float64")
    return {
        "intervals": int(len(grouped)),
        "mean_of_means": finite(means.mean()),
        "std_of_means": finite(means.std(ddof=1)),
        "median_rows": int(np.median(grouped["count"].to_numpy())),
    }


def edges_array(entry: Mapping[str, Any]) -> np.ndarray:
    """The bin edges of a numeric profile entry as floats, outer edges -inf and +inf."""
    return np.array([float(e) for e in entry["edges"]], dtype="float64")


def bin_counts(v: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Counts per bin, bin ``i`` holding ``edges[i] <= x < edges[i + 1]`` (``searchsorted(side="right")``).

    With the usual ten bins, one ``count_nonzero(v >= edge)`` per edge is several times faster than
    ``searchsorted`` + ``bincount`` (a branchy binary search per value); many edges fall back to it.
    """
    if len(inner) > 32:
        return np.bincount(np.searchsorted(inner, v, side="right"), minlength=len(inner) + 1)
    at_least = [np.count_nonzero(v >= e) for e in inner]
    return -np.diff(np.array([len(v), *at_least, 0], dtype=np.int64))


def bin_proportions(values: Any, entry: Mapping[str, Any]) -> list[float]:
    """Shares of the non-null ``values`` in each bin of a numeric profile entry (empty input: all zeros)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    v = v[~np.isnan(v)]
    inner = edges_array(entry)[1:-1]
    counts = bin_counts(v, inner)
    n = len(v)
    return [float(c) / n if n else 0.0 for c in counts]


def numeric_profile(values: Any, n_bins: int = 10, intervals: np.ndarray | None = None) -> dict[str, Any]:
    """Quantile bins with open outer edges, their proportions, and summary statistics; with ``intervals`` (one
    label per value), how the mean varies between intervals (``between_intervals``)."""
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r}: must be >= 1")
    s = pd.to_numeric(pd.Series(values), errors="coerce")
    rows = len(s)
    v = s.to_numpy(dtype="float64", na_value=np.nan)
    v = v[~np.isnan(v)]  # +-inf are values: they land in the outer bins
    fin = v[np.isfinite(v)]
    if len(fin):
        qs = np.quantile(fin, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.array([])
        inner = np.unique(qs)
    else:
        inner = np.array([], dtype="float64")
    counts = bin_counts(v, inner)
    n = len(v)
    out: dict[str, Any] = {
        "kind": "numeric",
        "edges": [NEG_INF, *(float(e) for e in inner), POS_INF],
        "proportions": [float(c) / n if n else 0.0 for c in counts],
        "mean": finite(fin.mean()) if len(fin) else None,
        "std": finite(fin.std(ddof=1)) if len(fin) > 1 else None,
        "min": finite(fin.min()) if len(fin) else None,
        "max": finite(fin.max()) if len(fin) else None,
        "n": int(n),
        "null_share": float(rows - n) / rows if rows else 0.0,
    }
    if intervals is not None:
        if len(intervals) != rows:
            raise ValueError(f"{len(intervals)} interval labels for {rows} values")
        out["between_intervals"] = _between_intervals(s.where(np.isfinite(s.to_numpy(dtype="float64"))), intervals)
    return out


def categorical_profile(values: Any, max_categories: int = 50) -> dict[str, Any]:
    """Shares of the most frequent values (ties by value) plus ``__other__``, over the non-null values."""
    s = pd.Series(values)
    rows = len(s)
    present = s.dropna().astype(str)
    n = len(present)
    counts = present.value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ordered[:max_categories]
    frequencies = {str(k): float(c) / n for k, c in top}
    rest = sum(c for _, c in ordered[max_categories:])
    frequencies[OTHER] = float(rest) / n if n else 0.0
    return {
        "kind": "categorical",
        "frequencies": frequencies,
        "n": int(n),
        "null_share": float(rows - n) / rows if rows else 0.0,
    }


def reference_profile(
    frame: pd.DataFrame,
    cfg: ModelConfig,
    scores: np.ndarray | None,
    n_bins: int = 10,
    max_categories: int = 50,
) -> dict[str, Any]:
    """The profile of every model feature of ``frame`` (and of ``scores``), for drift monitoring."""
    missing = [c for c in (*cfg.features.numeric, *cfg.features.categorical) if c not in frame.columns]
    if missing:
        raise ValueError(f"model {cfg.name!r}: cannot profile; columns {missing} are not in the frame")
    intervals = interval_labels(frame, cfg)
    features: dict[str, Any] = {}
    for c in cfg.features.numeric:
        features[c] = numeric_profile(frame[c], n_bins, intervals)
    for c in cfg.features.categorical:
        features[c] = categorical_profile(frame[c], max_categories)
    return {
        "features": features,
        "prediction": (
            numeric_profile(np.asarray(scores, dtype="float64"), n_bins, intervals) if scores is not None else None
        ),
        "meta": {
            "model": cfg.name,
            "rows": int(len(frame)),
            "config_hash": cfg.config_hash,
            "n_bins": int(n_bins),
            "max_categories": int(max_categories),
        },
    }


def profile_json(profile: Mapping[str, Any]) -> bytes:
    """Deterministic strict JSON (sorted keys, compact); raises on NaN or infinity."""
    return json.dumps(profile, sort_keys=True, allow_nan=False, separators=(",", ":")).encode()
