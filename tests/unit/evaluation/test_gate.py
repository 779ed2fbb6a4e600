"""The promotion gate, table-driven: every rule passing and failing, the no-champion case, fail-closed
behaviour, the decision order, serialization, and the rendered report."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest

from sluice.config import GateConfig
from sluice.evaluation.bootstrap import BootstrapResult
from sluice.evaluation.gate import (
    NO_CHAMPION_NOTE,
    Decision,
    GateDecision,
    GateInputs,
    RuleResult,
    Verdict,
    evaluate_gate,
)
from sluice.evaluation.report import bootstrap_line, render_html, render_text

FULL_GATE = {
    "floors": {"roc_auc": 0.70, "log_loss": 0.50},
    "non_inferiority_margin": 0.01,
    "min_improvement": 0.0,
    "slice_columns": ("region",),
    "slice_max_regression": 0.05,
    "max_model_mb": 50.0,
    "max_latency_ms": 20.0,
}


def gate(primary: str = "roc_auc", **overrides: Any) -> GateConfig:
    kw = {**FULL_GATE, **overrides}
    return GateConfig(primary_metric=primary, metrics=(primary, "roc_auc", "log_loss"), **kw)


def ci(lower: float, upper: float, metric: str = "roc_auc", point: float | None = None) -> BootstrapResult:
    point = (lower + upper) / 2 if point is None else point
    return BootstrapResult(metric, point, lower, upper, 0.95, 1000, 12_345)


def slices(**values: float | None) -> dict:
    return {"region": {k: {"value": v, "n": 400} for k, v in values.items()}}


def sboot(n: int = 400, positives: int = 120, limit: float = 0.05, **p_values: float | None) -> dict:
    """The slices' bootstrap as ``paired_bootstrap_slices`` records it: rows, classes, p-value vs the limit."""
    entry = {"n_rows": n, "positives": positives, "negatives": n - positives, "limit": limit, "resamples": 1000}
    return {"region": {k: {**entry, "p_value": p} for k, p in p_values.items()}}


GOOD = GateInputs(
    candidate_metrics={"roc_auc": 0.82, "log_loss": 0.41},
    champion_metrics={"roc_auc": 0.80, "log_loss": 0.43},
    bootstrap=ci(0.005, 0.035),
    candidate_slices=slices(north=0.80, south=0.79),
    champion_slices=slices(north=0.79, south=0.80),
    slice_bootstrap=sboot(north=0.9, south=0.99),
    model_size_mb=12.0,
    latency_ms=4.0,
    training_suite_passed=True,
)


def inputs(**overrides: Any) -> GateInputs:
    return replace(GOOD, **overrides)


def rule(decision: GateDecision, name: str) -> RuleResult:
    found = [r for r in decision.rules if r.rule == name]
    assert len(found) == 1, f"rule {name!r} appears {len(found)} times in {[r.rule for r in decision.rules]}"
    return found[0]


def test_good_candidate_passes_every_rule() -> None:
    d = evaluate_gate(gate(), GOOD)
    assert d.decision is Decision.PASS and d.passed
    assert {r.verdict for r in d.rules} == {Verdict.PASS}
    assert [r.rule for r in d.rules] == [
        "thresholds_configured",
        "floor:roc_auc",
        "floor:log_loss",
        "training_suite",
        "model_size",
        "latency",
        "non_inferiority",
        "min_improvement",
        "slices",
    ]
    assert d.failing_rules == () and d.has_champion and d.notes == ()


