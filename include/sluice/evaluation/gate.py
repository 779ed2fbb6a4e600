"""The promotion gate: a typed, pure decision from measured numbers and ``GateConfig`` thresholds.

Every rule yields a ``RuleResult`` carrying the numbers it compared, so the decision explains itself
(``report.py`` renders it). The gate fails closed: no thresholds, a metric that is missing or NaN, a
budget configured but not measured, a champion without a bootstrap interval, all FAIL.

Rules (each only when configured, except ``thresholds_configured`` and ``training_suite``):

- ``thresholds_configured``: FAIL when the gate has no threshold at all.
- ``absolute_rules``: FAIL when there is no champion and only comparative thresholds are configured.
- ``floor:<metric>``: candidate metric >= floor; for lower-is-better metrics (log_loss, brier, rmse, mae)
  the floor is a ceiling: metric <= floor.
- ``training_suite``: the training-set validation suite passed.
- ``model_size`` / ``latency``: measured value <= budget.
- ``non_inferiority`` (champion): on the oriented bootstrap interval of the primary metric (positive =
  candidate better): lower > -margin PASS, upper < -margin FAIL, otherwise INCONCLUSIVE.
- ``min_improvement`` (champion): lower > delta PASS, upper <= delta FAIL, otherwise INCONCLUSIVE.
- ``slices`` (champion): for every slice value measured on both sides, the regression of the primary
  metric (champion - candidate, oriented: positive = candidate worse) must not exceed the limit.
- ``bootstrap`` (champion, slices-only gate): FAIL when the bootstrap result is missing (the interval rules
  above already fail without it).

Decision: any FAIL -> FAIL, else any INCONCLUSIVE -> INCONCLUSIVE, else PASS. Without a champion the
comparative rules are SKIPPED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sluice.config import METRICS, GateConfig
from sluice.evaluation.bootstrap import BootstrapResult
from sluice.evaluation.numbers import is_finite, json_object, json_safe

NO_CHAMPION_NOTE = "no champion yet: only the absolute rules apply"


class Verdict(StrEnum):  # a str: compares and serializes as its value
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    SKIPPED = "SKIPPED"


class Decision(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class RuleResult:
    rule: str
    verdict: Verdict
    observed: float | bool | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return json_object(
            {
                "rule": self.rule,
                "verdict": self.verdict,
                "observed": self.observed,
                "threshold": self.threshold,
                "detail": self.detail,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        return cls(
            rule=str(data["rule"]),
            verdict=Verdict(data["verdict"]),
            observed=data.get("observed"),
            threshold=data.get("threshold"),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class GateDecision:
    decision: Decision
    rules: tuple[RuleResult, ...]
    has_champion: bool
    notes: tuple[str, ...]
    primary_metric: str
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    bootstrap: dict[str, Any] | None
    regressed_slices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing_rules(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if r.verdict is Verdict.FAIL)

    @property
    def passed(self) -> bool:
        return self.decision is Decision.PASS

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (NaN -> None); ``from_dict`` reads it back."""
        return {
            "decision": self.decision.value,
            "rules": [r.to_dict() for r in self.rules],
            "has_champion": self.has_champion,
            "notes": list(self.notes),
            "primary_metric": self.primary_metric,
            "candidate_metrics": json_safe(self.candidate_metrics),
            "champion_metrics": json_safe(self.champion_metrics),
            "bootstrap": json_safe(self.bootstrap),
            "regressed_slices": json_safe(self.regressed_slices),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateDecision:
        champion = data.get("champion_metrics")
        return cls(
            decision=Decision(data["decision"]),
            rules=tuple(RuleResult.from_dict(r) for r in data.get("rules", ())),
            has_champion=bool(data["has_champion"]),
            notes=tuple(data.get("notes", ())),
            primary_metric=str(data["primary_metric"]),
            candidate_metrics=dict(data.get("candidate_metrics") or {}),
            champion_metrics=None if champion is None else dict(champion),
            bootstrap=None if data.get("bootstrap") is None else dict(data["bootstrap"]),
            regressed_slices=[dict(s) for s in data.get("regressed_slices", ())],
        )


@dataclass(frozen=True)
class GateInputs:
    """What was measured. ``None`` means "not measured": a rule that needs it fails closed."""

    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    bootstrap: BootstrapResult | None = None
    candidate_slices: dict[str, dict[str, dict[str, Any]]] | None = None
    champion_slices: dict[str, dict[str, dict[str, Any]]] | None = None
    model_size_mb: float | None = None
    latency_ms: float | None = None
    training_suite_passed: bool = False


def _hib(metric: str) -> bool | None:
    spec = METRICS.get(metric)
    return None if spec is None else spec[2]


def _configured(gate: GateConfig) -> tuple[list[str], list[str]]:
    """Names of the configured (absolute, comparative) thresholds."""
    absolute = [f"floor:{m}" for m in gate.floors]
    budgets = (("max_model_mb", gate.max_model_mb), ("max_latency_ms", gate.max_latency_ms))
    absolute += [n for n, v in budgets if v is not None]
    comparative = [
        n
        for n, v in (
            ("non_inferiority_margin", gate.non_inferiority_margin),
            ("min_improvement", gate.min_improvement),
            ("slice_max_regression", gate.slice_max_regression),
        )
        if v is not None
    ]
    return absolute, comparative


def _floor(metric: str, floor: float, observed: Any) -> RuleResult:
    name = f"floor:{metric}"
    hib = _hib(metric)
    if hib is None:
        return RuleResult(name, Verdict.FAIL, None, floor, f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    if not is_finite(observed):
        return RuleResult(name, Verdict.FAIL, None, floor, f"{metric} was not measured (missing or NaN)")
    observed = float(observed)
    if hib:
        ok = observed >= floor
        detail = f"{metric} {observed:.4f} {'>=' if ok else '<'} floor {floor:.4f}"
    else:
        ok = observed <= floor
        detail = (
            f"{metric} {observed:.4f} {'<=' if ok else '>'} {floor:.4f} "
            f"({metric} is lower-is-better: its floor is a ceiling)"
        )
    return RuleResult(name, Verdict.PASS if ok else Verdict.FAIL, observed, floor, detail)


def _budget(rule: str, what: str, unit: str, measured: Any, limit: float) -> RuleResult:
    if not is_finite(measured):
        detail = f"{what} budget {limit:g} {unit} configured but not measured"
        return RuleResult(rule, Verdict.FAIL, None, limit, detail)
    measured = float(measured)
    ok = measured <= limit
    return RuleResult(
        rule,
        Verdict.PASS if ok else Verdict.FAIL,
        measured,
        limit,
        f"{what} {measured:.3g} {unit} {'<=' if ok else '>'} budget {limit:g} {unit}",
    )


def _interval_problem(gate: GateConfig, b: BootstrapResult | None) -> str | None:
    if b is None:
        return "no bootstrap result: the candidate cannot be compared with the champion"
    if b.metric != gate.primary_metric:
        return f"the bootstrap is for {b.metric!r} but the primary metric is {gate.primary_metric!r}"
    if not (is_finite(b.lower) and is_finite(b.upper)):
        return f"the bootstrap interval of {b.metric} is undefined (NaN): the metric is undefined on resamples"
    return None


def _ci(b: BootstrapResult) -> str:
    orient = "" if _hib(b.metric) else " (champion - candidate: positive = candidate better)"
    return (
        f"{b.metric} difference {b.point_difference:+.4f}{orient}, "
        f"{b.confidence * 100:g}% CI [{b.lower:+.4f}, {b.upper:+.4f}]"
    )


def _non_inferiority(gate: GateConfig, margin: float, b: BootstrapResult | None) -> RuleResult:
    problem = _interval_problem(gate, b)
    if problem or b is None:
        return RuleResult("non_inferiority", Verdict.FAIL, None, -margin, problem or "")
    if b.lower > -margin:
        return RuleResult(
            "non_inferiority",
            Verdict.PASS,
            b.lower,
            -margin,
            f"{_ci(b)}: lower bound {b.lower:+.4f} > -{margin:g}: not worse than the champion by the margin",
        )
    if b.upper < -margin:
        return RuleResult(
            "non_inferiority",
            Verdict.FAIL,
            b.upper,
            -margin,
            f"{_ci(b)}: upper bound {b.upper:+.4f} < -{margin:g}: worse than the champion by more than the margin",
        )
    return RuleResult(
        "non_inferiority",
        Verdict.INCONCLUSIVE,
        b.lower,
        -margin,
        f"{_ci(b)}: the interval straddles -{margin:g}: not enough evidence either way (more test rows narrow it)",
    )


def _min_improvement(gate: GateConfig, delta: float, b: BootstrapResult | None) -> RuleResult:
    problem = _interval_problem(gate, b)
    if problem or b is None:
        return RuleResult("min_improvement", Verdict.FAIL, None, delta, problem or "")
    if b.lower > delta:
        return RuleResult(
            "min_improvement",
            Verdict.PASS,
            b.lower,
            delta,
            f"{_ci(b)}: lower bound {b.lower:+.4f} > {delta:+g}: improves on the champion by more than required",
        )
    if b.upper <= delta:
        return RuleResult(
            "min_improvement",
            Verdict.FAIL,
            b.upper,
            delta,
            f"{_ci(b)}: upper bound {b.upper:+.4f} <= {delta:+g}: does not improve enough on the champion",
        )
    return RuleResult(
        "min_improvement",
        Verdict.INCONCLUSIVE,
        b.lower,
        delta,
        f"{_ci(b)}: the interval straddles {delta:+g}: the improvement is not established",
    )


def _slices(gate: GateConfig, limit: float, inputs: GateInputs) -> tuple[RuleResult, list[dict[str, Any]], list[str]]:
    metric = gate.primary_metric
    cand, champ = inputs.candidate_slices, inputs.champion_slices
    missing_side = [side for side, s in (("candidate", cand), ("champion", champ)) if s is None]
    if missing_side or cand is None or champ is None:
        detail = f"slice metrics not measured for the {' and '.join(missing_side)}"
        return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], []
    hib = _hib(metric) is not False
    columns = list(gate.slice_columns) or sorted(set(cand) | set(champ))
    if not columns:
        detail = "slice_max_regression is set but there are no slice columns to compare"
        return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], []
    missing = [c for c in columns if c not in cand or c not in champ]
    regressed: list[dict[str, Any]] = []
    compared = too_small = one_sided = 0
    worst: float | None = None
    for column in columns:
        if column in missing:
            continue
        c_col, h_col = cand[column], champ[column]
        one_sided += len(set(c_col) ^ set(h_col))
        for value in sorted(set(c_col) & set(h_col)):
            c, h = c_col[value], h_col[value]
            cv: Any = c.get("value")
            hv: Any = h.get("value")
            if not (is_finite(cv) and is_finite(hv)):
                too_small += 1
                continue
            regression = float(hv) - float(cv) if hib else float(cv) - float(hv)
            compared += 1
            worst = regression if worst is None else max(worst, regression)
            if regression > limit:
                regressed.append(
                    {
                        "column": column,
                        "value": value,
                        "metric": metric,
                        "candidate": float(cv),
                        "champion": float(hv),
                        "regression": regression,
                        "n_candidate": c.get("n"),
                        "n_champion": h.get("n"),
                    }
                )
    regressed.sort(key=lambda r: -r["regression"])
    notes = []
    if too_small:
        notes.append(f"slices: {too_small} slice value(s) too small to judge (or metric undefined), not compared")
    if one_sided:
        notes.append(f"slices: {one_sided} slice value(s) present on one side only, not compared")
    if missing:
        detail = f"slice column(s) not measured on both sides: {', '.join(missing)}"
        return RuleResult("slices", Verdict.FAIL, worst, limit, detail), regressed, notes
    if regressed:
        listed = "; ".join(
            f"{r['column']}={r['value']}: {r['candidate']:.4f} vs champion {r['champion']:.4f} "
            f"(worse by {r['regression']:.4f}, n={r['n_candidate']}/{r['n_champion']})"
            for r in regressed
        )
        detail = f"{len(regressed)} of {compared} slice values regress {metric} by more than {limit:g}: {listed}"
        return RuleResult("slices", Verdict.FAIL, worst, limit, detail), regressed, notes
    if compared == 0:
        detail = f"no slice value had enough rows on both sides to compare ({too_small} too small)"
    else:
        detail = f"{compared} slice values compared; worst {metric} regression {worst:+.4f} <= {limit:g}"
    return RuleResult("slices", Verdict.PASS, worst, limit, detail), regressed, notes


