"""The retrain policy: when the signals of monitored intervals start a retraining.

One noisy interval is not a trend. :func:`decide` turns the drift verdicts of the intervals judged against
the serving version into a decision: drift in ``persistence.k`` of the last ``persistence.n`` intervals,
never within ``cooldown_days`` of another retrain, before or after the interval (intervals are judged out of
order by backfills and concurrent runs: an earlier interval processed after a later one that retrained must
not start a second retraining). :func:`decide_on_decay` does the same for live
performance (``performance.persistence``); a pooled alarm (``performance.sequential``, a CUSUM over the
labelled intervals of :func:`sequential_run`) is persistent by construction and starts a retrain without
``k`` of ``n``, under the same cooldown. :func:`retrain_on` takes the
decisions the monitoring DAG and the replay take: the history narrowed to the serving version
(:func:`judged_against`), the rule, and at most one retraining per interval (:func:`once_per_interval`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.config import MonitoringConfig

__all__ = [
    "decide",
    "decide_on_decay",
    "judged_against",
    "RetrainDecision",
    "once_per_interval",
    "retrain_on",
    "sequential_run",
]


def _as_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{what}: expected a date (YYYY-MM-DD), got {value!r}") from None


def decide(
    history: Iterable[Mapping[str, Any] | bool],
    settings: MonitoringConfig | None = None,
    *,
    last_retrain: dt.date | str | None = None,
    today: dt.date | str | None = None,
    signal: tuple[str, str] = ("drift", "drifted"),
    next_retrain: dt.date | str | None = None,
) -> dict[str, Any]:
    """Whether drift calls for retraining now, from the interval results so far (oldest first).

    ``signal`` names the signal in the reason (``("decay", "decayed")`` for live performance; the entries keep
    the key ``drift``).

    Each entry is a ``result()`` (or just its ``drift`` bool), optionally with ``"ds"``: its interval's date.
    Drift counts when at least ``persistence.k`` of the last ``persistence.n`` intervals drifted; intervals
    dated on or before ``last_retrain`` were judged against the previous model's profile and do not count.
    Within ``cooldown_days`` after ``last_retrain`` (``today - last_retrain < cooldown_days``) or before
    ``next_retrain`` (the first later interval that started a retraining, when intervals are judged out of
    order: ``next_retrain - today < cooldown_days``) the answer is no whatever the data say: two retrains are
    always at least ``cooldown_days`` apart, whatever order their intervals were judged in. ``today`` defaults
    to the newest entry's ``ds``.
    """
    st = settings or MonitoringConfig()
    k, n = st.persistence.k, st.persistence.n
    entries = [{"drift": bool(e)} if isinstance(e, bool) else e for e in history]
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or "drift" not in e:
            raise ValueError(f"history[{i}]: expected a drift result (a mapping with 'drift') or a bool")
    retrain = _as_date(last_retrain, "last_retrain") if last_retrain is not None else None
    later = _as_date(next_retrain, "next_retrain") if next_retrain is not None else None
    newest = entries[-1].get("ds") if entries else None
    when = today if today is not None else newest
    day = _as_date(when, "today") if when is not None else None
    if retrain is not None:
        entries = [e for e in entries if e.get("ds") is None or _as_date(e["ds"], "history ds") > retrain]
    window = entries[-n:]
    drifted = sum(1 for e in window if e["drift"])
    latest = bool(entries and entries[-1]["drift"])
    persisted = drifted >= k
    cooldown: dict[str, Any] = {
        "active": False,
        "cooldown_days": st.cooldown_days,
        "last_retrain": retrain.isoformat() if retrain else None,
        "days_since_retrain": None,
        "next_retrain": later.isoformat() if later else None,
        "days_to_next_retrain": None,
    }
    if (retrain is not None or later is not None) and day is None:
        raise ValueError("a retrain date is given but the day is unknown: pass today= or put 'ds' in the history")
    if retrain is not None and day is not None:
        since = (day - retrain).days
        cooldown.update(days_since_retrain=since, active=0 <= since < st.cooldown_days)
    if later is not None and day is not None:
        until = (later - day).days
        cooldown["days_to_next_retrain"] = until
        cooldown["active"] = cooldown["active"] or 0 < until < st.cooldown_days
    drift = persisted and not cooldown["active"]
    noun, verb = signal
    if not entries:
        reason = f"no {noun}: no intervals since the last retrain" if retrain else f"no {noun}: no intervals yet"
    elif drift:
        reason = f"{noun}: {drifted} of the last {len(window)} intervals {verb} (needs {k} of {n})"
    elif persisted:
        reason = f"no retrain: {drifted} of the last {len(window)} intervals {verb}, but {_cooling(cooldown)}"
    else:
        reason = f"no {noun}: {drifted} of the last {len(window)} intervals {verb} (needs {k} of {n})"
    return {
        "drift": drift,
        "latest_drift": latest,
        "persisted": persisted,
        "drifted_intervals": drifted,
        "intervals": len(window),
        "k": k,
        "n": n,
        "today": day.isoformat() if day else None,
        "cooldown": cooldown,
        "reason": reason,
    }


def _cooling(cooldown: Mapping[str, Any]) -> str:
    """Why the cooldown holds: the retrain it is near, before or after the interval."""
    since, until, days = cooldown["days_since_retrain"], cooldown["days_to_next_retrain"], cooldown["cooldown_days"]
    if since is not None and 0 <= since < days:
        return f"the last retrain was {since} day(s) ago, within the {days}-day cooldown"
    return (
        f"interval {cooldown['next_retrain']}, {until} day(s) later, already started a retrain, "
        f"within the {days}-day cooldown"
    )


def decide_on_decay(
    history: Sequence[Mapping[str, Any]],
    settings: MonitoringConfig | None = None,
    *,
    last_retrain: Any = None,
    today: Any = None,
    next_retrain: Any = None,
) -> dict[str, Any]:
    """Whether live-performance decay calls for retraining now.

    ``history``: the labelled intervals judged against the serving version, oldest first, each ``{"ds",
    "decay"}`` (a :func:`performance_check` result with its ``ds``; ``status`` and ``reason`` are used when
    present: intervals not judged are left out, the newest decay's reason is quoted). One noisy day is not a
    trend: decay must show in ``performance.persistence.k`` of the last ``n`` intervals, and never within
    ``cooldown_days`` of another retrain (``last_retrain`` before, ``next_retrain`` after, as :func:`decide`).
    k of n counts the per-interval verdicts (``interval_decay``, else ``decay``). When the newest interval
    carries a pooled alarm (``sequential.alarm``: the CUSUM over the intervals since the last retrain already
    is the persistence), it retrains unless the cooldown is active.
    Returns ``{"retrain", "reason", "decayed_intervals", "intervals", "k", "n", "cooldown", "pooled"}``.
    """
    st = settings or MonitoringConfig()
    entries = []
    for i, e in enumerate(history):
        if not isinstance(e, Mapping) or "decay" not in e:
            raise ValueError(f"history[{i}]: expected a performance result (a mapping with 'decay')")
        if e.get("status", "ok") in ("ok", "decay"):  # an interval too small to judge is no evidence either way
            single = e.get("interval_decay")
            entries.append({"ds": e.get("ds"), "drift": bool(e["decay"] if single is None else single)})
    rule = st.model_copy(update={"persistence": st.performance.persistence})
    d = decide(
        entries, rule, last_retrain=last_retrain, today=today, signal=("decay", "decayed"), next_retrain=next_retrain
    )
    latest = history[-1] if history else {}
    pooled = bool(latest.get("status", "ok") == "decay" and (latest.get("sequential") or {}).get("alarm"))
    retrain, reason = bool(d["drift"]), str(d["reason"])
    if pooled and not retrain:
        cool = d["cooldown"]
        if cool["active"]:
            reason = f"no retrain: a pooled decline over the labelled intervals, but {_cooling(cool)}"
        else:
            retrain, reason = True, "decay: a pooled decline over the labelled intervals since the last retrain"
    if latest.get("decay") and latest.get("reason"):
        reason = f"{reason} ({latest['reason']})"
    return {
        "retrain": retrain,
        "reason": reason,
        "decayed_intervals": d["drifted_intervals"],
        "intervals": d["intervals"],
        "k": d["k"],
        "n": d["n"],
        "cooldown": d["cooldown"],
        "pooled": pooled,
    }


def sequential_run(
    history: Iterable[Mapping[str, Any]], version: Any, last_retrain: dt.date | str | None
) -> list[dict[str, Any]]:
    """The earlier intervals of the pooled check (``performance.sequential``): those of ``history`` judged
    against ``version`` (:func:`judged_against`), dated after ``last_retrain`` (a retrain, passed or not,
    restarts the sum, as it restarts k of n), and judged (status ok or decay); ``{"ds", "drop"}`` each."""
    after = _as_date(last_retrain, "last_retrain") if last_retrain is not None else None
    out = []
    for h in judged_against(history, version):
        if h.get("status", "ok") not in ("ok", "decay") or h.get("drop") is None:
            continue
        if after is not None and h.get("ds") is not None and _as_date(h["ds"], "history ds") <= after:
            continue
        out.append({"ds": str(h.get("ds")), "drop": float(h["drop"])})
    return out


def judged_against(history: Iterable[Mapping[str, Any]], version: Any) -> list[Mapping[str, Any]]:
    """The intervals of ``history`` judged against model version ``version`` (compared as strings: the lake's
    reports hold the registry's version strings): a new version's reference starts a new history."""
    want = str(version)
    return [h for h in history if str(h.get("model_version")) == want]


@dataclass(frozen=True)
class RetrainDecision:
    """Whether an interval's signal starts a retraining, and why.

    ``rule`` is the persistence rule's own verdict (:func:`decide`'s for drift, :func:`decide_on_decay`'s for
    decay: counts, ``k``/``n``, the cooldown); ``retrain`` and ``reason`` are the final answer once the cooldown
    and the once-per-interval guard (``prior``: the interval's retrain record) have spoken. ``to_dict`` is the
    form the monitoring DAG passes on (XCom, the retrain mail) and the replay keeps.
    """

    signal: str
    retrain: bool
    reason: str
    rule: dict[str, Any]
    last_retrain: str | None = None
    prior: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {**self.rule}
        if self.signal == "drift":
            out["retrain"] = self.retrain
        else:
            out["last_retrain"] = self.last_retrain
        out.update(retrain=self.retrain, reason=self.reason)
        if self.prior is not None:
            out["prior"] = self.prior
        return out


def once_per_interval(decision: RetrainDecision, prior: Mapping[str, Any] | None) -> RetrainDecision:
    """At most one retraining per interval: a decision to retrain for an interval that already started one
    (``prior``: its retrain record, with the ``reason``) becomes a no, quoting why the first one started."""
    if decision.retrain and prior is not None:
        why = f"already started for this interval: {prior['reason']}"
        return dataclasses.replace(decision, retrain=False, reason=why, prior=dict(prior))
    return decision


def retrain_on(
    signal: str,
    history: Iterable[Mapping[str, Any]],
    settings: MonitoringConfig,
    *,
    version: Any,
    today: dt.date,
    last_retrain: dt.date | None,
    prior: Mapping[str, Any] | None,
    next_retrain: dt.date | None = None,
) -> RetrainDecision:
    """Whether the ``signal`` (``"drift"`` or ``"decay"``) of interval ``today`` starts a retraining.

    ``history``: the interval results up to ``today``, oldest first, each with ``ds`` and ``model_version``
    (drift: ``drift``; decay: a performance result). Only the intervals judged against ``version`` count;
    drift goes through :func:`decide`, decay through :func:`decide_on_decay`; both under the cooldown around
    the retrains nearest ``today`` (``last_retrain`` before it, ``next_retrain`` after it: the first later
    interval that started one, or None) and at most once per interval (``prior``: the interval's retrain
    record, or None).
    """
    same = judged_against(history, version)
    if signal == "drift":
        entries = [{"ds": h["ds"], "drift": h["drift"]} for h in same]
        rule = decide(entries, settings, last_retrain=last_retrain, today=today, next_retrain=next_retrain)
        verdict = bool(rule["drift"])
    elif signal == "decay":
        rule = decide_on_decay(same, settings, last_retrain=last_retrain, today=today, next_retrain=next_retrain)
        verdict = bool(rule["retrain"])
    else:
        raise ValueError(f"unknown signal {signal!r}; expected 'drift' or 'decay'")
    decision = RetrainDecision(
        signal=signal,
        retrain=verdict,
        reason=str(rule["reason"]),
        rule=rule,
        last_retrain=str(last_retrain) if last_retrain else None,
    )
    return once_per_interval(decision, prior)
