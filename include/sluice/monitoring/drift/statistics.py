"""The statistics of a drift check, pure: PSI, the chi-square test of homogeneity, Welch's t-test from
summary statistics, multiple-testing adjustment, and each feature's share of the importance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sluice.evaluation.numbers import finite

#: Shares are floored at this before the PSI's logarithm (an empty bin on one side is not an infinite PSI).
PSI_EPS = 1e-4


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


def feature_weights(
    features: Sequence[str], importances: Mapping[str, Any] | None = None
) -> tuple[dict[str, float], str]:
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
                v = finite(importances.get(f, 0.0))
            except (TypeError, ValueError):
                raise ValueError(f"importance of {f!r}: expected a number, got {importances.get(f)!r}") from None
            raw[f] = max(v or 0.0, 0.0)
        total = sum(raw.values())
        if total > 0:
            return {f: v / total for f, v in raw.items()}, "importance"
    return {f: 1.0 / len(features) for f in features}, "equal"
