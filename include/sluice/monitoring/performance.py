"""Live performance: stored predictions joined with the labels that have arrived, against the champion's test.

Drift of the inputs says the world looks different; only labels say whether the model got worse. A concept
shift (the same inputs, a different outcome) leaves every feature unchanged and is invisible to drift
checks; it shows here once its labels arrive (``labels.delay_days`` plus ``monitoring.label_wait_days``).

- :func:`join_labels`: predictions (id, score) inner-joined with labels (id, label). Duplicate ids keep the
  last row (a re-scored prediction, a corrected label); rows without a label are dropped.
- :func:`live_metrics`: the configured metrics on the joined rows with ``compute_metrics`` (the same kernels
  as the gate), plus the row counts.
- :func:`decide_on_decay`: whether decays start a retraining: ``performance.persistence`` (k of the last n
  labelled intervals of the same version) and the cooldown, as :func:`~sluice.monitoring.drift.decide`.
- :func:`performance_check`: decay when the metric dropped by more than ``performance.max_drop`` (absolute,
  in the metric's units, oriented so that a drop is always "worse": an increase for log_loss or rmse)
  below the champion's test metric (its mean over the test set's intervals when it has them: what one
  interval scores), and only with at least ``performance.min_rows`` labelled rows; or when the pooled
  check over the version's labelled intervals so far (``earlier``, :mod:`sluice.monitoring.sequential`: a
  one-sided CUSUM) flags a sustained decline that no single interval shows.

A judged interval is a :class:`PerformanceResult` (:func:`judge_performance`, :func:`interval_performance`);
``to_dict`` is its JSON form (``performance.json`` in the lake, XCom) and ``from_dict`` reads it back.
:func:`performance_check` and :func:`check_interval` give the JSON form directly. Results carry the reason in
words.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sluice.config import ModelConfig, MonitoringConfig
from sluice.evaluation.metrics import check_metric, compute_metrics, higher_is_better
from sluice.evaluation.numbers import finite
from sluice.monitoring.drift import MIN_REFERENCE_INTERVALS
from sluice.monitoring.results import fields_from, json_form
from sluice.monitoring.sequential import cusum

SCORE = "score"  # the predictions zone's score column (sluice.serving.batch.SCORE)

__all__ = [
    "PerformanceResult",
    "check_interval",
    "interval_performance",
    "join_labels",
    "judge_performance",
    "live_metrics",
    "metric_for",
    "performance_check",
]

#: set once monitoring knows which interval was judged, by which version, on which labels
_IDENTITY = ("ds", "model_version", "label_ds", "live_metrics")


@dataclass(frozen=True)
class PerformanceResult:
    """Whether one interval's live metric decayed against the serving version's test metric.

    ``status`` is ``"decay"``, ``"ok"``, ``"too_few_rows"`` or ``"undefined"``; ``drop`` is positive when worse
    (oriented by ``higher_is_better``); ``reference_kind`` is ``"per_interval"`` (the mean of the test set's
    intervals, with ``noise_band``) or ``"pooled"``. ``ds``, ``model_version``, ``label_ds`` and
    ``live_metrics`` (a :func:`live_metrics` result) are None until monitoring sets them (:meth:`of_interval`).
    ``interval_decay`` is the per-interval verdict alone; ``sequential`` the pooled one (a
    :class:`~sluice.monitoring.sequential.SequentialResult` as a dict, None when the interval was not judged or
    the check is off); ``decay`` is either.
    """

    decay: bool
    status: str
    metric: str
    live: float | None
    reference: float | None
    drop: float | None
    max_drop: float
    rows: int
    min_rows: int
    higher_is_better: bool
    reference_kind: str
    noise_band: float | None
    reason: str
    interval_decay: bool | None = None
    sequential: dict[str, Any] | None = None
    ds: str | None = None
    model_version: str | None = None
    label_ds: str | None = None
    live_metrics: dict[str, Any] | None = None

    def of_interval(
        self, ds: str, model_version: str, label_ds: str, live: Mapping[str, Any] | None = None
    ) -> PerformanceResult:
        return dataclasses.replace(
            self,
            ds=ds,
            model_version=model_version,
            label_ds=label_ds,
            live_metrics=dict(live) if live is not None else self.live_metrics,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``performance.json``); the identity only once it is set."""
        return json_form(self, _IDENTITY)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceResult:
        """A :meth:`to_dict` form read back (reports written before ``reference_kind`` read as pooled, before
        the pooled check as a per-interval decay only); a missing field is a ValueError naming it."""
        optional = {*_IDENTITY, "reference_kind", "noise_band", "interval_decay", "sequential"}
        fields = fields_from(cls, data, "performance result", optional)
        fields["reference_kind"] = data.get("reference_kind", "pooled")
        if fields["interval_decay"] is None:
            fields["interval_decay"] = bool(data["decay"])
        return cls(**fields)


