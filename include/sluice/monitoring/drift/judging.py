"""The verdicts of a drift check: which thresholds each feature crossed (adjusted p-value, effect floors, PSI,
unseen values), and whether the interval drifted (drifted importance, the scores, unseen values).

:class:`DriftResult` is the typed verdict of one interval; ``to_dict`` is its JSON form (``drift.json`` in the
lake, what the Sluice view, the overview and the mails read) and ``from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.config import MonitoringConfig
from sluice.evaluation.numbers import json_object
from sluice.monitoring.drift.statistics import adjust_pvalues, feature_weights
from sluice.monitoring.drift.wording import fmt_p, overall_reason
from sluice.monitoring.results import fields_from, json_form
from sluice.training.profile import (
    OTHER,
)

#: the interval's identity, set by monitoring once it knows which interval and version were judged
_IDENTITY = ("ds", "model", "model_version")


@dataclass(frozen=True)
class DriftResult:
    """The drift verdict of one interval (see :mod:`sluice.monitoring.drift`).

    ``features`` and ``prediction`` hold each feature's (and the scores') statistics and verdict as JSON
    objects: ``kind``, ``n``, ``psi``, ``p_value``, ``p_adjusted``, ``effect``, ``weight``, ``criteria``,
    ``drifted``, ``reason``, ``distribution`` and the kind's own fields. ``ds``, ``model`` and ``model_version``
    are None until monitoring sets them (:meth:`of_interval`).
    """

    drift: bool
    reason: str
    reasons: list[str]
    rows: int
    drifted_features: list[str]
    drifted_weight: float
    by_features: bool
    by_unseen: list[str]
    by_prediction: bool
    weighting: str
    features: dict[str, dict[str, Any]]
    not_checked: dict[str, str]
    prediction: dict[str, Any] | None
    settings: dict[str, Any]
    ds: str | None = None
    model: str | None = None
    model_version: str | None = None

    def of_interval(self, ds: str, model: str, model_version: str) -> DriftResult:
        """The verdict, stamped with the interval, the model and the version whose reference it was judged by."""
        return dataclasses.replace(self, ds=ds, model=model, model_version=model_version)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (strict JSON: undefined numbers are None); the identity only once it is set."""
        return json_object(json_form(self, _IDENTITY))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        """A :meth:`to_dict` form (``drift.json``) read back (reports written before ``not_checked`` read as
        leaving nothing out); a missing field is a ValueError naming it."""
        fields = fields_from(cls, data, "drift result", {*_IDENTITY, "not_checked"})
        fields["not_checked"] = dict(data.get("not_checked") or {})
        return cls(**fields)


def judge_feature(name: str, s: dict[str, Any], st: MonitoringConfig, psi_threshold: float) -> None:
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
    p_txt = fmt_p(s["p_adjusted"])
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


def judge_interval(
    stats: dict[str, dict[str, Any]],
    pred: dict[str, Any] | None,
    not_checked: Mapping[str, str],
    rows: int,
    st: MonitoringConfig,
    importances: Mapping[str, Any] | None,
) -> DriftResult:
    """The interval's verdict from each feature's (and the scores') statistics.

    The p-values of all features and the scores are adjusted together; the weights are shares of the whole
    model's importance, ``not_checked`` features included.
    """
    family = [*stats.values(), *([pred] if pred is not None else [])]
    adjusted = adjust_pvalues([s["p_value"] for s in family], st.correction)
    for s, p in zip(family, adjusted, strict=True):
        s["p_adjusted"] = float(p)

    # Shares of the whole model's importance: leaving a feature out must not inflate the others' weight.
    weights, weighting = feature_weights([*stats, *not_checked], importances)
    for c, s in stats.items():
        s["weight"] = weights[c]
        judge_feature(c, s, st, st.psi_threshold)
    if pred is not None:
        judge_feature("prediction", pred, st, st.prediction_psi_threshold)

    drifted = [c for c, s in stats.items() if s["drifted"]]
    drifted_weight = float(sum(weights[c] for c in drifted))
    by_features = bool(drifted) and drifted_weight >= st.min_drifted_weight - 1e-12
    by_prediction = bool(pred is not None and pred["drifted"])
    # Values the model never saw: their importance is unknowable, so their weight does not excuse them.
    by_unseen = [c for c in drifted if "unseen" in stats[c]["criteria"]]
    drift = by_features or by_prediction or bool(by_unseen)
    reasons = [stats[c]["reason"] for c in sorted(drifted, key=lambda c: -weights[c])]
    if by_prediction and pred is not None:
        reasons.append(pred["reason"])
    # the statistics hold numpy numbers and NaN: the result holds their JSON form, as drift.json will
    return DriftResult(
        drift=drift,
        reason=overall_reason(
            stats, pred, drifted, drifted_weight, by_features, by_prediction, by_unseen, weighting, st
        ),
        reasons=reasons,
        rows=int(rows),
        drifted_features=drifted,
        drifted_weight=drifted_weight,
        by_features=by_features,
        by_unseen=by_unseen,
        by_prediction=by_prediction,
        weighting=weighting,
        features=json_object(stats),
        not_checked=dict(not_checked),
        prediction=json_object(pred) if pred is not None else None,
        settings=st.model_dump(mode="json"),
    )
