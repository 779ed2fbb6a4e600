"""Drift of a current partition against the reference profile saved at training: pure, vectorized, streaming.

The reference side is the small profile of ``sluice.training.profile`` (quantile bins, mean, std, n per numeric
feature; category shares per categorical feature; the same for the training scores). The current side is
reduced chunk by chunk into the same shape -- bin counts (``np.searchsorted`` on the profile's edges, the
profile's own convention), sums and sums of squares, category counts -- so memory is that of one chunk
whatever the partition size (:class:`DriftAccumulator`, :func:`drift_from_parquet`).

Per numeric feature (and for the scores):

- ``psi`` over the reference bins (shares floored at ``PSI_EPS``);
- a Welch t-test of the mean (``effect`` = |mean shift| / reference std) and a chi-square test of homogeneity
  of the bin counts; the feature's p-value is the smaller of the two, doubled (Bonferroni within the feature);
- drifted when the adjusted p-value is below ``alpha`` and the mean moved by at least ``effect_size_floor``
  reference standard deviations, or the PSI is at least ``psi_threshold`` (``prediction_psi_threshold`` for
  the scores). The p-value alone never decides: on a million rows a 0.05 sd shift is "significant" and trivial.

Per categorical feature: the chi-square test over the reference categories plus ``__other__`` (every value
the profile does not list), ``psi`` over the same cells, ``effect`` = the largest absolute change of a cell's
share, and ``unseen_share`` = the share of values the profile does not list. Drifted when the adjusted p-value
is below ``alpha`` and a share moved by at least ``share_shift_floor``, the unseen share exceeds the
reference's ``__other__`` share by at least ``unseen_share_threshold``, or the PSI is at least
``psi_threshold``.

The p-values of all features and the scores are adjusted together (Holm, or Benjamini-Hochberg). The
interval drifts when the drifted features carry at least ``min_drifted_weight`` of the feature importance
(permutation importances clipped at 0 and normalised; equal weights without them), when the scores drifted,
or when a categorical feature drifted by its unseen values whatever its weight: an importance measured on the
training categories says nothing about values the model never saw.
:func:`decide` turns a history of intervals into a retraining decision: drift in ``k`` of the last ``n``
intervals, never within ``cooldown_days`` of the last retrain.

Every result is JSON-safe (no NaN or infinity: undefined numbers are ``None``) and says why in words, e.g.
``"loan_to_income: mean shifted +0.31 sd (p=1e-40), PSI 0.090"``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sluice.config import ModelConfig, MonitoringConfig
from sluice.training.profile import (
    OTHER,
    PART_SPAN,
    SPAN_NAME,
    categorical_profile,
    edges_array,
    interval_span,
    numeric_profile,
)

#: Shares are floored at this before the PSI's logarithm (an empty bin on one side is not an infinite PSI).
PSI_EPS = 1e-4
#: Distinct unseen values counted per categorical feature (for the examples in the reason); the total unseen
#: count is exact, only the per-value examples are pruned beyond this.
MAX_TRACKED_UNSEEN = 1000
#: Unseen values named in a result.
TOP_UNSEEN = 5
#: Rows per record batch read from parquet.
BATCH_ROWS = 1 << 16
#: Reference intervals needed before a feature's day-to-day variation is trusted (see ``_interval_test``).
MIN_REFERENCE_INTERVALS = 5
#: An integer or string column of at least this many rows with every value distinct is an identifier.
MIN_ID_ROWS = 20

__all__ = [
    "DriftAccumulator",
    "adjust_pvalues",
    "checked_features",
    "chi2_homogeneity",
    "decide",
    "drift_from_parquet",
    "feature_rows",
    "feature_weights",
    "infer_columns",
    "profile_frame",
    "psi",
    "read_profile",
    "welch_test",
]


# ---- which features a model's drift check covers ---------------------------------------------------------


def checked_features(cfg: ModelConfig) -> tuple[list[str], list[str], dict[str, str]]:
    """``(numeric, categorical, not_checked)``: the features a drift check of ``cfg`` tests, and why the others
    are left out.

    Left out: ``monitoring.exclude_features`` (with the reason given there), and the calendar parts of the
    dataset's timestamp (``datetime_parts`` on ``dataset.timestamp_column``) that cannot vary within one
    scheduled interval -- the day of week of a daily model holds one value per interval, so against a reference
    of many days it "drifts" every day and says nothing.
    """
    skip = dict(cfg.monitoring.exclude_features)
    span = interval_span(cfg.schedule)
    for t in cfg.features.transforms:
        if span is None or not t.fn.endswith(":datetime_parts"):
            continue
        column = t.params.get("column")
        if column != cfg.dataset.timestamp_column:
            continue
        prefix = t.params.get("prefix")
        prefix = prefix if prefix is not None else f"{column}_"
        for part in t.params.get("parts", ("hour", "dayofweek")):
            name = f"{prefix}{part}"
            if PART_SPAN.get(part, -1) >= span and name not in skip:
                skip[name] = f"calendar part ({part}) of {column}: one value per {SPAN_NAME[span]} interval"
    numeric = [c for c in cfg.features.numeric if c not in skip]
    categorical = [c for c in cfg.features.categorical if c not in skip]
    listed = {*cfg.features.numeric, *cfg.features.categorical}
    return numeric, categorical, {c: why for c, why in skip.items() if c in listed}


# ---- statistics (pure) -----------------------------------------------------------------------------------


def _f(x: Any) -> float | None:
    """A finite Python float, or None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def psi(reference: Any, current: Any, eps: float = PSI_EPS) -> float:
    """Population stability index of two share vectors over the same cells, shares floored at ``eps``."""
    p = np.maximum(np.asarray(reference, dtype="float64"), eps)
    q = np.maximum(np.asarray(current, dtype="float64"), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def chi2_homogeneity(reference_counts: Any, current_counts: Any) -> tuple[float, int, float]:
    """Chi-square test that two samples of counts over the same cells come from one distribution.

    Returns ``(statistic, degrees of freedom, p-value)``; cells empty on both sides are dropped, and fewer than
    two cells (or an empty side) is no evidence at all: ``(0.0, 0, 1.0)``.
    """
    from scipy.stats import chi2

    a = np.asarray(reference_counts, dtype="float64")
    b = np.asarray(current_counts, dtype="float64")
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    na, nb = a.sum(), b.sum()
    if len(a) < 2 or na <= 0 or nb <= 0:
        return 0.0, 0, 1.0
    total = a + b
    ea, eb = total * (na / (na + nb)), total * (nb / (na + nb))
    stat = float(np.sum((a - ea) ** 2 / ea) + np.sum((b - eb) ** 2 / eb))
    df = len(a) - 1
    return stat, df, float(chi2.sf(stat, df))


def welch_test(
    mean_ref: float, sd_ref: float, n_ref: float, mean_cur: float, sd_cur: float, n_cur: float
) -> tuple[float, float]:
    """Welch's two-sample t-test of the means from summary statistics: ``(t, two-sided p-value)``.

    Fewer than two values on a side is no evidence (``(0.0, 1.0)``); two constant samples with different means
    are certainly different (``(inf, 0.0)``).
    """
    from scipy.stats import t as student_t

    if n_ref < 2 or n_cur < 2:
        return 0.0, 1.0
    va, vb = sd_ref**2 / n_ref, sd_cur**2 / n_cur
    diff = mean_cur - mean_ref
    if va + vb <= 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n_ref - 1) + vb**2 / (n_cur - 1))
    return t, float(2 * student_t.sf(abs(t), df))


