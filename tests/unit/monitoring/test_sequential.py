"""The pooled (sequential) check of live performance: quiet on a stationary stream, a slow decline caught within a
bounded number of intervals, and the retrain policy it feeds (cooldown, restart after a retrain)."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pytest

from sluice.config import MonitoringConfig, SequentialConfig
from sluice.monitoring.performance import judge_performance
from sluice.monitoring.policy import decide_on_decay, retrain_on, sequential_run
from sluice.monitoring.sequential import SequentialResult, cusum, cusum_path

pytestmark = pytest.mark.unit

#: a flights-like daily AUC: a reference from 9 test days, one day's noise 0.03
MEAN, SD, TEST_DAYS, STREAMS, INTERVALS = 0.70, 0.03, 9, 300, 100


def reference(rng: np.random.Generator) -> dict:
    test = rng.normal(MEAN, SD, TEST_DAYS)
    return {"metric": "roc_auc", "intervals": TEST_DAYS, "mean": float(test.mean()), "std": float(test.std(ddof=1))}


def walk(values: np.ndarray, per_interval: dict, settings: MonitoringConfig) -> tuple[list[int], list[int]]:
    """Each interval judged by the platform's check with the run so far; an alarm starts a retrain, which restarts
    the run (as ``sequential_run`` after the retrain record). (pooled alarms, per-interval decays)."""
    run: list[dict] = []
    pooled, single = [], []
    for t, v in enumerate(values):
        r = judge_performance(
            {"roc_auc": float(v)},
            {"roc_auc": per_interval["mean"] + 0.02},  # the pooled test metric, ignored with a per-interval one
            settings,
            metric="roc_auc",
            rows=900,
            per_interval=per_interval,
            earlier=run,
            ds=f"t{t}",
        )
        assert r.reference_kind == "per_interval" and r.sequential is not None
        if r.interval_decay:
            single.append(t)
        if r.sequential["alarm"]:
            assert r.decay and r.status == "decay" and "pooled decay" in r.reason
            pooled.append(t)
            run = []
        else:
            run.append({"ds": f"t{t}", "drop": r.drop})
    return pooled, single


def stationary(settings: MonitoringConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pooled alarms and per-interval decays of each stationary stream."""
    counts, singles = [], []
    for seed in range(STREAMS):
        rng = np.random.default_rng(seed)
        per_interval = reference(rng)
        pooled, single = walk(rng.normal(MEAN, SD, INTERVALS), per_interval, settings)
        counts.append(len(pooled))
        singles.append(len(single))
    return np.array(counts), np.array(singles)


def test_a_stationary_stream_stays_quiet_at_most_one_false_alarm_in_100_intervals() -> None:
    counts, singles = stationary(MonitoringConfig())
    print(
        f"\nstationary, {STREAMS} streams of {INTERVALS} intervals (reference from {TEST_DAYS} test intervals, sd "
        f"{SD}): false alarms per 100 intervals: mean {counts.mean():.3f}; streams with any {np.mean(counts > 0):.1%}, "
        f"with more than one {np.mean(counts > 1):.1%}; max {counts.max()} (the per-interval check on the same "
        f"streams: {singles.mean():.3f} per 100 intervals)"
    )
    assert counts.mean() <= 0.1, "well under 1 false alarm per 100 intervals on average"
    assert np.mean(counts > 1) <= 0.01, "at most 1 false alarm in 100 intervals on (nearly) every stream"
    # the reference's own error matters: without its allowance the same streams alarm far more often
    loose = MonitoringConfig.model_validate({"performance": {"sequential": {"reference_z": 0, "allowance_sd": 0.25}}})
    assert stationary(loose)[0].mean() > 5 * max(counts.mean(), 0.01)


def test_a_linear_decline_of_0002_a_day_is_flagged_within_a_bounded_delay() -> None:
    delays, singles = [], []
    slope = 0.002
    for seed in range(STREAMS):
        rng = np.random.default_rng(10_000 + seed)
        per_interval = reference(rng)
        values = MEAN - slope * np.arange(INTERVALS) + rng.normal(0, SD, INTERVALS)
        pooled, single = walk(values, per_interval, MonitoringConfig())
        delays.append(pooled[0] + 1 if pooled else math.inf)
        singles.append(single[0] + 1 if single else math.inf)
    d, s = np.array(delays), np.array(singles)
    med, p90 = np.median(d), np.percentile(d, 90)
    print(
        f"\nlinear decline of {slope} AUC/interval from {MEAN} (sd {SD}, {STREAMS} streams): the pooled check flags "
        f"after median {med:.0f} intervals (a drop of {slope * med:.3f}), 90% within {p90:.0f}, all within "
        f"{d.max():.0f}; the per-interval check (any single decay, noise included): median {np.median(s):.0f}, "
        f"never on {np.mean(~np.isfinite(s)):.0%} of the streams"
    )
    assert np.isfinite(d).all(), "every declining stream is flagged within 100 intervals"
    assert p90 <= 45 and d.max() <= 60