def metric_for(cfg: ModelConfig) -> str:
    """The live-performance metric of a model: ``monitoring.performance.metric``, else the gate's primary one."""
    return cfg.monitoring_metric


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    id_column: str,
    label_column: str,
    score_column: str = SCORE,
) -> pd.DataFrame:
    """``id, score, label`` for the predicted rows whose label has arrived (see the module doc)."""
    for frame, what, cols in (
        (predictions, "predictions", (id_column, score_column)),
        (labels, "labels", (id_column, label_column)),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{what} lack columns {missing} (they have {list(frame.columns)})")
    if score_column == label_column:
        raise ValueError(f"score and label columns must differ, both are {score_column!r}")
    p = predictions[[id_column, score_column]].drop_duplicates(id_column, keep="last")
    y = labels[[id_column, label_column]].dropna(subset=[label_column]).drop_duplicates(id_column, keep="last")
    return p.merge(y, on=id_column, how="inner", validate="one_to_one")


def live_metrics(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    task: str,
    metrics: Sequence[str] | str,
    *,
    id_column: str,
    label_column: str,
    score_column: str = SCORE,
    k_fraction: float = 0.1,
) -> dict[str, Any]:
    """``{"metrics": {name: value or None}, "rows", "predictions", "labels", "unlabelled", "positives"}``.

    ``rows`` is the number of labelled predictions the metrics were computed on; with none, every metric is
    None. ``positives`` (classification) is the number of label-1 rows among them.
    """
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    for name in names:
        check_metric(name, task)
    joined = join_labels(predictions, labels, id_column=id_column, label_column=label_column, score_column=score_column)
    n_pred = int(predictions[id_column].nunique())
    out: dict[str, Any] = {
        "metrics": dict.fromkeys(names),
        "rows": int(len(joined)),
        "predictions": n_pred,
        "labels": int(labels[id_column].nunique()),
        "unlabelled": n_pred - int(len(joined)),
        "positives": None,
    }
    if len(joined):
        y = joined[label_column].to_numpy()
        values = compute_metrics(task, y, joined[score_column].to_numpy(dtype="float64"), names, k_fraction)
        out["metrics"] = {k: finite(v) for k, v in values.items()}
        if task == "classification":
            out["positives"] = int((y == 1).sum())
    return out


def performance_check(
    live: Mapping[str, Any],
    reference_metrics: Mapping[str, Any],
    settings: MonitoringConfig | None = None,
    *,
    metric: str | None = None,
    rows: int | None = None,
    per_interval: Mapping[str, Any] | None = None,
    earlier: Sequence[Mapping[str, Any]] = (),
    ds: str | None = None,
) -> dict[str, Any]:
    """The JSON form of :func:`judge_performance` (same arguments)."""
    return judge_performance(
        live, reference_metrics, settings, metric=metric, rows=rows, per_interval=per_interval, earlier=earlier, ds=ds
    ).to_dict()


def judge_performance(
    live: Mapping[str, Any],
    reference_metrics: Mapping[str, Any],
    settings: MonitoringConfig | None = None,
    *,
    metric: str | None = None,
    rows: int | None = None,
    per_interval: Mapping[str, Any] | None = None,
    earlier: Sequence[Mapping[str, Any]] = (),
    ds: str | None = None,
) -> PerformanceResult:
    """Whether the live metric decayed against the champion's test metric (``reference_metrics``).

    ``per_interval`` (the champion's ``interval_metric``: the metric on each scheduled interval of its test
    rows, ``{"mean", "std", "intervals"}``) is the reference when it covers at least
    ``MIN_REFERENCE_INTERVALS`` intervals: one monitored interval is compared with what one test interval
    scored, not with the pooled test set (on rows that share a day's conditions, the pooled metric also
    ranks the days against each other and sits above a typical day's). A drop must then also be beyond
    ``interval_z_threshold`` sd of the test intervals' metric: large enough *and* more than one interval's
    noise, as for drift.

    ``live`` is a :func:`live_metrics` result (or a plain ``{metric: value}`` mapping with ``rows=`` given).
    The metric is ``metric``, else ``settings.performance.metric``, else the only metric in ``live``; pass
    ``metric_for(cfg)`` to follow the config's default (the gate's primary metric). See
    :class:`PerformanceResult` for the result.

    ``earlier``: the intervals judged against the same version since its last retrain, oldest first, each with
    its ``ds`` and ``drop`` (:func:`sluice.monitoring.policy.sequential_run`); with this interval (``ds``) they
    are the run of the pooled check (``performance.sequential``), which only a per-interval reference supports.
    """
    st = settings or MonitoringConfig()
    values = live["metrics"] if isinstance(live.get("metrics"), Mapping) else live
    if rows is None:
        if "rows" not in live:
            raise ValueError("live has no 'rows': pass a live_metrics() result or rows=")
        rows = int(live["rows"])
    name = metric or st.performance.metric
    if name is None:
        if len(values) != 1:
            raise ValueError(
                f"which metric? live has {sorted(values)}; pass metric= (metric_for(cfg): the gate's primary metric)"
            )
        name = next(iter(values))
    check_metric(name)
    higher = higher_is_better(name)
    cur = finite(values.get(name))
    ref = finite(reference_metrics.get(name))
    against, kind, band = "champion's test", "pooled", None
    k = int(per_interval.get("intervals") or 0) if per_interval else 0
    if per_interval and k >= MIN_REFERENCE_INTERVALS and finite(per_interval.get("mean")) is not None:
        ref, kind = finite(per_interval["mean"]), "per_interval"
        spread = finite(per_interval.get("std"))
        # the band a new interval falls in around the mean of k intervals: a prediction interval, as for drift
        band = st.interval_z_threshold * spread * math.sqrt(1 + 1 / k) if spread else None
        against = f"champion's mean over {k} test intervals" + (f", sd {spread:.4f}" if spread else "")
    max_drop, min_rows = st.performance.max_drop, st.performance.min_rows
    drop = None if cur is None or ref is None else (ref - cur if higher else cur - ref)
    decay, status = False, "ok"
    worse = "dropped" if higher else "rose"
    if rows < min_rows:
        status = "too_few_rows"
        reason = f"not judged: {rows} labelled rows, fewer than the {min_rows} needed"
    elif drop is None:
        status = "undefined"
        which = "live" if cur is None else "reference"
        reason = f"not judged: the {which} {name} is undefined (e.g. roc_auc with a single class)"
    elif drop > max_drop + 1e-12 and band and drop < band:
        reason = (
            f"ok: {name} {cur:.4f} vs {ref:.4f} ({against}) on {rows} labelled rows: a drop of {drop:.4f} is "
            f"over {max_drop:g} but within {st.interval_z_threshold:g} sd of what single test intervals score "
            f"({band:.4f}): one interval's noise, not a worse model"
        )
    elif drop > max_drop + 1e-12:  # 0.80 - 0.75 is 0.05000000000000004: a drop of exactly max_drop is allowed
        decay, status = True, "decay"
        reason = (
            f"decay: {name} {worse} from {ref:.4f} ({against}) to {cur:.4f} on {rows} labelled rows, "
            f"a change of {drop:.4f} > {max_drop:g}"
        )
    else:
        reason = (
            f"ok: {name} {cur:.4f} vs {ref:.4f} ({against}) on {rows} labelled rows, "
            f"{'a drop' if drop > 0 else 'no drop'} of {max(drop, 0.0):.4f} <= {max_drop:g}"
        )
    interval_decay, seq = decay, None
    sq = st.performance.sequential
    if sq.enabled and status in ("ok", "decay"):
        sd = finite(per_interval.get("std")) if kind == "per_interval" and per_interval else None
        run = [*earlier, {"ds": ds, "drop": drop}]
        result = cusum(
            run,
            metric=name,
            reference=ref if sd is not None else None,
            reference_sd=sd,
            reference_intervals=k,
            settings=sq,
        )
        seq = result.to_dict()
        if result.alarm:
            decay, status = True, "decay"
            reason = (
                f"{reason}; {result.reason}" if interval_decay else f"{result.reason} (this interval alone: {reason})"
            )
        elif result.statistic is not None:
            stat, h, n = result.statistic, result.threshold, result.intervals
            reason = f"{reason}; pooled CUSUM {stat:.2f} of {h:g} over {n} interval(s)"
    return PerformanceResult(
        decay=decay,
        status=status,
        metric=name,
        live=cur,
        reference=ref,
        drop=drop,
        max_drop=max_drop,
        rows=int(rows),
        min_rows=min_rows,
        higher_is_better=higher,
        reference_kind=kind,
        noise_band=band,
        reason=reason,
        interval_decay=interval_decay,
        sequential=seq,
    )


def check_interval(
    cfg: ModelConfig,
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    test_metrics: Mapping[str, Any],
    interval_metrics: Mapping[str, Mapping[str, Any]],
    earlier: Sequence[Mapping[str, Any]] = (),
    ds: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(live_metrics, performance_check)`` of one interval: :func:`interval_performance` as JSON."""
    result = interval_performance(cfg, predictions, labels, test_metrics, interval_metrics, earlier, ds)
    return dict(result.live_metrics or {}), dataclasses.replace(result, live_metrics=None).to_dict()


def interval_performance(
    cfg: ModelConfig,
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    test_metrics: Mapping[str, Any],
    interval_metrics: Mapping[str, Mapping[str, Any]],
    earlier: Sequence[Mapping[str, Any]] = (),
    ds: str | None = None,
) -> PerformanceResult:
    """One interval for model ``cfg``: its metric (:func:`metric_for`) on the predictions whose labels arrived
    (the result's ``live_metrics``), against the serving version's test metric (``test_metrics``) and its
    per-interval test metric (``interval_metrics``: metric -> ``{"metric", "mean", "std", "intervals"}``);
    ``earlier`` and ``ds`` feed the pooled check (:func:`judge_performance`)."""
    metric = metric_for(cfg)
    live = live_metrics(
        predictions, labels, cfg.task, [metric], id_column=cfg.labels.join_key, label_column=cfg.labels.column
    )
    check = judge_performance(
        live,
        test_metrics,
        cfg.monitoring,
        metric=metric,
        per_interval=interval_metrics.get(metric),
        earlier=earlier,
        ds=ds,
    )
    return dataclasses.replace(check, live_metrics=live)