def adjust_pvalues(pvalues: Any, method: str = "holm") -> np.ndarray:
    """Family-wise (``"holm"``) or false-discovery-rate (``"bh"``, Benjamini-Hochberg) adjusted p-values."""
    p = np.asarray(pvalues, dtype="float64")
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ps = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps))
    elif method == "bh":
        adj = np.minimum.accumulate(np.minimum(1.0, ps * m / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}; expected 'holm' or 'bh'")
    out = np.empty(m)
    out[order] = adj
    return out


def feature_weights(features: Sequence[str], importances: Mapping[str, Any] | None = None) -> tuple[dict, str]:
    """Each feature's share of the importance, and how it was obtained (``"importance"`` or ``"equal"``).

    Importances (``feature_importance.json``: feature -> permutation importance) are clipped at 0 (a negative
    permutation importance is noise, not negative relevance); features they do not name weigh 0. Without
    importances, or when they are all <= 0, every feature weighs the same.
    """
    if not features:
        return {}, "equal"
    if importances is not None:
        raw = {}
        for f in features:
            try:
                v = _f(importances.get(f, 0.0))
            except (TypeError, ValueError):
                raise ValueError(f"importance of {f!r}: expected a number, got {importances.get(f)!r}") from None
            raw[f] = max(v or 0.0, 0.0)
        total = sum(raw.values())
        if total > 0:
            return {f: v / total for f, v in raw.items()}, "importance"
    return {f: 1.0 / len(features) for f in features}, "equal"


# ---- profiles --------------------------------------------------------------------------------------------


def _is_datetime(dtype: Any) -> bool:
    return pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype)