# (id, gate overrides, input overrides, rule, expected verdict, detail fragment)
RULE_CASES = [
    # floors, higher is better
    ("floor_pass", {}, {}, "floor:roc_auc", Verdict.PASS, "0.8200 >= floor 0.7000"),
    (
        "floor_equal_passes",
        {},
        {"candidate_metrics": {"roc_auc": 0.70, "log_loss": 0.4}},
        "floor:roc_auc",
        Verdict.PASS,
        ">=",
    ),
    (
        "floor_fail",
        {},
        {"candidate_metrics": {"roc_auc": 0.65, "log_loss": 0.4}},
        "floor:roc_auc",
        Verdict.FAIL,
        "0.6500 < floor 0.7000",
    ),
    (
        "floor_missing_metric",
        {},
        {"candidate_metrics": {"log_loss": 0.4}},
        "floor:roc_auc",
        Verdict.FAIL,
        "not measured",
    ),
    (
        "floor_nan_metric",
        {},
        {"candidate_metrics": {"roc_auc": math.nan, "log_loss": 0.4}},
        "floor:roc_auc",
        Verdict.FAIL,
        "NaN",
    ),
    # floors, lower is better: the floor is a ceiling
    ("ceiling_pass", {}, {}, "floor:log_loss", Verdict.PASS, "its floor is a ceiling"),
    (
        "ceiling_fail",
        {},
        {"candidate_metrics": {"roc_auc": 0.8, "log_loss": 0.55}},
        "floor:log_loss",
        Verdict.FAIL,
        "0.5500 > 0.5000",
    ),
    (
        "ceiling_regression_rmse",
        {"floors": {"rmse": 2.0}},
        {"candidate_metrics": {"roc_auc": 0.8, "rmse": 2.5}},
        "floor:rmse",
        Verdict.FAIL,
        "ceiling",
    ),
    ("floor_unknown_metric", {"floors": {"auc": 0.7}}, {}, "floor:auc", Verdict.FAIL, "unknown metric"),
    # training-set suite
    ("training_suite_pass", {}, {}, "training_suite", Verdict.PASS, "passed"),
    ("training_suite_fail", {}, {"training_suite_passed": False}, "training_suite", Verdict.FAIL, "failed"),
    # budgets
    ("model_size_pass", {}, {}, "model_size", Verdict.PASS, "12 MB <= budget 50 MB"),
    ("model_size_fail", {}, {"model_size_mb": 80.0}, "model_size", Verdict.FAIL, "80 MB > budget 50 MB"),
    ("model_size_not_measured", {}, {"model_size_mb": None}, "model_size", Verdict.FAIL, "configured but not measured"),
    ("latency_pass", {}, {}, "latency", Verdict.PASS, "<= budget 20 ms"),
    ("latency_fail", {}, {"latency_ms": 25.0}, "latency", Verdict.FAIL, "> budget 20 ms"),
    ("latency_not_measured", {}, {"latency_ms": None}, "latency", Verdict.FAIL, "configured but not measured"),
    ("latency_nan", {}, {"latency_ms": math.nan}, "latency", Verdict.FAIL, "not measured"),
    # non-inferiority on the oriented interval (margin 0.01)
    (
        "non_inferiority_pass",
        {},
        {"bootstrap": ci(-0.008, 0.02)},
        "non_inferiority",
        Verdict.PASS,
        "lower bound -0.0080 > -0.01",
    ),
    (
        "non_inferiority_fail",
        {},
        {"bootstrap": ci(-0.05, -0.02)},
        "non_inferiority",
        Verdict.FAIL,
        "upper bound -0.0200 < -0.01",
    ),
    (
        "non_inferiority_straddles",
        {},
        {"bootstrap": ci(-0.02, 0.01)},
        "non_inferiority",
        Verdict.INCONCLUSIVE,
        "straddles -0.01",
    ),
    ("non_inferiority_no_bootstrap", {}, {"bootstrap": None}, "non_inferiority", Verdict.FAIL, "no bootstrap result"),
    (
        "non_inferiority_nan_interval",
        {},
        {"bootstrap": ci(math.nan, math.nan, point=math.nan)},
        "non_inferiority",
        Verdict.FAIL,
        "undefined",
    ),
    (
        "non_inferiority_wrong_metric",
        {},
        {"bootstrap": ci(0.01, 0.02, metric="f1")},
        "non_inferiority",
        Verdict.FAIL,
        "primary metric is 'roc_auc'",
    ),
    (
        "non_inferiority_lower_is_better_primary",
        {"floors": {}},
        {"bootstrap": ci(-0.004, 0.003, metric="log_loss")},
        "non_inferiority",
        Verdict.PASS,
        "champion - candidate",
    ),
    # minimum improvement (delta 0.005 here)
    (
        "min_improvement_pass",
        {"min_improvement": 0.005},
        {"bootstrap": ci(0.006, 0.03)},
        "min_improvement",
        Verdict.PASS,
        "> +0.005",
    ),
    (
        "min_improvement_fail",
        {"min_improvement": 0.005},
        {"bootstrap": ci(-0.004, 0.005)},
        "min_improvement",
        Verdict.FAIL,
        "<= +0.005",
    ),
    (
        "min_improvement_straddles",
        {"min_improvement": 0.005},
        {"bootstrap": ci(0.001, 0.02)},
        "min_improvement",
        Verdict.INCONCLUSIVE,
        "straddles",
    ),
    (
        "min_improvement_no_bootstrap",
        {"min_improvement": 0.005},
        {"bootstrap": None},
        "min_improvement",
        Verdict.FAIL,
        "no bootstrap",
    ),
    # slices (limit 0.05 on the primary metric)
    ("slices_pass", {}, {}, "slices", Verdict.PASS, "2 slice values judged"),
    (
        "slices_regression",
        {},
        {"candidate_slices": slices(north=0.70, south=0.79), "slice_bootstrap": sboot(north=0.001, south=0.9)},
        "slices",
        Verdict.FAIL,
        "region=north: 0.7000 vs champion 0.7900",
    ),
    (
        "slices_regression_not_significant_passes",
        {},
        {"candidate_slices": slices(north=0.70, south=0.79), "slice_bootstrap": sboot(north=0.2, south=0.9)},
        "slices",
        Verdict.PASS,
        "1 beyond 0.05 but not significantly",
    ),
    (
        "slices_no_slice_bootstrap_fails_closed",
        {},
        {"slice_bootstrap": None},
        "slices",
        Verdict.FAIL,
        "rerun the evaluate task",
    ),
    (
        "slices_regression_at_limit_passes",
        {},
        {"candidate_slices": slices(north=0.75, south=0.80)},
        "slices",
        Verdict.PASS,
        "<= 0.05",
    ),
    (
        "slices_not_measured_candidate",
        {},
        {"candidate_slices": None},
        "slices",
        Verdict.FAIL,
        "not measured for the candidate",
    ),
    (
        "slices_not_measured_champion",
        {},
        {"champion_slices": None},
        "slices",
        Verdict.FAIL,
        "not measured for the champion",
    ),
    (
        "slices_no_columns_at_all",
        {"slice_columns": ()},
        {"candidate_slices": {}, "champion_slices": {}},
        "slices",
        Verdict.FAIL,
        "no slice columns",
    ),
    ("slices_column_missing", {"slice_columns": ("region", "channel")}, {}, "slices", Verdict.FAIL, "channel"),
    (
        "slices_too_small_not_judged",
        {},
        {"candidate_slices": slices(north=None, south=None)},
        "slices",
        Verdict.PASS,
        "no slice value had enough rows",
    ),
    (
        "slices_lower_is_better_primary",
        {"floors": {}},
        {
            "bootstrap": ci(0.0, 0.01, metric="log_loss"),
            "candidate_slices": slices(north=0.52, south=0.40),
            "champion_slices": slices(north=0.45, south=0.41),
            "slice_bootstrap": sboot(north=0.001, south=0.9),
        },
        "slices",
        Verdict.FAIL,
        "region=north: 0.5200 vs champion 0.4500 (worse by 0.0700",
    ),
    # configuration
    ("thresholds_configured_pass", {}, {}, "thresholds_configured", Verdict.PASS, "configured: floor:roc_auc"),
    (
        "no_thresholds",
        {
            "floors": {},
            "non_inferiority_margin": None,
            "min_improvement": None,
            "slice_max_regression": None,
            "max_model_mb": None,
            "max_latency_ms": None,
        },
        {},
        "thresholds_configured",
        Verdict.FAIL,
        "a gate without thresholds never passes",
    ),
]


