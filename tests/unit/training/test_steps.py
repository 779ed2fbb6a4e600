"""The training steps' typed results and the recorder's names: what goes to XCom and MLflow reads back the same,
and the gate judges an ``Evaluation`` as the training DAG and the replay both hand it over."""

from __future__ import annotations

import json
import math

import pytest

from sluice.config import get_model_config
from sluice.evaluation.numbers import finite, json_safe
from sluice.training.record import interval_metrics_from, interval_metrics_to
from sluice.training.steps import SKIPPED, Evaluation, Trained, judge

pytestmark = pytest.mark.unit

PER_INTERVAL = {"metric": "roc_auc", "intervals": 6, "mean": 0.71, "std": 0.02, "values": {"2025-01-01": 0.7}}


def evaluation(champion: bool) -> Evaluation:
    data = {
        "test_rows": 1200,
        "candidate": {"roc_auc": 0.81, "f1": float("nan")},
        "candidate_slices": None,
        "candidate_intervals": PER_INTERVAL,
        "champion": {"version": "3", "run_id": "abc"} if champion else None,
    }
    if champion:
        data.update(
            champion_metrics={"roc_auc": 0.80, "f1": 0.4},
            champion_slices=None,
            bootstrap={
                "metric": "roc_auc",
                "point_difference": 0.01,
                "lower": -0.002,
                "upper": 0.02,
                "confidence": 0.95,
                "n_samples": 200,
                "n_rows": 1200,
            },
        )
    return Evaluation.from_dict(json_safe(data))


@pytest.mark.parametrize("champion", [False, True])
def test_evaluation_round_trips_as_strict_json(champion: bool) -> None:
    ev = evaluation(champion)
    out = ev.to_dict()
    assert out["candidate"] == {"roc_auc": 0.81, "f1": None}, "NaN is null in strict JSON"
    assert ("bootstrap" in out) is champion and Evaluation.from_dict(json.loads(json.dumps(out))) == ev
    assert list(out)[:5] == ["test_rows", "candidate", "candidate_slices", "candidate_intervals", "champion"]


def test_a_failed_suite_skips_evaluation_and_fails_the_gate() -> None:
    assert SKIPPED.to_dict() == {"skipped": "training-set suite failed", "champion": None}
    assert Evaluation.from_dict(SKIPPED.to_dict()) == SKIPPED
    decision = judge(get_model_config("loans"), SKIPPED, suite_passed=False, model_size_mb=None, latency_ms=None)
    failing = {r.rule for r in decision.failing_rules}
    assert decision.decision.value == "FAIL" and "training_suite" in failing and "floor:roc_auc" in failing


def test_the_gate_judges_the_evaluation_against_the_champion() -> None:
    cfg = get_model_config("loans")
    first = judge(cfg, evaluation(False), suite_passed=True, model_size_mb=1.0, latency_ms=1.0)
    assert first.decision.value == "PASS" and not first.has_champion
    second = judge(cfg, evaluation(True), suite_passed=True, model_size_mb=1.0, latency_ms=1.0)
    assert second.has_champion and {r.rule for r in second.rules} >= {"non_inferiority"}
    too_slow = judge(cfg, evaluation(False), suite_passed=True, model_size_mb=1.0, latency_ms=10_000.0)
    assert [r.rule for r in too_slow.failing_rules] == ["latency"]


def test_the_interval_metric_is_written_and_read_under_one_name() -> None:
    metrics = interval_metrics_to(PER_INTERVAL)
    assert metrics == {
        "test_interval.roc_auc.mean": 0.71,
        "test_interval.roc_auc.std": 0.02,
        "test_interval.roc_auc.intervals": 6.0,
    }
    back = interval_metrics_from({**metrics, "test.roc_auc": 0.8, "test_interval.log_loss.mean": 0.5})
    assert back["roc_auc"] == {"metric": "roc_auc", "mean": 0.71, "std": 0.02, "intervals": 6.0}
    assert back["log_loss"] == {"metric": "log_loss", "mean": 0.5} and interval_metrics_to(None) == {}


def test_trained_record_keeps_the_two_shapes_of_the_train_step() -> None:
    rejected = Trained("r1", False, "sha", "2025-01-10", 7, suite_failures=[{"expectation": "x"}])
    assert set(rejected.to_dict()) == {
        "run_id",
        "suite_passed",
        "suite_failures",
        "manifest_sha256",
        "end_ds",
        "window_days",
    }
    ok = Trained("r2", True, "sha", "2025-01-10", 7, model_uri="runs:/r2/model", model_size_mb=1.5, latency_ms=2.0)
    assert ok.to_dict()["model_uri"] == "runs:/r2/model" and "suite_failures" not in ok.to_dict()


def test_finite_and_json_safe_share_one_rule() -> None:
    assert finite(float("inf")) is None and finite(None) is None and finite(2) == 2.0
    assert json_safe({"a": (1, math.nan)}) == {"a": [1, None]}
    with pytest.raises(TypeError, match="not JSON-safe"):
        json_safe(object())
