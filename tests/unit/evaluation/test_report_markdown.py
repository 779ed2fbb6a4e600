"""The approval form's evidence (Markdown) and the evaluation plots."""

from __future__ import annotations

import numpy as np

from sluice.evaluation.gate import Decision, GateDecision, RuleResult, Verdict
from sluice.evaluation.plots import evaluation_plots
from sluice.evaluation.report import render_markdown

PNG = b"\x89PNG\r\n\x1a\n"


def inconclusive() -> GateDecision:
    return GateDecision(
        decision=Decision.INCONCLUSIVE,
        rules=(
            RuleResult("floor:roc_auc", Verdict.PASS, 0.8, 0.7, "ok"),
            RuleResult("non_inferiority", Verdict.INCONCLUSIVE, 0.0, 0.0, "straddles 0 <img src=x onerror=alert(1)>"),
        ),
        has_champion=True,
        notes=(),
        primary_metric="roc_auc",
        candidate_metrics={"roc_auc": 0.8},
        champion_metrics={"roc_auc": 0.8},
        bootstrap={
            "metric": "roc_auc",
            "point_difference": 0.0,
            "lower": 0.0,
            "upper": 0.0,
            "confidence": 0.95,
            "n_samples": 1000,
            "n_rows": 2000,
        },
    )


def test_the_evidence_shows_metrics_interval_undecided_rules_and_safe_links_only() -> None:
    links = {"Gate report": "http://mlflow/#/x/gate_report.html", "[evil](javascript:alert(1))": "javascript:alert(1)"}
    md = render_markdown(inconclusive(), model="loans", candidate_label="run ab", champion_label="v1", links=links)
    assert md.startswith("**Model loans: candidate run ab vs champion v1: gate INCONCLUSIVE**")
    assert "| roc\\_auc \\(primary\\) | 0.8000 | 0.8000 | \\+0.0000 | same |" in md
    assert "95% CI \\+0.000, \\+0.000" in md and "**non\\_inferiority** (INCONCLUSIVE)" in md
    assert "floor" not in md, "only the rules that left the decision open are listed"
    assert "<img" not in md and "&lt;img" in md
    assert "[Gate report](<http://mlflow/#/x/gate_report.html>)" in md and "javascript:" not in md


def test_classification_plots_are_four_pngs_and_regression_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    scores = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    plots = evaluation_plots("classification", y, scores, scores[::-1].copy())
    assert sorted(plots) == [
        "calibration_curve.png",
        "confusion_matrix.png",
        "precision_recall_curve.png",
        "roc_curve.png",
    ]
    assert all(png.startswith(PNG) and len(png) > 5000 for png in plots.values())
    assert list(evaluation_plots("regression", y * 1.0, scores)) == ["predicted_vs_actual.png"]