@pytest.mark.parametrize(
    ("gate_kw", "input_kw", "rule_name", "verdict", "fragment"),
    [c[1:] for c in RULE_CASES],
    ids=[c[0] for c in RULE_CASES],
)
def test_rule(gate_kw, input_kw, rule_name, verdict, fragment) -> None:
    primary = "log_loss" if input_kw.get("bootstrap") and input_kw["bootstrap"].metric == "log_loss" else "roc_auc"
    d = evaluate_gate(gate(primary, **gate_kw), inputs(**input_kw))
    r = rule(d, rule_name)
    assert r.verdict is verdict, r
    assert fragment in r.detail, r.detail
    # the decision follows the worst verdict
    verdicts = {x.verdict for x in d.rules}
    expected = (
        Decision.FAIL
        if Verdict.FAIL in verdicts
        else Decision.INCONCLUSIVE
        if Verdict.INCONCLUSIVE in verdicts
        else Decision.PASS
    )
    assert d.decision is expected
    if verdict is Verdict.FAIL:
        assert d.decision is Decision.FAIL and r in d.failing_rules
    json.dumps(d.to_dict(), allow_nan=False)


def test_rule_results_carry_their_numbers() -> None:
    d = evaluate_gate(gate(), inputs(bootstrap=ci(-0.05, -0.02), model_size_mb=80.0))
    assert (rule(d, "non_inferiority").observed, rule(d, "non_inferiority").threshold) == (-0.02, -0.01)
    assert (rule(d, "model_size").observed, rule(d, "model_size").threshold) == (80.0, 50.0)
    assert (rule(d, "floor:roc_auc").observed, rule(d, "floor:roc_auc").threshold) == (0.82, 0.70)
    assert [r.rule for r in d.failing_rules] == ["model_size", "non_inferiority", "min_improvement"]


