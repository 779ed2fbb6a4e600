"""Paired bootstrap confidence interval of ``metric(candidate) - metric(champion)`` on the same test rows.

Both models are scored on every resample with the same row weights, so the interval is for the paired
difference (row-level noise shared by the two models cancels out, which makes it much narrower than two
independent intervals).

How it stays fast, for every metric:

- Resampling is done with Poisson(1) row weights instead of drawing row indices: for large n the
  multinomial counts of a classic bootstrap are, row by row, almost independent Poisson(1) draws, and
  weights let each metric be computed for a whole block of resamples with matrix products
  (``metrics.Prepared.kernel``). The Poisson draws come from uniform 32-bit integers through the
  Poisson(1) CDF (exact to 2**-32).
- ``roc_auc``: once per model, positives and negatives are each sorted by score and every positive learns
  how many negatives score below it and how many tie with it (``searchsorted``). Per block of resamples
  (weights ``W``, resamples x rows) the cumulative weight of the negatives ``Cn`` is one ``cumsum`` along
  the rows, and AUC = sum over positives of w_i x (Cn[below_i] + Cn[below_or_tied_i]) / 2 / (P x N):
  each positive beats the negatives below it and gets half credit for ties, exactly as ``roc_auc_score``.
  pr_auc and precision_at_k use the same cumulative weights.
- Means (``log_loss``, ``brier``, ``accuracy``, ``mae``, ``rmse``) are weighted means, f1 / precision /
  recall come from weighted confusion counts, all as one matrix product per block.
- Resamples are processed in blocks sized so that a weight block holds about 2M numbers (16 MB), which
  bounds memory whatever the row count. The interval is the percentile interval of the replicates.
  Same inputs and seed, same result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sluice.evaluation.metrics import Prepared, check_metric, higher_is_better

BLOCK_ELEMENTS = 1 << 21  # weights per block (resamples x rows): 16 MB of float64


def _poisson_thresholds() -> np.ndarray:
    """``T[k] = floor(F(k) * 2**32)`` for the Poisson(1) CDF F while F(k) < 1 - 2**-32."""
    thresholds: list[int] = []
    term, cdf, k = math.exp(-1.0), 0.0, 0
    while True:
        cdf += term
        t = math.floor(cdf * 2**32)
        if t >= 2**32 - 1:
            return np.asarray(thresholds, dtype=np.uint32)
        thresholds.append(t)
        k += 1
        term /= k


_POISSON_T = _poisson_thresholds()


def poisson_weights(rng: np.random.Generator, n_resamples: int, n_rows: int) -> np.ndarray:
    """``(n_resamples, n_rows)`` float64 Poisson(1) weights: the count of CDF thresholds below a uniform draw.

    Three vectorized comparisons settle the 98% of draws below 3; the rest go through a binary search.
    About 5x faster than ``Generator.poisson`` for the same stream length.
    """
    u = rng.integers(0, 2**32, size=n_rows * n_resamples, dtype=np.uint32)
    w = (u > _POISSON_T[0]).view(np.uint8)
    for t in _POISSON_T[1:4]:
        w += (u > t).view(np.uint8)
    tail = np.flatnonzero(u > _POISSON_T[3])
    w[tail] = np.searchsorted(_POISSON_T, u[tail], side="left")
    out: np.ndarray = w.reshape(n_resamples, n_rows).astype(np.float64)
    return out


@dataclass(frozen=True)
class BootstrapResult:
    """Oriented difference: ``better_is_positive`` is always True, i.e. ``point_difference`` and the bounds
    are candidate - champion for higher-is-better metrics and champion - candidate for lower-is-better ones
    (log_loss, brier, rmse, mae). The flag travels with ``to_dict`` so a reader of the logged JSON knows."""

    metric: str
    point_difference: float
    lower: float
    upper: float
    confidence: float
    n_samples: int
    n_rows: int
    better_is_positive: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (NaN -> None)."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BootstrapResult:
        def num(key: str) -> float:
            v = data.get(key)
            return math.nan if v is None else float(v)

        return cls(
            metric=str(data["metric"]),
            point_difference=num("point_difference"),
            lower=num("lower"),
            upper=num("upper"),
            confidence=float(data["confidence"]),
            n_samples=int(data["n_samples"]),
            n_rows=int(data["n_rows"]),
            better_is_positive=bool(data.get("better_is_positive", True)),
        )


def paired_bootstrap(
    task: str,
    metric: str,
    y_true: Any,
    score_candidate: Any,
    score_champion: Any,
    *,
    n_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    k_fraction: float = 0.1,
) -> BootstrapResult:
    """Percentile interval of the oriented difference (positive = candidate better) over ``n_samples``
    paired Poisson-bootstrap resamples of the test rows.

    Resamples on which the metric is undefined (e.g. ``roc_auc`` when a resample holds one class only,
    possible on tiny test sets) are left out of the percentiles; if more than half are undefined the
    bounds are NaN, and a gate treats a NaN interval as a failure.
    """
    check_metric(metric, task)
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    candidate = Prepared(task, y_true, score_candidate, k_fraction)
    champion = Prepared(task, y_true, score_champion, k_fraction)
    n = candidate.n
    if champion.n != n:
        raise ValueError(f"candidate has {n} rows but champion has {champion.n}")
    # Rows are relabelled in the candidate's score order (weights are i.i.d., so any fixed order is the same
    # bootstrap): the per-class gathers of the weights then read memory almost sequentially for the
    # candidate, and nearly so for a champion whose scores correlate with it.
    order = np.argsort(candidate.s, kind="stable")
    candidate = Prepared(task, candidate.y[order], candidate.s[order], k_fraction)
    champion = Prepared(task, champion.y[order], champion.s[order], k_fraction)
    k_cand, k_champ = candidate.kernel(metric), champion.kernel(metric)
    sign = 1.0 if higher_is_better(metric) else -1.0

    ones = np.ones((1, n))
    point = float(sign * (k_cand(ones) - k_champ(ones))[0])

    rng = np.random.default_rng(seed)
    block = max(1, min(n_samples, BLOCK_ELEMENTS // n))
    diffs = np.empty(n_samples)
    for start in range(0, n_samples, block):
        size = min(block, n_samples - start)
        w = poisson_weights(rng, size, n)
        diffs[start : start + size] = sign * (k_cand(w) - k_champ(w))

    finite = diffs[np.isfinite(diffs)]
    if finite.size * 2 < n_samples:
        lower = upper = math.nan
    else:
        alpha = (1 - confidence) / 2
        lower, upper = (float(q) for q in np.quantile(finite, [alpha, 1 - alpha]))
    return BootstrapResult(
        metric=metric,
        point_difference=point,
        lower=lower,
        upper=upper,
        confidence=confidence,
        n_samples=n_samples,
        n_rows=n,
    )
