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
- ``slices`` (champion): a slice value fails the gate when the regression of the primary metric on its test
  rows (champion - candidate, oriented: positive = candidate worse) exceeds the limit *significantly* and
  the slice value is big enough to judge: at least ``slice_min_rows`` rows and ``slice_min_positives`` of
  each class. Significance: the one-sided p-value of "not worse by more than the limit" from the paired
  bootstrap on the slice's rows (the same resamples as the gate's interval), Holm-corrected across the
  slice values judged, at most ``slice_alpha``. Slice values beyond the limit that are too small or not
  significant are reported (``slice_findings``, the notes), never decisive. Fails closed without the
  slices' bootstrap, or when too few resamples make significance unreachable.
- ``bootstrap`` (champion, slices-only gate): FAIL when the bootstrap result is missing (the interval rules
  above already fail without it).

Decision: any FAIL -> FAIL, else any INCONCLUSIVE -> INCONCLUSIVE, else PASS. Without a champion the
comparative rules are SKIPPED.
"""

from __future__ import annotations

import math
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
    slice_findings: list[dict[str, Any]] = field(default_factory=list)
    """Every slice value whose regression exceeds the limit, decisive or not, with its ``status``
    (regressed, not significant, too small, undefined) and why: what the report lists."""

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
            "slice_findings": json_safe(self.slice_findings),
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
            slice_findings=[dict(s) for s in data.get("slice_findings", ())],
        )


@dataclass(frozen=True)
class GateInputs:
    """What was measured. ``None`` means "not measured": a rule that needs it fails closed."""

    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    bootstrap: BootstrapResult | None = None
    candidate_slices: dict[str, dict[str, dict[str, Any]]] | None = None
    champion_slices: dict[str, dict[str, dict[str, Any]]] | None = None
    slice_bootstrap: dict[str, dict[str, dict[str, Any]]] | None = None
    """``bootstrap.paired_bootstrap_slices``'s per-slice result: rows, classes, p-value against the limit."""
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


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): reject where adjusted <= alpha. It controls the
    family-wise error rate like Bonferroni and never rejects less."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


#: what became of a slice value at the slice rule (``GateDecision.slice_findings``)
REGRESSED = "regressed"  # significant, big enough: decisive
NOT_SIGNIFICANT = "not significant"  # judged; beyond the limit on its rows, but not beyond noise
TOO_SMALL = "too small"  # below slice_min_rows / slice_min_positives: reported only
UNDEFINED = "undefined"  # the metric or its bootstrap is undefined on the slice: reported only


def _too_small(gate: GateConfig, entry: Mapping[str, Any]) -> str | None:
    n = int(entry.get("n_rows") or 0)
    if n < gate.slice_min_rows:
        return f"{n} rows < slice_min_rows {gate.slice_min_rows}"
    pos, neg = entry.get("positives"), entry.get("negatives")
    if pos is not None and neg is not None and min(int(pos), int(neg)) < gate.slice_min_positives:
        return f"{int(pos)} positives / {int(neg)} negatives: fewer than slice_min_positives {gate.slice_min_positives}"
    return None


def _slice_line(r: Mapping[str, Any]) -> str:
    p = "" if r.get("p_adjusted") is None else f", p={r['p_adjusted']:.3g} after Holm"
    return (
        f"{r['column']}={r['value']}: {r['candidate']:.4f} vs champion {r['champion']:.4f} "
        f"(worse by {r['regression']:.4f}, n={r['n_rows']}{p})"
    )


