"""The pooled check of live performance: a one-sided CUSUM of the labelled intervals' drops.

The per-interval check (:func:`sluice.monitoring.performance.judge_performance`) asks whether one interval is
far below what one test interval scored; a model that loses 0.002 AUC a day never gives it a day like that
until it is far gone. This check pools the intervals judged against one version since its last retrain:

- each interval's ``drop`` (reference minus live, oriented so that positive is worse) minus an *allowance*,
  in interval standard deviations, is added to a sum that never goes below 0 (Page's CUSUM);
- the sum reaching ``threshold`` flags a sustained decline.

The allowance is ``min_drop + reference_z * se + allowance_sd * sd``. ``se`` is the reference's own standard
error (the test intervals' sd over the square root of their number): the reference mean is an estimate, and
its error is the same on every live interval, so it must be absorbed per interval -- a larger threshold alone
would be crossed by any stream long enough. ``sd``, the noise of one interval, pools the test intervals' sd
(``k - 1`` degrees of freedom) with half the mean squared successive difference of the live drops (von
Neumann), which a slow trend hardly inflates. At each interval the sd known then is used, so recomputing the
run from the stored reports gives the statistics the earlier reports hold.

:func:`cusum` is the kernel over plain numbers; :class:`SequentialResult` its verdict, JSON-safe
(``to_dict``/``from_dict``), carried in ``performance.json`` under ``sequential``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sluice.config import SequentialConfig

__all__ = ["SequentialResult", "cusum", "cusum_path"]

ALARM, OK, NOT_JUDGED = "alarm", "ok", "not_judged"


@dataclass(frozen=True)
class SequentialResult:
    """The pooled verdict after the newest interval of a run.

    ``statistic`` is the CUSUM (sd units) and ``threshold`` where it flags; ``allowance`` (metric units) and
    ``sd`` are those of the newest interval; ``reference_se`` is the reference mean's standard error;
    ``intervals`` the labelled intervals in the run, from ``since`` (their first ``ds``); ``mean_drop`` their
    mean drop; ``started`` the ``ds`` from which the sum has stayed above 0 (where the decline began to count).
    """

    alarm: bool
    status: str
    statistic: float | None
    threshold: float
    allowance: float | None
    sd: float | None
    reference_se: float | None
    intervals: int
    since: str | None
    started: str | None
    mean_drop: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialResult:
        names = list(cls.__dataclass_fields__)
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"not a sequential result: no {missing} (it has {sorted(data)})")
        return cls(**{n: data[n] for n in names})


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def cusum_path(
    drops: Sequence[float], *, reference_sd: float, reference_intervals: int, settings: SequentialConfig
) -> list[tuple[float, float, float]]:
    """``(statistic, allowance, sd)`` after each of ``drops`` (oldest first; see the module doc)."""
    k = int(reference_intervals)
    se = reference_sd / math.sqrt(k)
    base = settings.min_drop + settings.reference_z * se
    out: list[tuple[float, float, float]] = []
    s, ssd, prev = 0.0, 0.0, None
    for i, d in enumerate(drops):
        if prev is not None:
            ssd += (d - prev) ** 2
        prev = d
        dof_ref, dof_live = k - 1, i  # i successive differences so far
        sd = math.sqrt((dof_ref * reference_sd**2 + ssd / 2) / (dof_ref + dof_live)) if dof_ref + dof_live else 0.0
        allowance = base + settings.allowance_sd * sd
        if sd > 0:
            s = max(0.0, s + (d - allowance) / sd)
        out.append((s, allowance, sd))
    return out


def cusum(
    run: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    reference: float | None,
    reference_sd: float | None,
    reference_intervals: int,
    settings: SequentialConfig | None = None,
) -> SequentialResult:
    """The pooled verdict of ``run``: the judged intervals against one version since its last retrain, oldest
    first, the newest last, each ``{"ds", "drop"}`` (a performance result). ``reference`` is the version's
    per-interval test mean, ``reference_sd`` and ``reference_intervals`` its spread and count; without them
    (a pooled reference: the test set had too few whole intervals) nothing is judged."""
    st = settings or SequentialConfig()
    h = st.threshold
    drops = [_finite(e.get("drop")) for e in run]
    if reference is None or reference_sd is None or reference_intervals < 2 or not run:
        why = (
            "no labelled intervals yet"
            if not run
            else "the reference has no per-interval spread (a pooled test metric)"
        )
        return SequentialResult(
            False, NOT_JUDGED, None, h, None, None, None, len(run), None, None, None, f"pooled check not judged: {why}"
        )
    if any(d is None for d in drops):
        bad = [str(e.get("ds")) for e, d in zip(run, drops, strict=True) if d is None]
        raise ValueError(f"sequential run: intervals {bad} have no drop; pass only judged intervals (status ok/decay)")
    values = [float(d) for d in drops if d is not None]
    path = cusum_path(values, reference_sd=float(reference_sd), reference_intervals=reference_intervals, settings=st)
    stat, allowance, sd = path[-1]
    se = float(reference_sd) / math.sqrt(reference_intervals)
    since = str(run[0].get("ds")) if run[0].get("ds") is not None else None
    started = None
    for i in range(len(path) - 1, -1, -1):  # the first interval of the current excursion above 0
        if path[i][0] <= 0:
            break
        started = str(run[i].get("ds")) if run[i].get("ds") is not None else None
    mean_drop = sum(values) / len(values)
    alarm = stat >= h
    n = len(values)
    over = (
        f"the CUSUM of {metric} drops below the reference {reference:.4f} over {n} labelled interval(s) since "
        f"{since} is {stat:.2f}"
    )
    allow = (
        f"allowance {allowance:.4f} per interval = {st.min_drop:g} + {st.reference_z:g} x the reference's standard "
        f"error {se:.4f} + {st.allowance_sd:g} x the interval sd {sd:.4f}; mean drop {mean_drop:.4f}"
    )
    if alarm:
        reason = (
            f"pooled decay: {over} >= {h:g}{f' (rising since {started})' if started else ''}: a sustained "
            f"decline, beyond the reference's own uncertainty ({allow})"
        )
    else:
        reason = f"pooled ok: {over} < {h:g} ({allow})"
    return SequentialResult(
        alarm=alarm,
        status=ALARM if alarm else OK,
        statistic=stat,
        threshold=h,
        allowance=allowance,
        sd=sd,
        reference_se=se,
        intervals=n,
        since=since,
        started=started,
        mean_drop=mean_drop,
        reason=reason,
    )
