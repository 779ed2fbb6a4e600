"""The words of a drift result: bin labels, p-values, the interval's reason and the flat per-feature rows of
the reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sluice.config import MonitoringConfig
from sluice.training.profile import (
    edges_array,
)


def bin_labels(entry: Mapping[str, Any]) -> list[str]:
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


def fmt_p(p: float) -> str:
    if p <= 0:
        return "p<1e-300"
    if p < 1e-3:
        return f"p={p:.0e}"
    return f"p={p:.3g}"


def overall_reason(
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
