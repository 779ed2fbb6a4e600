"""Evaluation metrics, each written once as a weighted, vectorized kernel.

A kernel takes a matrix of row weights ``W`` (``B x n_rows``: one row of weights per resample) and returns
``B`` metric values. ``compute_metrics`` runs it on a single row of ones (the plain metric); the paired
bootstrap runs it on resampling weights (``bootstrap.py``). One implementation for both means the bootstrap's point
estimate is exactly the reported metric.

Conventions (binary classification, ``y_true`` in {0, 1}, ``y_score`` = probability of the positive class):

- ``f1``, ``precision``, ``recall``, ``accuracy`` threshold the score at 0.5 (``score >= 0.5`` is positive).
  An undefined precision or recall (no predicted positives, no positives) is 0, as sklearn's
  ``zero_division=0``.
- ``roc_auc`` gives tied scores half credit. With a single class in ``y_true`` it is undefined: NaN, no
  exception (a gate floor on a NaN metric fails). ``pr_auc`` (average precision, as sklearn's
  ``average_precision_score``) is NaN when there are no positives.
- ``precision_at_k``: precision among the ``k_fraction`` share of rows with the highest scores. ``k`` is
  ``k_fraction * n_rows``, not rounded: the rows tied on score at the cut share the remaining slots in
  proportion, so the value does not depend on row order.
- ``log_loss`` clips probabilities to ``[eps, 1 - eps]`` (``eps`` = float64 machine epsilon, as sklearn).
- ``r2`` is NaN when ``y_true`` is constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from sluice.config import METRICS

THRESHOLD = 0.5
TASKS = ("classification", "regression")
_EPS = float(np.finfo(np.float64).eps)

#: weights (B x n_rows) -> B metric values
Kernel = Callable[[np.ndarray], np.ndarray]


def check_metric(metric: str, task: str | None = None) -> None:
    """ValueError naming the metric and the known ones if it is unknown (or is for another task)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(sorted(METRICS))}")
    if task is not None and METRICS[metric][0] != task:
        known = sorted(m for m, spec in METRICS.items() if spec[0] == task)
        raise ValueError(f"metric {metric!r} is for {METRICS[metric][0]}, not {task}; {task} metrics: {known}")


def higher_is_better(metric: str) -> bool:
    check_metric(metric)
    return METRICS[metric][2]


def _div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