def test_inconclusive_alone_makes_the_decision_inconclusive() -> None:
    d = evaluate_gate(gate(), inputs(bootstrap=ci(-0.02, 0.01)))
    assert d.decision is Decision.INCONCLUSIVE
    assert rule(d, "non_inferiority").verdict is Verdict.INCONCLUSIVE
    assert rule(d, "min_improvement").verdict is Verdict.INCONCLUSIVE
    assert d.failing_rules == ()


def test_fail_wins_over_inconclusive() -> None:
    d = evaluate_gate(gate(), inputs(bootstrap=ci(-0.02, 0.01), training_suite_passed=False))
    assert d.decision is Decision.FAIL


def test_regressed_slices_listed_with_both_values_and_n() -> None:
    cand = {"region": {"north": {"value": 0.70, "n": 300}, "south": {"value": 0.60, "n": 250}}}
    champ = {"region": {"north": {"value": 0.79, "n": 300}, "south": {"value": 0.78, "n": 250}}}
    boot = {
        "region": {
            "north": {"n_rows": 300, "positives": 90, "negatives": 210, "p_value": 0.004, "limit": 0.05},
            "south": {"n_rows": 250, "positives": 75, "negatives": 175, "p_value": 0.001, "limit": 0.05},
        }
    }
    d = evaluate_gate(gate(), inputs(candidate_slices=cand, champion_slices=champ, slice_bootstrap=boot))
    assert [
        {k: r[k] for k in ("column", "value", "candidate", "champion", "n_rows", "positives", "status")}
        for r in d.regressed_slices
    ] == [
        {
            "column": "region",
            "value": "south",
            "candidate": 0.60,
            "champion": 0.78,
            "n_rows": 250,
            "positives": 75,
            "status": "regressed",
        },
        {
            "column": "region",
            "value": "north",
            "candidate": 0.70,
            "champion": 0.79,
            "n_rows": 300,
            "positives": 90,
            "status": "regressed",
        },
    ]
    assert [r["regression"] for r in d.regressed_slices] == [pytest.approx(0.18), pytest.approx(0.09)]
    assert [r["p_adjusted"] for r in d.regressed_slices] == [pytest.approx(0.002), pytest.approx(0.004)]
    assert d.slice_findings == d.regressed_slices
    assert rule(d, "slices").observed == pytest.approx(0.18)


