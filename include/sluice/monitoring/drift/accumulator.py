"""The current side of a drift check, streamed: bin counts, moments and category counts reduced chunk by chunk
(:class:`DriftAccumulator`, :func:`drift_from_parquet`), then each feature's statistics against its profile
entry. The verdict is :mod:`sluice.monitoring.drift.judging`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sluice.config import MonitoringConfig
from sluice.evaluation.numbers import finite
from sluice.monitoring.drift.judging import DriftResult, judge_interval
from sluice.monitoring.drift.profiles import check_entry
from sluice.monitoring.drift.statistics import chi2_homogeneity, psi, welch_test
from sluice.monitoring.drift.wording import bin_labels
from sluice.training.profile import (
    OTHER,
    bin_counts,
    edges_array,
)

#: Distinct unseen values counted per categorical feature (for the examples in the reason); the total unseen
#: count is exact, only the per-value examples are pruned beyond this.
MAX_TRACKED_UNSEEN = 1000
#: Unseen values named in a result.
TOP_UNSEEN = 5
#: Rows per record batch read from parquet.
BATCH_ROWS = 1 << 16
#: Reference intervals needed before a feature's day-to-day variation is trusted (see ``_interval_test``).
MIN_REFERENCE_INTERVALS = 5


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
        self.counts += bin_counts(v, self.inner)
        ok = np.isfinite(v)
        if not ok.all():
            v = v[ok]
        d = v - self.center
        self.n_finite += len(d)
        self.s1 += float(d.sum())
        self.s2 += float(np.einsum("i,i->", d, d))  # not BLAS: no thread pool for a dot product


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
            counts: np.ndarray = np.bincount(codes[codes >= 0], minlength=len(s.cat.categories))
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
        kinds = {name: check_entry(name, entry) for name, entry in feats.items()}
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
        self.prediction = _Numeric(pred) if pred is not None and check_entry("prediction", pred) == "numeric" else None
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
        for c, num in self.numeric.items():
            num.update(_numeric_values(chunk[c]))
        for c, cat in self.categorical.items():
            cat.update(chunk[c])
        self.rows += len(chunk)
        if s is not None and self.prediction is not None:
            self.prediction.update(s)
            self.scores_seen = True
        return self

    def result(
        self, settings: MonitoringConfig | None = None, importances: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The JSON form of :meth:`verdict` (``drift.json`` without the interval's identity)."""
        return self.verdict(settings, importances).to_dict()

    def verdict(
        self, settings: MonitoringConfig | None = None, importances: Mapping[str, Any] | None = None
    ) -> DriftResult:
        """The verdict for this interval (see the module doc)."""
        st = settings or MonitoringConfig()
        stats: dict[str, dict[str, Any]] = {}
        for c, num in self.numeric.items():
            stats[c] = _numeric_stats(num, st)
        for c, cat in self.categorical.items():
            stats[c] = _categorical_stats(cat)
        pred = _numeric_stats(self.prediction, st) if self.prediction is not None and self.scores_seen else None

        return judge_interval(stats, pred, self.not_checked, self.rows, st, importances)


def _counts(kind: str, state: _Numeric | _Categorical, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The row and null counts every feature's stats start with, current side and reference side."""
    return {
        "kind": kind,
        "rows": state.rows,
        "n": state.n,
        "n_reference": int(entry["n"]),
        "null_share": (state.rows - state.n) / state.rows if state.rows else None,
        "null_share_reference": finite(entry.get("null_share")),
    }


def _numeric_stats(state: _Numeric, st: MonitoringConfig) -> dict[str, Any]:
    e = state.entry
    p_ref = np.asarray(e["proportions"], dtype="float64")
    n_ref = int(e["n"])
    mean_ref, sd_ref = finite(e.get("mean")), finite(e.get("std"))
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
    out["distribution"] = {"labels": bin_labels(e), "reference": p_ref.tolist(), "current": None}
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
            out["mean_test"] = {"test": "welch_t", "statistic": finite(t), "p_value": p}
            tests.append(("welch_t", t, p))
            if sd_ref > 0:
                out["effect"] = (mean - mean_ref) / sd_ref  # signed here; |effect| is judged
    stat, df, p = chi2_homogeneity(p_ref * n_ref, state.counts)
    if df:
        out["bins_test"] = {"test": "chi2", "statistic": stat, "df": df, "p_value": p}
        tests.append(("chi2", stat, p))
    if tests:
        name, stat, p = min(tests, key=lambda x: x[2])
        out["test"], out["statistic"] = name, finite(stat)
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
    k, spread, centre = (
        between.get("intervals") or 0,
        finite(between.get("std_of_means")),
        finite(between.get("mean_of_means")),
    )
    if k < MIN_REFERENCE_INTERVALS or not spread or centre is None or spread < st.effect_size_floor * sd_ref:
        return
    z = (out["mean"] - centre) / spread
    t = z / math.sqrt(1 + 1 / k)
    out.update(
        clustered=True,
        interval_z=z,
        between_intervals={"intervals": k, "mean_of_means": centre, "std_of_means": spread},
        test="interval_mean_t",
        statistic=finite(t),
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