def evaluate_gate(gate: GateConfig, inputs: GateInputs) -> GateDecision:
    """Apply every configured rule; see the module doc for the rules and how they combine."""
    rules: list[RuleResult] = []
    notes: list[str] = []
    regressed: list[dict[str, Any]] = []
    has_champion = inputs.champion_metrics is not None
    absolute, comparative = _configured(gate)

    if absolute or comparative:
        rules.append(
            RuleResult(
                "thresholds_configured",
                Verdict.PASS,
                None,
                None,
                f"configured: {', '.join(absolute + comparative)}",
            )
        )
    else:
        rules.append(
            RuleResult(
                "thresholds_configured",
                Verdict.FAIL,
                None,
                None,
                "no thresholds configured: a gate without thresholds never passes",
            )
        )
    if not has_champion and comparative and not absolute:
        rules.append(
            RuleResult(
                "absolute_rules",
                Verdict.FAIL,
                None,
                None,
                f"no champion yet and only comparative thresholds are configured ({', '.join(comparative)}): "
                "nothing absolute to check; add floors or budgets",
            )
        )

    for metric, floor in gate.floors.items():
        rules.append(_floor(metric, float(floor), inputs.candidate_metrics.get(metric)))

    suite_ok = bool(inputs.training_suite_passed)
    rules.append(
        RuleResult(
            "training_suite",
            Verdict.PASS if suite_ok else Verdict.FAIL,
            suite_ok,
            None,
            "the training-set validation suite passed" if suite_ok else "the training-set validation suite failed",
        )
    )
    if gate.max_model_mb is not None:
        rules.append(_budget("model_size", "model size", "MB", inputs.model_size_mb, gate.max_model_mb))
    if gate.max_latency_ms is not None:
        rules.append(_budget("latency", "latency", "ms", inputs.latency_ms, gate.max_latency_ms))

    comparative_rules = (
        ("non_inferiority", gate.non_inferiority_margin),
        ("min_improvement", gate.min_improvement),
        ("slices", gate.slice_max_regression),
    )
    if has_champion:
        if gate.non_inferiority_margin is not None:
            rules.append(_non_inferiority(gate, gate.non_inferiority_margin, inputs.bootstrap))
        if gate.min_improvement is not None:
            rules.append(_min_improvement(gate, gate.min_improvement, inputs.bootstrap))
        if gate.slice_max_regression is not None:
            rule, regressed, slice_notes = _slices(gate, gate.slice_max_regression, inputs)
            rules.append(rule)
            notes += slice_notes
            if inputs.bootstrap is None and gate.non_inferiority_margin is None and gate.min_improvement is None:
                # the interval rules already fail without it; a slices-only gate must not pass without it either
                detail = "no bootstrap result while a champion exists: the comparison with the champion is missing"
                rules.append(RuleResult("bootstrap", Verdict.FAIL, None, None, detail))
    else:
        notes.append(NO_CHAMPION_NOTE)
        for name, threshold in comparative_rules:
            if threshold is not None:
                rules.append(RuleResult(name, Verdict.SKIPPED, None, float(threshold), NO_CHAMPION_NOTE))

    verdicts = {r.verdict for r in rules}
    if Verdict.FAIL in verdicts:
        decision = Decision.FAIL
    elif Verdict.INCONCLUSIVE in verdicts:
        decision = Decision.INCONCLUSIVE
    else:
        decision = Decision.PASS
    return GateDecision(
        decision=decision,
        rules=tuple(rules),
        has_champion=has_champion,
        notes=tuple(notes),
        primary_metric=gate.primary_metric,
        candidate_metrics=dict(inputs.candidate_metrics),
        champion_metrics=None if inputs.champion_metrics is None else dict(inputs.champion_metrics),
        bootstrap=None if inputs.bootstrap is None else inputs.bootstrap.to_dict(),
        regressed_slices=regressed,
    )