def test_slices_too_small_or_one_sided_are_noted() -> None:
    cand = {
        "region": {
            "north": {"value": None, "n": 20},
            "east": {"value": 0.8, "n": 100},
            "south": {"value": 0.8, "n": 90},
        }
    }
    champ = {"region": {"north": {"value": 0.8, "n": 25}, "south": {"value": 0.8, "n": 95}}}
    d = evaluate_gate(gate(), inputs(candidate_slices=cand, champion_slices=champ))
    assert rule(d, "slices").verdict is Verdict.PASS
    assert any("1 slice value(s) too small" in n for n in d.notes)
    assert any("1 slice value(s) present on one side only" in n for n in d.notes)


def test_slices_only_gate_without_bootstrap_fails_with_champion() -> None:
    slices_only = gate(floors={"roc_auc": 0.7}, non_inferiority_margin=None, min_improvement=None)
    assert evaluate_gate(slices_only, GOOD).decision is Decision.PASS
    d = evaluate_gate(slices_only, inputs(bootstrap=None))
    assert d.decision is Decision.FAIL
    assert [r.rule for r in d.failing_rules] == ["bootstrap"]
    assert "no bootstrap result" in d.failing_rules[0].detail


# ---- no champion ------------------------------------------------------------------------------------------


def test_no_champion_skips_comparative_rules_and_applies_absolute_ones() -> None:
    d = evaluate_gate(gate(), inputs(champion_metrics=None, bootstrap=None, champion_slices=None))
    assert not d.has_champion
    assert NO_CHAMPION_NOTE in d.notes and "no champion yet: only the absolute rules apply" in d.notes
    for name in ("non_inferiority", "min_improvement", "slices"):
        assert rule(d, name).verdict is Verdict.SKIPPED
    assert rule(d, "floor:roc_auc").verdict is Verdict.PASS
    assert d.decision is Decision.PASS


def test_no_champion_still_fails_on_absolute_rules() -> None:
    d = evaluate_gate(
        gate(), inputs(champion_metrics=None, bootstrap=None, candidate_metrics={"roc_auc": 0.6, "log_loss": 0.4})
    )
    assert d.decision is Decision.FAIL
    assert [r.rule for r in d.failing_rules] == ["floor:roc_auc"]


def test_no_champion_and_only_comparative_thresholds_fails() -> None:
    only_comparative = gate(floors={}, max_model_mb=None, max_latency_ms=None)
    d = evaluate_gate(only_comparative, inputs(champion_metrics=None, bootstrap=None))
    assert d.decision is Decision.FAIL
    r = rule(d, "absolute_rules")
    assert r.verdict is Verdict.FAIL and "nothing absolute to check" in r.detail
    assert rule(d, "thresholds_configured").verdict is Verdict.PASS
    # with a champion the same gate can pass
    assert evaluate_gate(only_comparative, GOOD).decision is Decision.PASS


def test_comparative_only_gate_without_bootstrap_fails_with_champion() -> None:
    d = evaluate_gate(gate(floors={}, max_model_mb=None, max_latency_ms=None), inputs(bootstrap=None))
    assert d.decision is Decision.FAIL
    assert {r.rule for r in d.failing_rules} == {"non_inferiority", "min_improvement"}


# ---- serialization ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        inputs(),
        inputs(champion_metrics=None, bootstrap=None, champion_slices=None),
        inputs(
            candidate_slices=slices(north=0.6, south=0.8),
            bootstrap=ci(-0.02, 0.01),
            slice_bootstrap=sboot(north=0.001, south=0.5),
        ),
    ],
    ids=["pass", "no_champion", "fail_with_slices"],
)
def test_to_dict_from_dict_round_trip(case) -> None:
    d = evaluate_gate(gate(), case)
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    back = GateDecision.from_dict(data)
    assert back == d
    assert back.to_dict() == d.to_dict()
    assert isinstance(back.decision, Decision) and all(isinstance(r.verdict, Verdict) for r in back.rules)


def test_to_dict_turns_nan_into_none() -> None:
    nan_inputs = inputs(
        candidate_metrics={"roc_auc": math.nan, "log_loss": 0.4},
        bootstrap=ci(math.nan, math.nan, point=math.nan),
    )
    d = evaluate_gate(gate(), nan_inputs)
    data = d.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["candidate_metrics"]["roc_auc"] is None
    assert data["bootstrap"]["lower"] is None
    assert data["decision"] == "FAIL" and data["rules"][0]["verdict"] == "PASS"
    assert GateDecision.from_dict(data).to_dict() == data