def test_cusum_arithmetic_allowance_and_reason() -> None:
    st = SequentialConfig(reference_z=2.0, allowance_sd=0.5, threshold=1.0)
    # sd 0.03 from 9 intervals: se 0.01, allowance 0.02 + 0.015 = 0.035 while the live drops are constant
    path = cusum_path([0.065, 0.065, 0.065], reference_sd=0.03, reference_intervals=9, settings=st)
    assert [round(p[1], 4) for p in path] == [0.035, 0.0341, 0.0334]  # the live sd (no change) pools in
    assert path[0][0] == pytest.approx(1.0)  # (0.065 - 0.035) / 0.03
    run = [{"ds": f"2025-01-0{i + 1}", "drop": 0.065} for i in range(3)]
    r = cusum(run, metric="roc_auc", reference=0.7, reference_sd=0.03, reference_intervals=9, settings=st)
    assert r.alarm and r.status == "alarm" and r.intervals == 3 and r.since == "2025-01-01"
    assert r.started == "2025-01-01" and r.reference_se == pytest.approx(0.01)
    assert "pooled decay" in r.reason and "standard error 0.0100" in r.reason
    assert SequentialResult.from_dict(r.to_dict()) == r
    quiet = cusum(run[:1], metric="roc_auc", reference=0.7, reference_sd=0.03, reference_intervals=9)
    assert not quiet.alarm and quiet.status == "ok" and "< 5" in quiet.reason
    none = cusum(run, metric="roc_auc", reference=None, reference_sd=None, reference_intervals=0)
    assert none.status == "not_judged" and "no per-interval spread" in none.reason
    with pytest.raises(ValueError, match=r"intervals \['x'\] have no drop"):
        cusum([{"ds": "x", "drop": None}], metric="roc_auc", reference=0.7, reference_sd=0.03, reference_intervals=9)
    with pytest.raises(ValueError, match="no \\['alarm'"):
        SequentialResult.from_dict({"status": "ok"})


def test_a_pooled_reference_and_an_unjudged_interval_leave_the_per_interval_verdict_alone() -> None:
    pooled_ref = judge_performance({"roc_auc": 0.6}, {"roc_auc": 0.7}, metric="roc_auc", rows=900)
    assert pooled_ref.sequential["status"] == "not_judged" and pooled_ref.decay == pooled_ref.interval_decay
    thin = judge_performance(
        {"roc_auc": 0.3}, {"roc_auc": 0.7}, metric="roc_auc", rows=10, per_interval=reference(np.random.default_rng(0))
    )
    assert thin.status == "too_few_rows" and thin.sequential is None and not thin.decay
    off = MonitoringConfig.model_validate({"performance": {"sequential": {"enabled": False}}})
    quiet = judge_performance(
        {"roc_auc": 0.7}, {}, off, metric="roc_auc", rows=900, per_interval=reference(np.random.default_rng(0))
    )
    assert quiet.sequential is None


def history(drops: list[float], version: str = "5", start: int = 1) -> list[dict]:
    return [
        {"ds": f"2013-08-{start + i:02d}", "drop": d, "status": "ok", "decay": False, "model_version": version}
        for i, d in enumerate(drops)
    ]


def test_the_run_is_the_serving_versions_judged_intervals_since_the_last_retrain() -> None:
    h = history([0.01, 0.02, 0.03, 0.04])
    h.insert(2, {"ds": "2013-08-03", "status": "too_few_rows", "drop": None, "decay": False, "model_version": "5"})
    h.append({"ds": "2013-08-09", "drop": 0.5, "status": "ok", "decay": False, "model_version": "4"})
    assert [e["ds"] for e in sequential_run(h, 5, None)] == ["2013-08-01", "2013-08-02", "2013-08-03", "2013-08-04"]
    assert [e["ds"] for e in sequential_run(h, "5", "2013-08-02")] == ["2013-08-03", "2013-08-04"]


