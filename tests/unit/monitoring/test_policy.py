"""The retrain policy (``sluice.monitoring.policy``): persistence and cooldown over intervals, for drift and for
decay, the serving version's history, and one retraining per interval -- the decisions the monitoring DAG and
the replay take alike."""

from __future__ import annotations

import datetime as dt

import pytest

from sluice.config import MonitoringConfig, PerformanceConfig, PersistenceConfig
from sluice.monitoring.policy import (
    RetrainDecision,
    decide,
    decide_on_decay,
    judged_against,
    once_per_interval,
    retrain_on,
)

pytestmark = pytest.mark.unit

D = dt.date(2025, 2, 1)


def day(i: int) -> str:
    return f"2025-02-{i:02d}"


# ---- drift: k of n, cooldown ---------------------------------------------------------------------------


def _h(*flags: bool, start: dt.date = dt.date(2025, 3, 1)) -> list[dict]:
    return [{"drift": f, "ds": (start + dt.timedelta(days=i)).isoformat()} for i, f in enumerate(flags)]


def test_persistence_k_of_n() -> None:
    st = MonitoringConfig(persistence={"k": 2, "n": 3})
    assert not decide(_h(False, False, True), st)["drift"]
    d = decide(_h(True, False, True), st)
    assert d["drift"] and d["drifted_intervals"] == 2 and d["reason"].startswith("drift: 2 of the last 3")
    assert not decide(_h(True, False, False, True), st)["drift"]  # the first one fell out of the window
    assert decide(_h(True))["drift"]  # the default: 1 of 1, the first drifted interval
    assert not decide([])["drift"] and decide([True, False, True], st)["drift"]


def test_cooldown_after_a_retrain_and_older_intervals_do_not_count() -> None:
    st = MonitoringConfig(cooldown_days=3)
    history = _h(False, True, True)  # 2025-03-01..03
    held = decide(history, st, last_retrain="2025-03-01")
    assert not held["drift"] and held["persisted"] and held["cooldown"]["active"]
    assert held["cooldown"]["days_since_retrain"] == 2 and "within the 3-day cooldown" in held["reason"]
    assert decide(history, st, last_retrain=dt.date(2025, 2, 28))["drift"]  # 3 days after: allowed again
    st2 = MonitoringConfig(persistence={"k": 2, "n": 3}, cooldown_days=0)
    # the drifted interval of 03-02 was judged against the previous model's profile
    assert not decide(_h(False, True, False, True), st2, last_retrain="2025-03-02")["drift"]
    with pytest.raises(ValueError, match="pass today="):
        decide([True], st, last_retrain="2025-03-01")
    assert decide([True], st, last_retrain="2025-03-01", today="2025-03-10")["drift"]
    with pytest.raises(ValueError, match=r"history\[0\]"):
        decide([{"nope": 1}])


# Intervals are judged out of order (backfills, several workers): a retrain on either side of the interval,
# within cooldown_days, holds it. (days of the previous retrain, of the next one; whether it is held; why)
COOLDOWN_CASES = [
    pytest.param(None, None, False, "", id="no-retrain-yet"),
    pytest.param(-2, None, True, "the last retrain was 2 day(s) ago", id="last-within"),
    pytest.param(-3, None, False, "", id="last-just-out"),
    pytest.param(None, 2, True, "2025-03-05, 2 day(s) later, already started a retrain", id="next-within"),
    pytest.param(None, 1, True, "1 day(s) later", id="next-the-day-after"),
    pytest.param(None, 3, False, "", id="next-just-out"),
    pytest.param(-5, 1, True, "1 day(s) later", id="next-holds-when-last-is-old"),
    pytest.param(-1, 9, True, "the last retrain was 1 day(s) ago", id="both-sides-last-quoted"),
]


@pytest.mark.parametrize(("last", "nxt", "held", "why"), COOLDOWN_CASES)
def test_the_cooldown_holds_on_either_side_of_a_retrain(last, nxt, held, why) -> None:
    st = MonitoringConfig(persistence={"k": 1, "n": 1}, cooldown_days=3)
    today = dt.date(2025, 3, 3)

    def on(n: int | None) -> dt.date | None:
        return None if n is None else today + dt.timedelta(days=n)

    d = decide([{"drift": True, "ds": today.isoformat()}], st, last_retrain=on(last), next_retrain=on(nxt))
    assert d["cooldown"]["active"] is held and d["drift"] is not held, d
    assert (
        (why in d["reason"] and "within the 3-day cooldown" in d["reason"])
        if held
        else d["reason"].startswith("drift: 1 of the last 1")
    ), d["reason"]
    assert d["cooldown"]["next_retrain"] == (on(nxt).isoformat() if nxt is not None else None)


