"""The typed monitoring results and their recorder: a DriftResult / PerformanceResult reads back from the lake
as it was written, the lake holds exactly its JSON form, and the retrain decisions taken over recorded history
(persistence per version, cooldown, once per interval) are the policy's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from sluice.apps.replay import with_monitoring
from sluice.config import MonitoringConfig, get_model_config
from sluice.lake import open_lake
from sluice.monitoring import job, record
from sluice.monitoring.drift import DriftAccumulator, DriftResult, profile_frame
from sluice.monitoring.performance import (
    PerformanceResult,
    check_interval,
    interval_performance,
    judge_performance,
    performance_check,
)

D = dt.date(2025, 3, 1)


def day(i: int) -> str:
    return (D + dt.timedelta(days=i)).isoformat()


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(10.0 + shift, 2.0, rows),
            "c": pd.array(np.array(["a", "b", "c"], dtype=object)[rng.choice(3, size=rows)], dtype="str"),
        }
    )


@pytest.fixture(scope="module")
def verdicts() -> tuple[DriftResult, DriftResult]:
    """A quiet interval's and a shifted one's verdict (x moved by 1.5 sd), with a NaN-free JSON form."""
    profile = profile_frame(frame(20_000, 1), ["x"], ["c"], scores=np.random.default_rng(2).beta(2, 8, 20_000))
    out = []
    for seed, shift in ((3, 0.0), (4, 3.0)):
        acc = DriftAccumulator(profile, ["x"], ["c"]).update(frame(3_000, seed, shift), np.full(3_000, np.nan))
        out.append(acc.verdict(MonitoringConfig(), {"x": 0.7, "c": 0.3}))
    return out[0], out[1]


def test_the_verdict_is_typed_and_its_json_form_is_the_accumulators_result(verdicts) -> None:
    quiet, shifted = verdicts
    assert not quiet.drift and shifted.drift and shifted.drifted_features == ["x"]
    assert isinstance(shifted.features["x"]["psi"], float) and shifted.weighting == "importance"
    data = shifted.to_dict()
    assert "ds" not in data and "model_version" not in data, "no identity until monitoring stamps it"
    stamped = shifted.of_interval(day(0), "loans", "3")
    out = stamped.to_dict()
    assert list(out)[:4] == ["drift", "reason", "reasons", "rows"]
    assert list(out)[-3:] == ["ds", "model", "model_version"] and out["model_version"] == "3"
    assert DriftResult.from_dict(json.loads(json.dumps(out, allow_nan=False))) == stamped


def test_a_drift_report_without_a_field_names_it() -> None:
    with pytest.raises(ValueError, match=r"not a drift result: no \['drift'"):
        DriftResult.from_dict({"reason": "x"})


def test_the_lake_holds_the_drift_results_json_form_and_reads_it_back(tmp_path, verdicts) -> None:
    lake = open_lake(str(tmp_path))
    quiet, shifted = verdicts
    with pytest.raises(ValueError, match="no ds"):
        record.write_drift(lake, "m", quiet, "<html></html>")
    for i, v in enumerate((quiet, quiet, shifted)):
        uri_json, uri_html = record.write_drift(lake, "m", v.of_interval(day(i), "m", "1"), f"<p>{i}</p>")
        assert uri_json.endswith(f"reports/m/drift/ds={day(i)}/drift.json") and uri_html.endswith("drift.html")
    key = f"reports/m/drift/ds={day(2)}/drift.json"
    assert lake.read(key) == json.dumps(shifted.of_interval(day(2), "m", "1").to_dict(), indent=1).encode()
    assert record.read_drift(lake, "m", day(2)) == shifted.of_interval(day(2), "m", "1")
    assert record.read_drift(lake, "m", day(5)) is None
    history = record.drift_history(lake, "m", D + dt.timedelta(days=2))
    assert [(r.ds, r.drift) for r in history] == [(day(0), False), (day(1), False)]


def test_the_performance_result_is_typed_and_performance_check_is_its_json_form() -> None:
    per_interval = {"metric": "roc_auc", "intervals": 6, "mean": 0.80, "std": 0.01}
    args = ({"roc_auc": 0.70}, {"roc_auc": 0.82})
    kw = {"metric": "roc_auc", "rows": 900, "per_interval": per_interval}
    typed = judge_performance(*args, MonitoringConfig(), **kw)
    assert typed.decay and typed.status == "decay" and typed.reference_kind == "per_interval"
    assert typed.to_dict() == performance_check(*args, MonitoringConfig(), **kw)
    assert list(typed.to_dict())[-3:] == ["reason", "interval_decay", "sequential"], "new fields come last"
    stamped = typed.of_interval(day(0), "3", day(7), {"metrics": {"roc_auc": 0.7}, "rows": 900})
    assert list(stamped.to_dict())[-4:] == ["ds", "model_version", "label_ds", "live_metrics"]
    assert PerformanceResult.from_dict(json.loads(json.dumps(stamped.to_dict()))) == stamped
    older = {
        k: v
        for k, v in typed.to_dict().items()
        if k not in ("reference_kind", "noise_band", "interval_decay", "sequential")
    }
    back = PerformanceResult.from_dict(older)
    assert back.reference_kind == "pooled" and back.interval_decay is True and back.sequential is None
    with pytest.raises(ValueError, match=r"no \['status'"):
        PerformanceResult.from_dict({"decay": True})


def test_check_interval_keeps_its_json_form_and_the_typed_one_carries_the_live_metrics() -> None:
    cfg = get_model_config("loans")
    rng = np.random.default_rng(0)
    ids = np.arange(600)
    y = rng.integers(0, 2, 600)
    preds = pd.DataFrame({cfg.labels.join_key: ids, "score": np.clip(y * 0.3 + rng.random(600) * 0.7, 0, 1)})
    labels = pd.DataFrame({cfg.labels.join_key: ids, cfg.labels.column: y})
    live, check = check_interval(cfg, preds, labels, {"roc_auc": 0.8}, {})
    typed = interval_performance(cfg, preds, labels, {"roc_auc": 0.8}, {})
    assert typed.live_metrics == live and "live_metrics" not in check
    assert dataclasses.replace(typed, live_metrics=None).to_dict() == check


def perf(i: int, decay: bool, version: str = "1") -> PerformanceResult:
    status = "decay" if decay else "ok"
    return dataclasses.replace(
        judge_performance({"roc_auc": 0.6 if decay else 0.8}, {"roc_auc": 0.8}, metric="roc_auc", rows=900),
        status=status,
    ).of_interval(day(i), version, day(i + 7), {"rows": 900})


def test_decisions_over_recorded_history_count_the_serving_versions_intervals(tmp_path) -> None:
    monitoring = {"performance.persistence.k": 2, "performance.persistence.n": 3}
    cfg = with_monitoring(get_model_config("loans"), monitoring).model_copy(update={"name": "m"})
    lake = open_lake(str(tmp_path))
    record.write_performance(lake, "m", perf(0, True, version="0"))  # another version's: does not count
    record.write_performance(lake, "m", perf(1, False))
    record.write_performance(lake, "m", perf(2, True))
    assert [r.ds for r in record.performance_history(lake, "m", D + dt.timedelta(days=3))] == [day(0), day(1), day(2)]
    today = {**perf(3, True).to_dict(), "report_json": "x"}
    decision = job.decide_on_performance(cfg, lake, day(3), today)
    assert decision["retrain"] and decision["reason"].startswith("decay: 2 of the last 3 intervals decayed")

    # the interval starts one retraining: the record is the cooldown's memory and the once-per-interval key
    rec = job.record_retrain(cfg, lake, day(3), source="performance", reason="why", report="r", run_id="t1")
    assert record.read_retrain(lake, "m", day(3)) == record.RetrainRecord(**rec)
    again = job.decide_on_performance(cfg, lake, day(3), today)
    assert not again["retrain"] and again["prior"] == rec and "already started" in again["reason"]
    assert record.last_retrain(lake, "m", D + dt.timedelta(days=4)) == D + dt.timedelta(days=3)
    next_day = {**perf(4, True).to_dict(), "report_json": "x"}
    held = job.decide_on_performance(cfg, lake, day(4), next_day)
    # the intervals up to the retraining were judged before it: the count starts again after it
    assert not held["retrain"] and held["last_retrain"] == day(3)
    assert held["reason"].startswith("no decay: 1 of the last 1 intervals decayed (needs 2 of 3)")


def test_a_later_intervals_retrain_holds_an_earlier_interval_judged_after_it(tmp_path) -> None:
    """A backfill judges intervals out of order: the retrain record of a later interval is found by
    retrains_around and holds the earlier one within cooldown_days; one beyond it does not."""
    monitoring = {"persistence.k": 1, "persistence.n": 1, "cooldown_days": 3}
    cfg = with_monitoring(get_model_config("loans"), monitoring).model_copy(update={"name": "m"})
    lake = open_lake(str(tmp_path))
    job.record_retrain(cfg, lake, day(5), source="drift", reason="why", report="r", run_id="t5")
    job.record_retrain(cfg, lake, day(9), source="drift", reason="why", report="r", run_id="t9")
    assert record.retrains_around(lake, "m", D + dt.timedelta(days=2)) == (None, D + dt.timedelta(days=5))
    assert record.retrains_around(lake, "m", D + dt.timedelta(days=5)) == (None, D + dt.timedelta(days=9))
    assert record.retrains_around(lake, "m", D + dt.timedelta(days=7)) == (
        D + dt.timedelta(days=5),
        D + dt.timedelta(days=9),
    )

    def drifted(i: int) -> dict:
        return {"ds": day(i), "drift": True, "model_version": "1", "reason": "shift", "report_json": "x"}

    held = job.decide_retrain(cfg, lake, day(3), drifted(3))
    assert not held["retrain"] and held["cooldown"]["next_retrain"] == day(5), held
    assert f"interval {day(5)}, 2 day(s) later, already started a retrain" in held["reason"]
    assert job.decide_retrain(cfg, lake, day(2), drifted(2))["retrain"]  # 3 days before: outside the cooldown
    assert not job.decide_retrain(cfg, lake, day(7), drifted(7))["retrain"]  # 2 days after