def test_a_pooled_alarm_retrains_without_k_of_n_but_not_within_the_cooldown() -> None:
    st = MonitoringConfig.model_validate({"cooldown_days": 3, "performance": {"persistence": {"k": 3, "n": 5}}})
    per_interval = {"metric": "roc_auc", "intervals": 9, "mean": 0.70, "std": 0.03}
    drops = [0.06] * 12
    run: list[dict] = []
    h: list[dict] = []
    for i, d in enumerate(drops):
        ds = f"2013-08-{i + 1:02d}"
        r = judge_performance(
            {"roc_auc": 0.70 - d}, {}, st, metric="roc_auc", rows=900, per_interval=per_interval, earlier=run, ds=ds
        ).of_interval(ds, "5", ds)
        h.append(r.to_dict())
        run.append({"ds": ds, "drop": r.drop})
        if r.sequential["alarm"]:
            break
    latest = h[-1]
    assert latest["sequential"]["alarm"] and not latest["interval_decay"], "each day alone is within its noise"
    first = decide_on_decay(h, st, today=latest["ds"])
    assert first["retrain"] and first["pooled"] and first["decayed_intervals"] == 0
    assert "pooled decline" in first["reason"] and "pooled decay" in first["reason"]
    assert latest["ds"] == "2013-08-06", "a steady 0.06 drop (2 sd) is flagged on its 6th interval"
    assert decide_on_decay(h, st, last_retrain="2013-08-01", today=latest["ds"])["retrain"], "out of the cooldown"
    inside = decide_on_decay(h, st, last_retrain="2013-08-04", today=latest["ds"])
    assert not inside["retrain"] and "within the 3-day cooldown" in inside["reason"]
    decision = retrain_on("decay", h, st, version="5", today=latest["ds"], last_retrain=None, prior=None)
    assert decision.retrain and decision.to_dict()["pooled"]


def test_over_the_lake_a_slow_decline_retrains_once_and_the_sum_restarts_after_it(tmp_path) -> None:
    from sluice.apps.replay import with_monitoring
    from sluice.config import get_model_config
    from sluice.lake import open_lake
    from sluice.monitoring import job, record

    cfg = with_monitoring(get_model_config("loans"), {"cooldown_days": 3}).model_copy(update={"name": "m"})
    lake = open_lake(str(tmp_path))
    per_interval = {"metric": "roc_auc", "intervals": 9, "mean": 0.70, "std": 0.03}
    rng = np.random.default_rng(3)
    start = dt.date(2013, 8, 1)
    retrained = []
    for i in range(40):
        ds = (start + dt.timedelta(days=i)).isoformat()
        live = 0.70 - 0.002 * i + rng.normal(0, 0.03)
        earlier = job.pooled_run(cfg, lake, ds, "5")
        r = judge_performance(
            {"roc_auc": live},
            {},
            cfg.monitoring,
            metric="roc_auc",
            rows=900,
            per_interval=per_interval,
            earlier=earlier,
            ds=ds,
        ).of_interval(ds, "5", ds)
        assert r.sequential["intervals"] == len(earlier) + 1
        record.write_performance(lake, "m", r)
        decision = job.decide_on_performance(cfg, lake, ds, r.to_dict())
        if decision["retrain"]:
            retrained.append((ds, r.sequential["statistic"], decision["pooled"]))
            job.record_retrain(cfg, lake, ds, source="performance", reason=decision["reason"], report="r", run_id=ds)
            nxt = (start + dt.timedelta(days=i + 1)).isoformat()
            assert job.pooled_run(cfg, lake, nxt, "5") == [], "a retrain restarts the sum"
    assert retrained, "the decline is flagged within 40 intervals"
    first, stat, pooled = retrained[0]
    print(
        f"\nover the lake: first retrain on {first} (interval {(dt.date.fromisoformat(first) - start).days + 1}), "
        f"CUSUM {stat:.2f}; retrains {[d for d, _, _ in retrained]}"
    )
    assert pooled and stat >= 5
    gaps = [
        (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days for (a, *_), (b, *_) in itertools.pairwise(retrained)
    ]
    assert all(g >= 3 for g in gaps), "never within the cooldown"


def test_the_retrain_mail_says_it_was_the_pooled_decline_escaped() -> None:
    from sluice.alerts.email import retrain_alert

    per_interval = {"metric": "roc_auc", "intervals": 9, "mean": 0.70, "std": 0.03}
    run = [{"ds": f"2013-08-{i + 1:02d}", "drop": 0.06} for i in range(5)]
    r = judge_performance(
        {"roc_auc": 0.64}, {}, metric="roc_auc", rows=900, per_interval=per_interval, earlier=run, ds="2013-08-06"
    ).of_interval("2013-08-06", "5<b>", "2013-08-07")
    assert r.decay and not r.interval_decay
    signal = {**r.to_dict(), "reasons": [r.reason]}
    decision = decide_on_decay([signal], MonitoringConfig(), today="2013-08-06")
    mail = retrain_alert("flights", "performance", "2013-08-06", signal, decision, "flights_training", {})
    assert "pooled decay" in mail.text and "a pooled decline over the labelled intervals" in mail.text
    assert "CUSUM" in mail.html and "5<b>" not in mail.html and "5&lt;b&gt;" in mail.html