def infer_columns(frame: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """``(numeric, categorical, skipped)`` for a frame without a model config.

    Numeric dtypes (not booleans) are numeric, the rest categorical. Skipped, with the reason: timestamps,
    and identifiers (integer or string columns of at least ``MIN_ID_ROWS`` rows whose values are all distinct,
    which would drift by construction).
    """
    numeric, categorical, skipped = [], [], {}
    for c in frame.columns:
        s = frame[c]
        name = str(c)
        if _is_datetime(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
            skipped[name] = f"timestamp ({s.dtype})"
            continue
        is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        maybe_id = (not is_num) or pd.api.types.is_integer_dtype(s.dtype)
        present = s.dropna()
        if maybe_id and len(present) >= MIN_ID_ROWS and present.nunique() == len(present):
            skipped[name] = "identifier (every value distinct)"
            continue
        (numeric if is_num else categorical).append(name)
    return numeric, categorical, skipped


def profile_frame(
    frame: pd.DataFrame,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    scores: Any = None,
    n_bins: int = 10,
    max_categories: int = 50,
    model: str | None = None,
) -> dict[str, Any]:
    """A reference profile of any frame, laid out as ``reference_profile`` makes it, without a model config.

    Columns default to :func:`infer_columns`. ``meta.config_hash`` is None (no config).
    """
    if numeric is None and categorical is None:
        numeric, categorical, _ = infer_columns(frame)
    numeric, categorical = list(numeric or ()), list(categorical or ())
    both = set(numeric) & set(categorical)
    if both:
        raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
    missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot profile: columns {missing} are not in the frame (columns: {list(frame.columns)})")
    features: dict[str, Any] = {}
    for c in numeric:
        features[c] = numeric_profile(frame[c], n_bins)
    for c in categorical:
        features[c] = categorical_profile(frame[c], max_categories)
    return {
        "features": features,
        "prediction": numeric_profile(np.asarray(scores, dtype="float64"), n_bins) if scores is not None else None,
        "meta": {
            "model": model,
            "rows": int(len(frame)),
            "config_hash": None,
            "n_bins": int(n_bins),
            "max_categories": int(max_categories),
        },
    }


def _check_entry(name: str, entry: Any) -> str:
    """The kind of a profile entry; ValueError naming the feature and the missing key."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"profile feature {name!r}: expected a mapping, got {type(entry).__name__}")
    kind = entry.get("kind")
    need = {"numeric": ("edges", "proportions", "n"), "categorical": ("frequencies", "n")}.get(kind)
    if need is None:
        raise ValueError(f"profile feature {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}")
    lacking = [k for k in need if k not in entry]
    if lacking:
        raise ValueError(f"profile feature {name!r} ({kind}): missing {lacking}")
    if kind == "numeric" and len(entry["proportions"]) != len(entry["edges"]) - 1:
        raise ValueError(
            f"profile feature {name!r}: {len(entry['edges'])} edges but {len(entry['proportions'])} proportions"
        )
    return kind


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile JSON file (``reference_profile.json``), checked; errors name the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the profile: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON profile: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
        raise ValueError(f"{path}: not a reference profile: expected a mapping with a 'features' mapping")
    try:
        for name, entry in data["features"].items():
            _check_entry(name, entry)
        if data.get("prediction") is not None and _check_entry("prediction", data["prediction"]) != "numeric":
            raise ValueError("profile 'prediction': must be a numeric entry")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return dict(data)


# ---- streaming accumulation ------------------------------------------------------------------------------


class _Numeric:
    """Bin counts, non-null count and centred moments of one numeric column, chunk by chunk."""

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.entry = entry
        self.inner = edges_array(entry)[1:-1]
        self.center = float(entry.get("mean") or 0.0)  # moments about the reference mean: no cancellation
        self.counts = np.zeros(len(self.inner) + 1, dtype=np.int64)
        self.rows = self.n = self.n_finite = 0
        self.s1 = self.s2 = 0.0

    def update(self, v: np.ndarray) -> None:
        self.rows += len(v)
        nan = np.isnan(v)
        if nan.any():
            v = v[~nan]
        self.n += len(v)
        self.counts += _bin_counts(v, self.inner)
        finite = np.isfinite(v)
        if not finite.all():
            v = v[finite]
        d = v - self.center
        self.n_finite += len(d)
        self.s1 += float(d.sum())
        self.s2 += float(np.einsum("i,i->", d, d))  # not BLAS: no thread pool for a dot product


def _bin_counts(v: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Counts per bin, bin ``i`` holding ``edges[i] <= x < edges[i + 1]`` (``searchsorted(side="right")``).

    With the usual ten bins, one ``count_nonzero(v >= edge)`` per edge is several times faster than
    ``searchsorted`` + ``bincount`` (a branchy binary search per value); many edges fall back to it.
    """
    if len(inner) > 32:
        return np.bincount(np.searchsorted(inner, v, side="right"), minlength=len(inner) + 1)
    at_least = [np.count_nonzero(v >= e) for e in inner]
    return -np.diff(np.array([len(v), *at_least, 0], dtype=np.int64))


class _Categorical:
    """Counts of the profile's categories (last cell: every other value) and a bounded tally of unseen values."""

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.entry = entry
        self.cells = [c for c in entry["frequencies"] if c != OTHER] + [OTHER]
        self.index = pd.Index(self.cells[:-1], dtype=object)
        self.counts = np.zeros(len(self.cells), dtype=np.int64)
        self.rows = self.n = 0
        self.unseen: dict[str, int] = {}

    def update(self, s: pd.Series) -> None:
        self.rows += len(s)
        if isinstance(s.dtype, pd.CategoricalDtype):  # e.g. parquet's dictionary-encoded strings: no hashing
            codes = s.cat.codes.to_numpy()
            counts = np.bincount(codes[codes >= 0], minlength=len(s.cat.categories))
            present = counts > 0
            keys, counts = s.cat.categories[present].astype(str), counts[present]
        else:
            vc = s.value_counts(dropna=True, sort=False)
            keys, counts = vc.index.astype(str), vc.to_numpy(dtype=np.int64)  # str(), as categorical_profile
        if not len(keys):
            return
        codes = self.index.get_indexer(keys)
        new = codes < 0
        codes[new] = len(self.cells) - 1
        np.add.at(self.counts, codes, counts)
        self.n += int(counts.sum())
        if new.any():
            for k, c in zip(keys[new].tolist(), counts[new].tolist(), strict=True):
                self.unseen[k] = self.unseen.get(k, 0) + c
            if len(self.unseen) > MAX_TRACKED_UNSEEN:
                top = sorted(self.unseen.items(), key=lambda kv: (-kv[1], kv[0]))[: MAX_TRACKED_UNSEEN // 2]
                self.unseen = dict(top)


def _numeric_values(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)  # as numeric_profile


class DriftAccumulator:
    """The current side of the drift check, built chunk by chunk in memory bounded by one chunk.

    ``numeric``/``categorical`` default to every feature of the profile, by its kind. ``update(chunk,
    scores=None)`` takes a DataFrame (or a pyarrow RecordBatch/Table) holding at least those columns, and the
    model's scores for its rows when the score distribution should be checked too (the profile must then have a
    ``prediction`` entry). ``result(settings, importances)`` may be called at any point. ``not_checked``
    (feature -> why, from :func:`checked_features`) is carried into the result so every report says what was
    left out.
    """

    def __init__(
        self,
        profile: Mapping[str, Any],
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        not_checked: Mapping[str, str] | None = None,
    ) -> None:
        feats = profile.get("features") if isinstance(profile, Mapping) else None
        if not isinstance(feats, Mapping):
            raise ValueError("not a reference profile: expected a mapping with a 'features' mapping")
        kinds = {name: _check_entry(name, entry) for name, entry in feats.items()}
        if numeric is None and categorical is None:
            numeric = [c for c, k in kinds.items() if k == "numeric"]
            categorical = [c for c, k in kinds.items() if k == "categorical"]
        numeric, categorical = list(numeric or ()), list(categorical or ())
        problems = [f"{c!r} is not in the profile" for c in (*numeric, *categorical) if c not in kinds]
        problems += [
            f"{c!r} is {kinds[c]} in the profile, not numeric" for c in numeric if kinds.get(c, "numeric") != "numeric"
        ]
        problems += [
            f"{c!r} is {kinds[c]} in the profile, not categorical"
            for c in categorical
            if kinds.get(c, "categorical") != "categorical"
        ]
        if set(numeric) & set(categorical):
            problems.append(f"listed as both numeric and categorical: {sorted(set(numeric) & set(categorical))}")
        if problems:
            raise ValueError("cannot check drift against this profile: " + "; ".join(problems))
        if not numeric and not categorical:
            raise ValueError("cannot check drift: no features to check")
        self.profile = profile
        self.numeric = {c: _Numeric(feats[c]) for c in numeric}
        self.categorical = {c: _Categorical(feats[c]) for c in categorical}
        pred = profile.get("prediction")
        self.prediction = _Numeric(pred) if pred is not None and _check_entry("prediction", pred) == "numeric" else None
        self.not_checked = dict(not_checked or {})
        self.scores_seen = False
        self.rows = 0

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def update(self, chunk: Any, scores: Any = None) -> DriftAccumulator:
        if not isinstance(chunk, pd.DataFrame):
            import pyarrow as pa

            if isinstance(chunk, pa.RecordBatch | pa.Table):
                chunk = chunk.select([c for c in self.columns if c in chunk.schema.names]).to_pandas()
            else:
                raise TypeError(f"expected a DataFrame or a pyarrow RecordBatch/Table, got {type(chunk).__name__}")
        missing = [c for c in self.columns if c not in chunk.columns]
        if missing:
            raise ValueError(f"the current data lacks profiled columns {missing}")
        s = None
        if scores is not None:  # checked before anything is counted: a rejected chunk leaves no trace
            s = np.asarray(scores, dtype="float64").ravel()
            if len(s) != len(chunk):
                raise ValueError(f"{len(s)} scores for a chunk of {len(chunk)} rows")
            if self.prediction is None:
                raise ValueError("scores were given but the profile has no 'prediction' entry to compare them with")
        for c, state in self.numeric.items():
            state.update(_numeric_values(chunk[c]))
        for c, state in self.categorical.items():
            state.update(chunk[c])
        self.rows += len(chunk)
        if s is not None and self.prediction is not None:
            self.prediction.update(s)
            self.scores_seen = True
        return self

    def result(
        self, settings: MonitoringConfig | None = None, importances: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The verdict for this interval (see the module doc); JSON-safe."""
        st = settings or MonitoringConfig()
        stats: dict[str, dict[str, Any]] = {}
        for c, state in self.numeric.items():
            stats[c] = _numeric_stats(state, st)
        for c, state in self.categorical.items():
            stats[c] = _categorical_stats(state)
        pred = _numeric_stats(self.prediction, st) if self.prediction is not None and self.scores_seen else None

        family = [*stats.values(), *([pred] if pred is not None else [])]
        adjusted = adjust_pvalues([s["p_value"] for s in family], st.correction)
        for s, p in zip(family, adjusted, strict=True):
            s["p_adjusted"] = float(p)

        # Shares of the whole model's importance: leaving a feature out must not inflate the others' weight.
        weights, weighting = feature_weights([*stats, *self.not_checked], importances)
        for c, s in stats.items():
            s["weight"] = weights[c]
            _judge(c, s, st, st.psi_threshold)
        if pred is not None:
            _judge("prediction", pred, st, st.prediction_psi_threshold)

        drifted = [c for c, s in stats.items() if s["drifted"]]
        drifted_weight = float(sum(weights[c] for c in drifted))
        by_features = bool(drifted) and drifted_weight >= st.min_drifted_weight - 1e-12
        by_prediction = bool(pred is not None and pred["drifted"])
        # Values the model never saw: their importance is unknowable, so their weight does not excuse them.
        by_unseen = [c for c in drifted if "unseen" in stats[c]["criteria"]]
        drift = by_features or by_prediction or bool(by_unseen)
        reasons = [stats[c]["reason"] for c in sorted(drifted, key=lambda c: -weights[c])]
        if by_prediction:
            reasons.append(pred["reason"])
        return _json_safe(
            {
                "drift": drift,
                "reason": _overall_reason(
                    stats, pred, drifted, drifted_weight, by_features, by_prediction, by_unseen, weighting, st
                ),
                "reasons": reasons,
                "rows": self.rows,
                "drifted_features": drifted,
                "drifted_weight": drifted_weight,
                "by_features": by_features,
                "by_unseen": by_unseen,
                "by_prediction": by_prediction,
                "weighting": weighting,
                "features": stats,
                "not_checked": self.not_checked,
                "prediction": pred,
                "settings": st.model_dump(mode="json"),
            }
        )


def _counts(kind: str, state: _Numeric | _Categorical, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The row and null counts every feature's stats start with, current side and reference side."""
    return {
        "kind": kind,
        "rows": state.rows,
        "n": state.n,
        "n_reference": int(entry["n"]),
        "null_share": (state.rows - state.n) / state.rows if state.rows else None,
        "null_share_reference": _f(entry.get("null_share")),
    }


def _numeric_stats(state: _Numeric, st: MonitoringConfig) -> dict[str, Any]:
    e = state.entry
    p_ref = np.asarray(e["proportions"], dtype="float64")
    n_ref = int(e["n"])
    mean_ref, sd_ref = _f(e.get("mean")), _f(e.get("std"))
    n = state.n
    out: dict[str, Any] = {
        **_counts("numeric", state, e),
        "mean": None,
        "mean_reference": mean_ref,
        "std": None,
        "std_reference": sd_ref,
        "psi": None,
        "effect": None,
        "mean_test": None,
        "bins_test": None,
        "test": None,
        "statistic": None,
        "p_value": 1.0,
    }
    out["distribution"] = {"labels": _bin_labels(e), "reference": p_ref.tolist(), "current": None}
    if n == 0 or n_ref == 0:
        return out
    q = state.counts / n
    out["distribution"]["current"] = q.tolist()
    out["psi"] = psi(p_ref, q)
    nf = state.n_finite
    tests: list[tuple[str, float, float]] = []
    if nf:
        mean = state.center + state.s1 / nf
        var = max((state.s2 - state.s1**2 / nf) / (nf - 1), 0.0) if nf > 1 else None
        out["mean"], out["std"] = mean, (math.sqrt(var) if var is not None else None)
        if mean_ref is not None and sd_ref is not None and var is not None:
            t, p = welch_test(mean_ref, sd_ref, n_ref, mean, math.sqrt(var), nf)
            out["mean_test"] = {"test": "welch_t", "statistic": _f(t), "p_value": p}
            tests.append(("welch_t", t, p))
            if sd_ref > 0:
                out["effect"] = (mean - mean_ref) / sd_ref  # signed here; |effect| is judged
    stat, df, p = chi2_homogeneity(p_ref * n_ref, state.counts)
    if df:
        out["bins_test"] = {"test": "chi2", "statistic": stat, "df": df, "p_value": p}
        tests.append(("chi2", stat, p))
    if tests:
        name, stat, p = min(tests, key=lambda x: x[2])
        out["test"], out["statistic"] = name, _f(stat)
        out["p_value"] = min(1.0, p * len(tests))
    _interval_test(out, e.get("between_intervals"), sd_ref, st)
    return out


def _interval_test(
    out: dict[str, Any], between: Mapping[str, Any] | None, sd_ref: float | None, st: MonitoringConfig
) -> None:
    """Judge the interval's mean against the reference's interval means when rows are not independent.

    When the training rows' interval means moved from one interval to the next by at least
    ``effect_size_floor`` reference sd, an ordinary interval crosses the row-level floor by itself: its rows
    share something (every row of an hour joined to the same hourly reading, say), and a row-level test would
    count them as independent evidence. Such a feature is ``clustered``: its test is then where the
    interval's mean falls among the reference's interval means (a t prediction interval over ``intervals -
    1`` degrees of freedom), and it drifts only outside ``interval_z_threshold`` of their spread. (Intervals
    of a few dozen independent rows qualify too: their means alone move by 0.2 sd.)
    """

    from scipy.stats import t as student_t

    out["clustered"] = False
    if not between or out["mean"] is None or not sd_ref:
        return
    k, spread, centre = between.get("intervals") or 0, _f(between.get("std_of_means")), _f(between.get("mean_of_means"))
    if k < MIN_REFERENCE_INTERVALS or not spread or centre is None or spread < st.effect_size_floor * sd_ref:
        return
    z = (out["mean"] - centre) / spread
    t = z / math.sqrt(1 + 1 / k)
    out.update(
        clustered=True,
        interval_z=z,
        between_intervals={"intervals": k, "mean_of_means": centre, "std_of_means": spread},
        test="interval_mean_t",
        statistic=_f(t),
        p_value=float(2 * student_t.sf(abs(t), k - 1)),
    )


def _categorical_stats(state: _Categorical) -> dict[str, Any]:
    e = state.entry
    freq = e["frequencies"]
    p_ref = np.array([float(freq.get(c, 0.0)) for c in state.cells])
    n_ref = int(e["n"])
    n = state.n
    out: dict[str, Any] = {
        **_counts("categorical", state, e),
        "psi": None,
        "effect": None,
        "largest_change": None,
        "unseen_share": None,
        "other_share_reference": float(p_ref[-1]),
        "unseen_examples": [],
        "test": None,
        "statistic": None,
        "p_value": 1.0,
    }
    out["distribution"] = {"labels": list(state.cells), "reference": p_ref.tolist(), "current": None}
    if n == 0 or n_ref == 0:
        return out
    q = state.counts / n
    out["distribution"]["current"] = q.tolist()
    diff = q - p_ref
    i = int(np.argmax(np.abs(diff)))
    out["psi"] = psi(p_ref, q)
    out["effect"] = float(abs(diff[i]))
    out["largest_change"] = {"category": state.cells[i], "reference": float(p_ref[i]), "current": float(q[i])}
    out["unseen_share"] = float(q[-1])
    top = sorted(state.unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_UNSEEN]
    out["unseen_examples"] = [[k, int(c)] for k, c in top]
    stat, df, p = chi2_homogeneity(p_ref * n_ref, state.counts)
    if df:
        out["test"], out["statistic"], out["p_value"] = "chi2", stat, p
    return out


def _bin_labels(entry: Mapping[str, Any]) -> list[str]:
    """``"< 3"``, ``"[3, 7.5)"``, ..., ``">= 12"`` for the bins of a numeric profile entry."""
    edges = edges_array(entry)
    if len(edges) == 2:
        return ["all"]
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if math.isinf(lo):
            labels.append(f"< {hi:.4g}")
        elif math.isinf(hi):
            labels.append(f">= {lo:.4g}")
        else:
            labels.append(f"[{lo:.4g}, {hi:.4g})")
    return labels


def _fmt_p(p: float) -> str:
    if p <= 0:
        return "p<1e-300"
    if p < 1e-3:
        return f"p={p:.0e}"
    return f"p={p:.3g}"


def _judge(name: str, s: dict[str, Any], st: MonitoringConfig, psi_threshold: float) -> None:
    """Set ``drifted``, ``criteria`` (which thresholds were crossed) and ``reason`` on a feature's stats."""
    if s["psi"] is None:
        s["drifted"], s["criteria"] = False, []
        if s["n"] == 0:
            s["reason"] = f"{name}: not checked: no non-null values in the current data"
        else:
            s["reason"] = f"{name}: not checked: the reference has no non-null values"
        return
    significant = s["p_adjusted"] < st.alpha
    criteria = []
    if s["psi"] >= psi_threshold:
        criteria.append("psi")
    p_txt = _fmt_p(s["p_adjusted"])
    if s["kind"] == "numeric" and s.get("clustered"):
        z, bi = s["interval_z"], s["between_intervals"]
        criteria = ["interval_mean"] if abs(z) >= st.interval_z_threshold else []
        detail = (
            f"interval mean {s['mean']:.4g} is {z:+.2f} sd of the reference's interval means ({p_txt}; "
            f"{bi['intervals']} reference intervals, means {bi['mean_of_means']:.4g} +- {bi['std_of_means']:.3g}: "
            "the rows of an interval are not independent), PSI {:.3f}".format(s["psi"])
        )
        floors = f"the {st.interval_z_threshold:g} sd band of the reference's interval means"
    elif s["kind"] == "numeric":
        effect = s["effect"]
        if effect is not None and abs(effect) >= st.effect_size_floor:
            criteria.append("mean_shift")
        effect_txt = f"mean shifted {effect:+.2f} sd" if effect is not None else "mean shift undefined (constant)"
        detail = f"{effect_txt} ({p_txt}), PSI {s['psi']:.3f}"
        floors = f"the {st.effect_size_floor:g} sd floor and PSI {psi_threshold:g}"
    else:
        ch = s["largest_change"]
        unseen_excess = s["unseen_share"] - s["other_share_reference"]
        if s["effect"] >= st.share_shift_floor:
            criteria.append("share_shift")
        if unseen_excess >= st.unseen_share_threshold:
            criteria.append("unseen")
        tail = s["other_share_reference"] > 0  # the profile lists the top categories only: unlisted is not new
        unlisted = "values outside the profile's categories" if tail else "unseen values"
        cat = unlisted if ch["category"] == OTHER else repr(ch["category"])
        detail = f"share of {cat} {ch['reference']:.1%} -> {ch['current']:.1%} ({p_txt}), PSI {s['psi']:.3f}"
        if s["unseen_share"] > 0 and ch["category"] != OTHER:
            examples = ", ".join(repr(k) for k, _ in s["unseen_examples"][:3])
            detail += f", {unlisted} {s['unseen_share']:.1%}"
            detail += f" (reference {s['other_share_reference']:.1%})" if tail else ""
            detail += f" (e.g. {examples})" if examples else ""
        elif s["unseen_share"] > 0 and s["unseen_examples"]:
            detail += " (e.g. " + ", ".join(repr(k) for k, _ in s["unseen_examples"][:3]) + ")"
        floors = (
            f"the {st.share_shift_floor:g} share-shift floor, {st.unseen_share_threshold:g} unseen and PSI "
            f"{psi_threshold:g}"
        )
    s["criteria"] = criteria if significant else []
    s["drifted"] = bool(significant and criteria)
    if s["drifted"]:
        s["reason"] = f"{name}: {detail}"
    elif criteria:
        s["reason"] = f"{name}: no drift: not significant after {st.correction} correction: {detail}"
    elif significant:
        s["reason"] = f"{name}: no drift: significant but below {floors}: {detail}"
    else:
        s["reason"] = f"{name}: no drift: {detail}"


def _overall_reason(
    stats: Mapping[str, Mapping[str, Any]],
    pred: Mapping[str, Any] | None,
    drifted: list[str],
    weight: float,
    by_features: bool,
    by_prediction: bool,
    by_unseen: list[str],
    weighting: str,
    st: MonitoringConfig,
) -> str:
    of = "of the importance" if weighting == "importance" else "of the weight (features weighted equally)"
    parts = []
    ranked = sorted(drifted, key=lambda c: -stats[c]["weight"])
    listed = "; ".join(f"{stats[c]['reason']} [weight {stats[c]['weight']:.1%}]" for c in ranked)
    if by_features:
        parts.append(f"features carrying {weight:.1%} {of} drifted (>= {st.min_drifted_weight:.1%}): {listed}")
    elif by_unseen:
        unseen = "; ".join(f"{stats[c]['reason']} [weight {stats[c]['weight']:.1%}]" for c in by_unseen)
        parts.append(f"values the model never saw, whatever the feature's weight: {unseen}")
    if by_prediction and pred is not None:
        parts.append(f"score distribution drifted: {pred['reason']}")
    if parts:
        return "drift: " + " | ".join(parts)
    if drifted:
        return f"no drift: drifted features carry only {weight:.1%} {of} (< {st.min_drifted_weight:.1%}): {listed}"
    checked = "features and scores" if pred is not None else "features"
    return f"no drift: none of {len(stats)} {checked} drifted"


ROW_KEYS = ("feature", "kind", "psi", "statistic", "p_adjusted", "effect", "unseen_share", "drifted", "reason")


def feature_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per feature (and ``"prediction"`` for the scores) of a ``result()``: ``ROW_KEYS``."""
    items = list(result["features"].items())
    if result.get("prediction") is not None:
        items.append(("prediction", {**result["prediction"], "kind": "prediction"}))
    return [{"feature": name, **{k: s.get(k) for k in ROW_KEYS[1:]}} for name, s in items]


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _f(value)
    return value


# ---- parquet ---------------------------------------------------------------------------------------------


def drift_from_parquet(
    profile: Mapping[str, Any],
    source: Any,
    settings: MonitoringConfig | None = None,
    importances: Mapping[str, Any] | None = None,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    not_checked: Mapping[str, str] | None = None,
    score_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """:class:`DriftAccumulator` over a parquet file (path or binary file object), ``batch_rows`` at a time.

    Only the checked columns (and ``score_column``, when the scores are in the same file) are read. A missing
    column is a ValueError naming the file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if batch_rows < 1:
        raise ValueError(f"batch_rows={batch_rows!r}: must be >= 1")
    acc = DriftAccumulator(profile, numeric, categorical, not_checked)
    where = str(source) if isinstance(source, str | Path) else getattr(source, "name", "parquet input")
    try:
        pf = pq.ParquetFile(source, pre_buffer=False)
        schema = pf.schema_arrow
        wanted = [*acc.columns, *([score_column] if score_column else [])]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise ValueError(f"{where}: columns {missing} are not in the file (it has {schema.names})")
        # String columns come dictionary-encoded, as parquet stores them: counted without hashing every value.
        as_dict = [
            c for c in acc.categorical if pa.types.is_string(t := schema.field(c).type) or pa.types.is_large_string(t)
        ]
        if as_dict:
            pf = pq.ParquetFile(source, pre_buffer=False, read_dictionary=as_dict)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{where}: cannot read as parquet: {exc}") from None
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
        frame = batch.to_pandas()
        acc.update(frame, frame[score_column].to_numpy(dtype="float64") if score_column else None)
    return acc.result(settings, importances)


# ---- decision over intervals -----------------------------------------------------------------------------


def _as_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{what}: expected a date (YYYY-MM-DD), got {value!r}") from None


def decide(
    history: Iterable[Mapping[str, Any] | bool],
    settings: MonitoringConfig | None = None,
    *,
    last_retrain: dt.date | str | None = None,
    today: dt.date | str | None = None,
    signal: tuple[str, str] = ("drift", "drifted"),
) -> dict[str, Any]:
    """Whether drift calls for retraining now, from the interval results so far (oldest first).

    ``signal`` names the signal in the reason (``("decay", "decayed")`` for live performance; the entries keep
    the key ``drift``).

    Each entry is a ``result()`` (or just its ``drift`` bool), optionally with ``"ds"``: its interval's date.
    Drift counts when at least ``persistence.k`` of the last ``persistence.n`` intervals drifted; intervals
    dated on or before ``last_retrain`` were judged against the previous model's profile and do not count.
    Within ``cooldown_days`` after ``last_retrain`` (``today - last_retrain < cooldown_days``) the answer is
    no whatever the data say. ``today`` defaults to the newest entry's ``ds``.
    """
    st = settings or MonitoringConfig()
    k, n = st.persistence.k, st.persistence.n
    entries = [{"drift": bool(e)} if isinstance(e, bool) else e for e in history]
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or "drift" not in e:
            raise ValueError(f"history[{i}]: expected a drift result (a mapping with 'drift') or a bool")
    retrain = _as_date(last_retrain, "last_retrain") if last_retrain is not None else None
    if today is None and entries and entries[-1].get("ds") is not None:
        today = entries[-1]["ds"]
    day = _as_date(today, "today") if today is not None else None
    if retrain is not None:
        entries = [e for e in entries if e.get("ds") is None or _as_date(e["ds"], "history ds") > retrain]
    window = entries[-n:]
    drifted = sum(1 for e in window if e["drift"])
    latest = bool(entries and entries[-1]["drift"])
    persisted = drifted >= k
    cooldown: dict[str, Any] = {
        "active": False,
        "cooldown_days": st.cooldown_days,
        "last_retrain": retrain.isoformat() if retrain else None,
        "days_since_retrain": None,
    }
    if retrain is not None:
        if day is None:
            raise ValueError("last_retrain is given but the day is unknown: pass today= or put 'ds' in the history")
        since = (day - retrain).days
        cooldown.update(days_since_retrain=since, active=0 <= since < st.cooldown_days)
    drift = persisted and not cooldown["active"]
    noun, verb = signal
    if not entries:
        reason = f"no {noun}: no intervals since the last retrain" if retrain else f"no {noun}: no intervals yet"
    elif drift:
        reason = f"{noun}: {drifted} of the last {len(window)} intervals {verb} (needs {k} of {n})"
    elif persisted:
        reason = (
            f"no retrain: {drifted} of the last {len(window)} intervals {verb}, but the last retrain was "
            f"{cooldown['days_since_retrain']} day(s) ago, within the {st.cooldown_days}-day cooldown"
        )
    else:
        reason = f"no {noun}: {drifted} of the last {len(window)} intervals {verb} (needs {k} of {n})"
    return {
        "drift": drift,
        "latest_drift": latest,
        "persisted": persisted,
        "drifted_intervals": drifted,
        "intervals": len(window),
        "k": k,
        "n": n,
        "today": day.isoformat() if day else None,
        "cooldown": cooldown,
        "reason": reason,
    }