class Prepared:
    """One model's scores on one test set, validated once; the ranking metrics share one sort by score."""

    def __init__(self, task: str, y_true: Any, y_score: Any, k_fraction: float = 0.1) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if not 0 < k_fraction <= 1:
            raise ValueError(f"k_fraction must be in (0, 1], got {k_fraction}")
        y = np.asarray(y_true)
        s = np.asarray(y_score, dtype=np.float64)
        if task == "classification" and s.ndim == 2 and s.shape[1] == 2:
            s = s[:, 1]  # predict_proba output: the positive class
        if y.ndim != 1 or s.ndim != 1:
            raise ValueError(f"y_true and y_score must be 1-D, got shapes {y.shape} and {s.shape}")
        if len(y) != len(s):
            raise ValueError(f"y_true has {len(y)} rows but y_score has {len(s)}")
        if len(y) == 0:
            raise ValueError("no rows to evaluate")
        if not np.isfinite(s).all():
            raise ValueError(f"y_score has {int((~np.isfinite(s)).sum())} non-finite values")
        y = y.astype(np.float64)
        if task == "classification" and not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"classification y_true must be 0/1, got values {np.unique(y)[:10].tolist()}")
        if not np.isfinite(y).all():
            raise ValueError(f"y_true has {int((~np.isfinite(y)).sum())} non-finite values")
        self.task, self.y, self.s, self.k_fraction, self.n = task, y, s, k_fraction, len(y)

    # ---- classification: ranking metrics ---------------------------------------------------------------

    @cached_property
    def _ranks(self) -> dict[str, Any]:
        """Per-class orders by ascending score and, for each positive, where its score falls in each class.

        ``pos``/``neg``: row indices of the positives/negatives sorted by score. For the i-th positive:
        ``neg_lo``/``neg_hi`` = negatives with a score <, <= its score; ``pos_lo``/``pos_hi`` the same over
        positives. With cumulative weights per class these counts give every ranking metric with ties
        handled exactly (and without looking at row order).
        """
        order = np.argsort(self.s, kind="stable")
        is_pos = self.y[order] == 1
        pos, neg = order[is_pos], order[~is_pos]
        s_pos, s_neg = self.s[pos], self.s[neg]
        neg_lo, neg_hi = np.searchsorted(s_neg, s_pos, side="left"), np.searchsorted(s_neg, s_pos, side="right")
        return {
            "pos": pos,
            "neg": neg,
            "neg_lo": neg_lo,
            "neg_hi": neg_hi,
            "ties": bool((neg_lo != neg_hi).any()),  # some positive shares its score with a negative
            "pos_lo": np.searchsorted(s_pos, s_pos, side="left"),
            "pos_hi": np.searchsorted(s_pos, s_pos, side="right"),
        }

    @staticmethod
    def _padded_cumsum(x: np.ndarray) -> np.ndarray:
        """``c[:, j]`` = sum of the first j columns of ``x`` (B x (count + 1))."""
        c = np.zeros((x.shape[0], x.shape[1] + 1))
        np.cumsum(x, axis=1, out=c[:, 1:])
        return c

    def _cumulative(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights of the positives (B x n_pos) and padded cumulative weights per class: ``cp[:, j]`` is the
        weight of the j lowest-scored positives, ``cn`` the same for negatives."""
        r = self._ranks
        wp, wn = np.take(w, r["pos"], axis=1), np.take(w, r["neg"], axis=1)  # take: ~3x faster than w[:, idx]
        return wp, self._padded_cumsum(wp), self._padded_cumsum(wn)

    def _roc_auc(self, w: np.ndarray) -> np.ndarray:
        r = self._ranks
        wp = np.take(w, r["pos"], axis=1)
        cn = self._padded_cumsum(np.take(w, r["neg"], axis=1))
        # each positive beats the negatives scored lower and gets half credit for those on its score
        credit = cn[:, r["neg_lo"]]
        if r["ties"]:
            credit = 0.5 * (credit + cn[:, r["neg_hi"]])
        num = np.einsum("bi,bi->b", wp, credit)
        return _div(num, wp.sum(axis=1) * cn[:, -1], math.nan)

    def _pr_auc(self, w: np.ndarray) -> np.ndarray:
        r = self._ranks
        wp, cp, cn = self._cumulative(w)
        # precision at the threshold equal to each positive's score: every row scored >= it is predicted positive
        tp = cp[:, -1:] - cp[:, r["pos_lo"]]
        fp = cn[:, -1:] - cn[:, r["neg_lo"]]
        return _div(np.einsum("bi,bi->b", wp, _div(tp, tp + fp, 0.0)), cp[:, -1], math.nan)

    def _precision_at_k(self, w: np.ndarray) -> np.ndarray:
        r = self._ranks
        wp, cp, cn = self._cumulative(w)
        k = self.k_fraction * (cp[:, -1] + cn[:, -1])
        # weight scored strictly above each positive, and the weight of its tie group
        above = (cp[:, -1:] - cp[:, r["pos_hi"]]) + (cn[:, -1:] - cn[:, r["neg_hi"]])
        tied = (cp[:, r["pos_hi"]] - cp[:, r["pos_lo"]]) + (cn[:, r["neg_hi"]] - cn[:, r["neg_lo"]])
        taken = np.clip(_div(k[:, None] - above, tied, 0.0), 0.0, 1.0)  # share of the tie group inside the top k
        return _div(np.einsum("bi,bi->b", wp, taken), k, math.nan)

    # ---- classification at a threshold, means ------------------------------------------------------------

    def _rows(self, vectors: Sequence[np.ndarray], w: np.ndarray) -> np.ndarray:
        """Weighted sums of per-row vectors: one matrix product, (len(vectors) x B)."""
        out: np.ndarray = (w @ np.stack(vectors, axis=1)).T
        return out

    def _confusion(self, w: np.ndarray) -> np.ndarray:
        pred = (self.s >= THRESHOLD).astype(np.float64)
        y = self.y
        return self._rows([y * pred, (1 - y) * pred, y * (1 - pred), np.ones(self.n)], w)  # tp, fp, fn, total

    def _mean(self, per_row: np.ndarray, w: np.ndarray) -> np.ndarray:
        total, weight = self._rows([per_row, np.ones(self.n)], w)
        return _div(total, weight, math.nan)

    def _log_loss_rows(self) -> np.ndarray:
        p = np.clip(self.s, _EPS, 1 - _EPS)
        out: np.ndarray = -(self.y * np.log(p) + (1 - self.y) * np.log1p(-p))
        return out

    # ---- regression -----------------------------------------------------------------------------------

    def _r2(self, w: np.ndarray) -> np.ndarray:
        yc = self.y - self.y.mean()  # centred once: the weighted total sum of squares without cancellation
        sse, sy, syy, weight = self._rows([(self.y - self.s) ** 2, yc, yc**2, np.ones(self.n)], w)
        sst = syy - _div(sy**2, weight, 0.0)
        sst = np.where(sst > 1e-12 * syy, sst, 0.0)  # a constant y_true (rounding aside): r2 undefined
        return 1 - _div(sse, sst, math.nan)

    def kernel(self, metric: str) -> Kernel:
        check_metric(metric, self.task)
        y, s = self.y, self.s
        if metric == "roc_auc":
            return self._roc_auc
        if metric == "pr_auc":
            return self._pr_auc
        if metric == "precision_at_k":
            return self._precision_at_k
        if metric in ("f1", "precision", "recall"):

            def counts(w: np.ndarray) -> np.ndarray:
                tp, fp, fn, _ = self._confusion(w)
                if metric == "precision":
                    return _div(tp, tp + fp, 0.0)
                if metric == "recall":
                    return _div(tp, tp + fn, 0.0)
                return _div(2 * tp, 2 * tp + fp + fn, 0.0)

            return counts
        per_row: dict[str, Callable[[], np.ndarray]] = {
            "accuracy": lambda: ((s >= THRESHOLD) == (y == 1)).astype(np.float64),
            "log_loss": self._log_loss_rows,
            "brier": lambda: (s - y) ** 2,
            "mae": lambda: np.abs(y - s),
        }
        if metric in per_row:
            rows = per_row[metric]()
            return lambda w: self._mean(rows, w)
        if metric == "rmse":
            sq = (y - s) ** 2
            return lambda w: np.sqrt(self._mean(sq, w))
        if metric == "r2":
            return self._r2
        raise AssertionError(f"metric {metric!r} is in METRICS but has no kernel")  # pragma: no cover


def compute_metrics(
    task: str, y_true: Any, y_score: Any, names: Sequence[str], k_fraction: float = 0.1
) -> dict[str, float]:
    """The named metrics of one model on one test set (see the module doc for each metric's conventions).

    Unknown names, or names for the other task, raise ValueError naming them and the known metrics.
    Degenerate input does not raise: ``roc_auc`` with one class only is NaN.
    """
    for name in names:
        check_metric(name, task)
    prep = Prepared(task, y_true, y_score, k_fraction)
    ones = np.ones((1, prep.n))
    return {name: float(prep.kernel(name)(ones)[0]) for name in names}


def _slice_key(value: Any) -> str:
    return "(missing)" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def slice_metrics(
    task: str,
    y_true: Any,
    y_score: Any,
    slices: Mapping[str, Any],
    metric: str,
    min_rows: int = 50,
    k_fraction: float = 0.1,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{column: {value: {"value": metric or None, "n": rows}}}`` for each slice column and value.

    Values with fewer than ``min_rows`` rows are too small to judge: ``"value"`` is None (``"n"`` is kept).
    A metric undefined on a slice (``roc_auc`` on a slice with one class) is None too. Values are keyed by
    ``str(value)``; missing values (None, NaN) are grouped under ``"(missing)"``.
    """
    import pandas as pd  # only here: the rest of the module is numpy

    check_metric(metric, task)
    prep = Prepared(task, y_true, y_score, k_fraction)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column, values in slices.items():
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        if len(codes) != prep.n:
            raise ValueError(f"slice column {column!r} has {len(codes)} rows but y_true has {prep.n}")
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(-1, len(uniques) + 1))
        result: dict[str, dict[str, Any]] = {}
        for code in range(-1, len(uniques)):
            idx = order[bounds[code + 1] : bounds[code + 2]]
            if len(idx) == 0:
                continue
            key = "(missing)" if code < 0 else _slice_key(uniques[code])
            value = None
            if len(idx) >= min_rows:
                sub = Prepared(task, prep.y[idx], prep.s[idx], k_fraction)
                v = float(sub.kernel(metric)(np.ones((1, len(idx))))[0])
                value = v if math.isfinite(v) else None
            result[key] = {"value": value, "n": int(len(idx))}
        out[column] = dict(sorted(result.items()))
    return out