def test_a_storm_judged_in_any_order_retrains_once_when_the_cooldown_spans_it() -> None:
    """Ten drifted intervals judged in a scrambled order, each seeing the retrains the earlier-judged ones
    started: one retrain, whatever the order, when cooldown_days >= the storm's length."""
    st = MonitoringConfig(persistence={"k": 1, "n": 1}, cooldown_days=10)
    days = [dt.date(2025, 4, 1) + dt.timedelta(days=i) for i in range(10)]
    for order in ([7, 2, 9, 0, 5, 1, 8, 3, 6, 4], list(range(10)), list(range(9, -1, -1))):
        started: list[dt.date] = []
        for i in order:
            today = days[i]
            before = [r for r in started if r < today]
            after = [r for r in started if r > today]
            d = retrain_on(
                "drift",
                [{"ds": today.isoformat(), "drift": True, "model_version": "1"}],
                st,
                version="1",
                today=today,
                last_retrain=max(before) if before else None,
                next_retrain=min(after) if after else None,
                prior=None,
            )
            if d.retrain:
                started.append(today)
        assert started == [days[order[0]]], (order, started)


def test_decay_cooldown_holds_before_a_later_retrain_too() -> None:
    st = MonitoringConfig(cooldown_days=3, performance=PerformanceConfig(persistence=PersistenceConfig(k=1, n=1)))
    history = [{"ds": "2025-03-03", "decay": True, "status": "decay"}]
    assert decide_on_decay(history, st)["retrain"]
    held = decide_on_decay(history, st, next_retrain="2025-03-05")
    assert not held["retrain"] and "2 day(s) later, already started a retrain" in held["reason"]
    assert decide_on_decay(history, st, next_retrain="2025-03-06")["retrain"]


# ---- decay


def test_decay_must_persist_and_respect_the_cooldown_before_it_retrains() -> None:
    def day(i: int) -> str:
        return f"2025-02-{i:02d}"

    one_of_one = MonitoringConfig(cooldown_days=3)
    assert decide_on_decay([{"ds": day(1), "decay": True}], one_of_one)["retrain"], "the default: the first decay"
    two_of_three = MonitoringConfig(
        cooldown_days=3, performance=PerformanceConfig(persistence=PersistenceConfig(k=2, n=3))
    )
    noisy = [{"ds": day(1), "decay": True}, {"ds": day(2), "decay": False}, {"ds": day(3), "decay": False}]
    held = decide_on_decay(noisy, two_of_three)
    assert not held["retrain"] and held["decayed_intervals"] == 1 and (held["k"], held["n"]) == (2, 3)
    assert held["reason"] == "no decay: 1 of the last 3 intervals decayed (needs 2 of 3)"
    lasting = [*noisy, {"ds": day(4), "decay": True}, {"ds": day(5), "decay": True}]
    assert decide_on_decay(lasting, two_of_three)["reason"] == "decay: 2 of the last 3 intervals decayed (needs 2 of 3)"
    cooled = decide_on_decay(lasting, two_of_three, last_retrain=day(3))
    assert not cooled["retrain"] and "within the 3-day cooldown" in cooled["reason"]
    unjudged = [*lasting[:-1], {"ds": day(5), "decay": False, "status": "too_few_rows"}]
    assert decide_on_decay(unjudged, two_of_three)["decayed_intervals"] == 1, "an unjudged day is no evidence"
    quoted = decide_on_decay([{"ds": day(1), "decay": True, "reason": "decay: roc_auc dropped"}], one_of_one)
    assert quoted["reason"] == "decay: 1 of the last 1 intervals decayed (needs 1 of 1) (decay: roc_auc dropped)"
    with pytest.raises(ValueError, match=r"history\[0\]: expected a performance result"):
        decide_on_decay([{"ds": day(1)}], two_of_three)


def _perf(i: int, version: str, decay: bool, status: str | None = None) -> dict:
    out = {"ds": day(i), "model_version": version, "decay": decay, "reason": f"decay of {day(i)}" if decay else "ok"}
    if status:
        out["status"] = status
    return out