def test_verdicts_are_strings() -> None:
    assert Verdict.INCONCLUSIVE == "INCONCLUSIVE" and Decision("PASS") is Decision.PASS
    assert set(Decision.__members__) == {"PASS", "FAIL", "INCONCLUSIVE"}


# ---- the report -------------------------------------------------------------------------------------------


def failing_decision() -> GateDecision:
    return evaluate_gate(
        gate(),
        inputs(
            bootstrap=BootstrapResult("roc_auc", 0.012, -0.004, 0.027, 0.95, 1000, 12_345),
            candidate_slices=slices(north=0.70, south=0.80),
            slice_bootstrap=sboot(north=0.002, south=0.9),
            latency_ms=None,
        ),
    )


LINKS = {"MLflow run": "http://127.0.0.1:5000/#/experiments/1/runs/abc?x=1&y=2", "evil": "javascript:alert(1)"}


def test_bootstrap_line_format() -> None:
    assert bootstrap_line(failing_decision()) == (
        "roc_auc difference +0.012 [95% CI -0.004, +0.027], 1000 resamples, 12,345 rows"
    )


def test_render_text_lists_failing_rules_first_with_numbers() -> None:
    text = render_text(failing_decision(), model="loans", candidate_label="v7", champion_label="v6", links=LINKS)
    assert text.startswith("Model loans: candidate v7 vs champion v6: gate FAIL\n")
    assert "Failing rules: latency, slices" in text
    assert "roc_auc difference +0.012 [95% CI -0.004, +0.027], 1000 resamples, 12,345 rows" in text
    rules_block = text.split("Rules (failing first):")[1].split("Regressed slices")[0]
    lines = [line.split() for line in rules_block.splitlines() if line.strip()]
    verdicts = [words[0] if words[0] != "**" else "FAIL" for words in lines[1:]]
    assert verdicts[:3] == ["FAIL", "FAIL", "INCONCLUSIVE"], verdicts
    assert [words[3] for words in lines[1:3]] == ["latency", "slices"]
    assert set(verdicts[3:]) == {"pass"}
    assert "region  north  0.7000     0.7900    +0.0900     400 (120/280)   0.002 (0.004)  regressed" in text
    assert "MLflow run: http://127.0.0.1:5000/#/experiments/1/runs/abc?x=1&y=2" in text
    assert "roc_auc (primary)" in text and "0.8200" in text and "+0.0200" in text


def test_render_text_strips_control_characters() -> None:
    text = render_text(
        failing_decision(), model="loans\r\nBcc: x@y", candidate_label="v7\x1b[31m", champion_label="v6", links={}
    )
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines()[0].startswith("Model loans  Bcc: x@y")


def test_render_html_escapes_everything_and_is_self_contained() -> None:
    decision = failing_decision()
    page = render_html(
        decision, model="<script>alert(1)</script>", candidate_label='v7" onload="x', champion_label="v6", links=LINKS
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'v7" onload' not in page and "v7&quot; onload" in page
    assert 'href="http://127.0.0.1:5000/#/experiments/1/runs/abc?x=1&amp;y=2"' in page
    assert 'href="javascript' not in page and "javascript:alert(1)" in page
    assert "src=" not in page and "<link" not in page and "@import" not in page
    assert page.index('class="FAIL"') < page.index('class="PASS"')
    assert "roc_auc difference +0.012 [95% CI -0.004, +0.027], 1000 resamples, 12,345 rows" in page
    assert "Regressed slices (roc_auc)" in page


def test_render_without_champion() -> None:
    d = evaluate_gate(gate(), inputs(champion_metrics=None, bootstrap=None, champion_slices=None))
    text = render_text(d, model="loans", candidate_label="v1", champion_label=None, links={})
    assert "vs no champion yet: gate PASS" in text
    assert "Note: no champion yet: only the absolute rules apply" in text
    assert "no bootstrap interval (no champion to compare with)" in text
    assert "skipped" in text
    assert "no champion yet" in render_html(d, model="loans", candidate_label="v1", champion_label=None, links={})