def _slices(
    gate: GateConfig, limit: float, inputs: GateInputs
) -> tuple[RuleResult, list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The slice rule: ``(result, decisive regressions, every slice value beyond the limit, notes)``."""
    metric = gate.primary_metric
    cand, champ, boot = inputs.candidate_slices, inputs.champion_slices, inputs.slice_bootstrap
    missing_side = [side for side, s in (("candidate", cand), ("champion", champ)) if s is None]
    if missing_side or cand is None or champ is None:
        detail = f"slice metrics not measured for the {' and '.join(missing_side)}"
        return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], [], []
    hib = _hib(metric) is not False
    columns = list(gate.slice_columns) or sorted(set(cand) | set(champ))
    if not columns:
        detail = "slice_max_regression is set but there are no slice columns to compare"
        return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], [], []
    if boot is None:
        detail = (
            "the slices' paired bootstrap was not measured (an evaluation from an older version?): without it no "
            "slice regression can be told from noise; rerun the evaluate task"
        )
        return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], [], []
    missing = [c for c in columns if c not in cand or c not in champ or c not in boot]
    entries: list[dict[str, Any]] = []
    too_small_metric = one_sided = 0
    for column in columns:
        if column in missing:
            continue
        c_col, h_col, b_col = cand[column], champ[column], boot[column]
        one_sided += len(set(c_col) ^ set(h_col))
        for value in sorted(set(c_col) & set(h_col)):
            cv: Any = c_col[value].get("value")
            hv: Any = h_col[value].get("value")
            if not (is_finite(cv) and is_finite(hv)):
                too_small_metric += 1
                continue
            b = b_col.get(value)
            if b is None:
                detail = (
                    f"slice value {column}={value} has metrics but no entry in the slices' bootstrap: the evaluation "
                    "is inconsistent; rerun the evaluate task"
                )
                return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], [], []
            regression = float(hv) - float(cv) if hib else float(cv) - float(hv)
            entry: dict[str, Any] = {
                "column": column,
                "value": value,
                "metric": metric,
                "candidate": float(cv),
                "champion": float(hv),
                "regression": regression,
                "n_candidate": c_col[value].get("n"),
                "n_champion": h_col[value].get("n"),
                "n_rows": b.get("n_rows", c_col[value].get("n")),
                "positives": b.get("positives"),
                "negatives": b.get("negatives"),
                "lower": b.get("lower"),
                "upper": b.get("upper"),
                "p_value": b.get("p_value"),
                "p_adjusted": None,
                "status": None,
                "why": "",
            }
            if is_finite(b.get("limit")) and abs(float(b["limit"]) - limit) > 1e-12:
                detail = (
                    f"the slices' bootstrap was computed against a limit of {float(b['limit']):g}, but "
                    f"slice_max_regression is {limit:g}: rerun the evaluate task with this config"
                )
                return RuleResult("slices", Verdict.FAIL, None, limit, detail), [], [], []
            small = _too_small(gate, entry)
            if small:
                entry.update(status=TOO_SMALL, why=small)
            elif not is_finite(entry["p_value"]):
                entry.update(status=UNDEFINED, why=f"{metric} undefined on most resamples of its rows")
            entries.append(entry)

    judged = [e for e in entries if e["status"] is None]
    for e, adjusted in zip(judged, holm([float(e["p_value"]) for e in judged]), strict=True):
        e["p_adjusted"] = adjusted
        significant = e["regression"] > limit and adjusted <= gate.slice_alpha
        e["status"] = REGRESSED if significant else NOT_SIGNIFICANT
        e["why"] = (
            f"p={e['p_value']:.3g}, {adjusted:.3g} after Holm over {len(judged)} slice values "
            f"{'<=' if significant else '>'} slice_alpha {gate.slice_alpha:g}"
        )
    findings = sorted((e for e in entries if e["regression"] > limit), key=lambda e: -e["regression"])
    regressed = [e for e in findings if e["status"] == REGRESSED]
    worst = max((e["regression"] for e in judged), default=None)

    notes = []
    if too_small_metric:
        notes.append(
            f"slices: {too_small_metric} slice value(s) too small to measure (or metric undefined), not compared"
        )
    if one_sided:
        notes.append(f"slices: {one_sided} slice value(s) present on one side only, not compared")
    reported = [e for e in findings if e["status"] != REGRESSED]
    if reported:
        listed = "; ".join(
            f"{e['column']}={e['value']} worse by {e['regression']:.4f} ({e['status']})" for e in reported
        )
        notes.append(f"slices beyond {limit:g} but not decisive (reported, not judged or not significant): {listed}")
    if missing:
        detail = f"slice column(s) not measured on both sides: {', '.join(missing)}"
        return RuleResult("slices", Verdict.FAIL, worst, limit, detail), regressed, findings, notes
    if regressed:
        detail = (
            f"{len(regressed)} of {len(judged)} slice values judged regress {metric} by more than {limit:g}, "
            f"significantly (Holm, family-wise alpha {gate.slice_alpha:g}): "
            + "; ".join(_slice_line(r) for r in regressed)
        )
        return RuleResult("slices", Verdict.FAIL, worst, limit, detail), regressed, findings, notes
    resamples = min((int(boot[e["column"]][e["value"]].get("resamples") or 0) for e in judged), default=0)
    beyond = [e for e in judged if e["regression"] > limit]
    if beyond and len(judged) > gate.slice_alpha * (resamples + 1):
        need = math.ceil(len(judged) / gate.slice_alpha)
        detail = (
            f"{len(judged)} slice values judged but with {resamples} resamples no p-value is below "
            f"1/{resamples + 1}, so Holm at slice_alpha {gate.slice_alpha:g} cannot call any of them significant "
            f"while {len(beyond)} regress beyond {limit:g}: raise gate.bootstrap_samples to at least {need}"
        )
        return RuleResult("slices", Verdict.FAIL, worst, limit, detail), regressed, findings, notes
    small = sum(e["status"] == TOO_SMALL for e in entries)
    if not judged:
        detail = (
            f"no slice value had enough rows to judge ({small} below slice_min_rows {gate.slice_min_rows} or "
            f"slice_min_positives {gate.slice_min_positives}, {too_small_metric} not measurable)"
        )
    else:
        detail = (
            f"{len(judged)} slice values judged; worst {metric} regression {worst:+.4f}"
            + (
                f", {len(beyond)} beyond {limit:g} but not significantly (Holm, alpha {gate.slice_alpha:g})"
                if beyond
                else f" <= {limit:g}"
            )
            + (f"; {small} too small to judge" if small else "")
        )
    return RuleResult("slices", Verdict.PASS, worst, limit, detail), regressed, findings, notes


def evaluate_gate(gate: GateConfig, inputs: GateInputs) -> GateDecision:
    """Apply every configured rule; see the module doc for the rules and how they combine."""
    rules: list[RuleResult] = []
    notes: list[str] = []
    regressed: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
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
            rule, regressed, findings, slice_notes = _slices(gate, gate.slice_max_regression, inputs)
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
        slice_findings=findings,
    )