def test_persistent_decay_of_the_serving_version_starts_a_retraining() -> None:
    """The decay -> retrain path: two decays of the serving version in three intervals start one; the older
    version's decays and an unjudged interval are no evidence."""
    st = MonitoringConfig(cooldown_days=3, performance=PerformanceConfig(persistence=PersistenceConfig(k=2, n=3)))
    history = [_perf(1, "1", True), _perf(2, "1", True), _perf(3, "2", False), _perf(4, "2", True)]
    one = retrain_on(
        "decay", history, st, version="2", today=D + dt.timedelta(days=3), last_retrain=None, prior=None
    ).to_dict()
    assert not one["retrain"] and one["decayed_intervals"] == 1, "v1's decays were judged against another model"
    assert one["reason"] == "no decay: 1 of the last 2 intervals decayed (needs 2 of 3) (decay of 2025-02-04)"
    history += [_perf(5, "2", False, status="too_few_rows"), _perf(6, "2", True)]
    two = retrain_on(
        "decay", history, st, version="2", today=D + dt.timedelta(days=5), last_retrain=None, prior=None
    ).to_dict()
    assert two["retrain"] and (two["decayed_intervals"], two["intervals"]) == (2, 3)
    assert two["reason"].startswith("decay: 2 of the last 3 intervals decayed") and two["last_retrain"] is None
    cooled = retrain_on(
        "decay",
        history,
        st,
        version="2",
        today=D + dt.timedelta(days=5),
        last_retrain=D + dt.timedelta(days=3),
        prior=None,
    ).to_dict()
    assert not cooled["retrain"] and cooled["last_retrain"] == "2025-02-04"


def test_decay_of_an_interval_that_already_started_a_retraining_does_not_start_another() -> None:
    history = [_perf(1, "1", True)]
    prior = {"ds": day(1), "source": "drift", "reason": "drift on ds=2025-02-01: credit_score moved"}
    d = retrain_on("decay", history, MonitoringConfig(), version="1", today=D, last_retrain=None, prior=prior).to_dict()
    assert not d["retrain"] and d["prior"] == prior
    assert d["reason"] == "already started for this interval: drift on ds=2025-02-01: credit_score moved"


def test_drift_decision_counts_the_serving_version_only_and_once_per_interval() -> None:
    st = MonitoringConfig(persistence={"k": 2, "n": 3})
    history = [
        {"ds": day(1), "drift": True, "model_version": 1},
        {"ds": day(2), "drift": False, "model_version": 2},
        {"ds": day(3), "drift": True, "model_version": 2},
    ]
    held = retrain_on(
        "drift", history, st, version=2, today=D + dt.timedelta(days=2), last_retrain=None, prior=None
    ).to_dict()
    assert not held["retrain"] and not held["drift"] and held["drifted_intervals"] == 1
    history.append({"ds": day(4), "drift": True, "model_version": "2"})  # the lake's reports hold strings
    go = retrain_on(
        "drift", history, st, version="2", today=D + dt.timedelta(days=3), last_retrain=None, prior=None
    ).to_dict()
    assert go["retrain"] and go["drift"] and go["drifted_intervals"] == 2
    prior = {"reason": "drift on ds=2025-02-04: first run"}
    again = retrain_on(
        "drift", history, st, version=2, today=D + dt.timedelta(days=3), last_retrain=None, prior=prior
    ).to_dict()
    assert again["drift"] and not again["retrain"], "the rule still says drift; the interval already retrained"
    assert again["reason"] == "already started for this interval: drift on ds=2025-02-04: first run"


def test_same_version_filter_and_guard() -> None:
    rows = [{"model_version": "3"}, {"model_version": 3}, {"model_version": 4}, {}]
    assert judged_against(rows, 3) == rows[:2]
    no = RetrainDecision("drift", retrain=False, reason="no drift", rule={"drift": False, "reason": "no drift"})
    assert once_per_interval(no, {"reason": "x"}) == no, "a no stays a no, without the prior"
    yes = RetrainDecision(
        "drift", retrain=True, reason="drift: 1 of 1", rule={"drift": True, "reason": "drift: 1 of 1"}
    )
    guarded = once_per_interval(yes, {"reason": "x"})
    assert (guarded.retrain, guarded.reason, guarded.prior) == (
        False,
        "already started for this interval: x",
        {"reason": "x"},
    )
    assert guarded.to_dict() == {"drift": True, "reason": guarded.reason, "retrain": False, "prior": {"reason": "x"}}
