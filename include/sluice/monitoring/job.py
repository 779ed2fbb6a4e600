"""Monitoring as plain Python over the lake and the registry: drift of an interval against the reference
profile of the very model version that scored it, live performance once its labels arrive, and the
feedback decision (retrain or not) with its evidence. The Airflow operators and sensors are thin wrappers.

The steps return typed results (:class:`~sluice.monitoring.drift.DriftResult`,
:class:`~sluice.monitoring.performance.PerformanceResult`, :class:`~sluice.monitoring.policy.RetrainDecision`)
and :mod:`sluice.monitoring.record` writes and reads the reports: ``reports/<model>/drift/ds=D/{drift.json,
drift.html}``, ``reports/<model>/performance/ds=D/performance.json`` and, when a retrain is started,
``reports/<model>/retrain/ds=D/retrain.json`` -- which is also the cooldown's memory, so a rerun of the same
interval never starts a second retraining. What the functions here return is the JSON the operators pass on
(XCom): the verdict's summary with the reports' URIs.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.config import ModelConfig
from sluice.lake import Lake, ds_str
from sluice.monitoring import record
from sluice.monitoring.record import DRIFT, PERFORMANCE, RETRAIN
from sluice.training.record import read_reference

if TYPE_CHECKING:
    import pandas as pd

    from sluice.monitoring.drift import DriftResult

log = logging.getLogger(__name__)

__all__ = [
    "DRIFT",
    "PERFORMANCE",
    "RETRAIN",
    "MonitoringError",
    "check_drift",
    "check_performance",
    "decide_on_performance",
    "decide_retrain",
    "interval_chunks",
    "pooled_run",
    "record_retrain",
    "serving_of",
]


class MonitoringError(RuntimeError):
    """Monitoring cannot judge this interval; the message says what is missing and what to run."""


def serving_of(cfg: ModelConfig, lake: Lake, ds: dt.date | str) -> dict[str, Any]:
    """Which version scored the interval (from the predictions manifest), and the manifest itself."""
    man = lake.manifest("predictions", cfg.name, ds)
    if man is None:
        raise MonitoringError(
            f"no predictions for {cfg.name} ds={ds_str(ds)} in {lake.root}: run {cfg.dag_id('batch_inference')} first"
        )
    return {"model_version": str(man["model_version"]), "model_run_id": man["model_run_id"], "manifest": man}


def _parquet_source(lake: Lake, key: str) -> Any:
    path = lake.storage.local_path(key)
    return path if path else io.BytesIO(lake.read(key))


def interval_chunks(
    cfg: ModelConfig, lake: Lake, ds: dt.date | str, columns: list[str], batch_rows: int = 65_536
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """(feature chunk, scores) pairs over the interval: features streamed in row batches, scores sliced from the
    predictions partition (written in the features' row order; the ids are checked chunk by chunk)."""
    import pyarrow.parquet as pq

    fs, id_col = cfg.features.feature_set, cfg.dataset.id_column
    fman, pman = lake.manifest("features", fs, ds), lake.manifest("predictions", cfg.name, ds)
    if fman is None:
        raise MonitoringError(f"no features for {fs} ds={ds_str(ds)}: run {cfg.dag_id('features')} first")
    if pman is None:
        raise MonitoringError(f"no predictions for {cfg.name} ds={ds_str(ds)}")
    pkey = f"{lake.partition_key('predictions', cfg.name, ds)}/{pman['files'][0]['name']}"
    preds = pq.read_table(_parquet_source(lake, pkey), columns=[id_col, "score"])
    pred_ids, scores = preds[id_col].to_numpy(), preds["score"].to_numpy()
    offset = 0
    for entry in fman["files"]:
        key = f"{lake.partition_key('features', fs, ds)}/{entry['name']}"
        pf = pq.ParquetFile(_parquet_source(lake, key), pre_buffer=False)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=[id_col, *columns]):
            frame = batch.to_pandas()
            n = len(frame)
            if not np.array_equal(frame[id_col].to_numpy(), pred_ids[offset : offset + n]):
                raise MonitoringError(
                    f"predictions of ds={ds_str(ds)} are not in the order of its features (rows {offset}.."
                    f"{offset + n}): rescore the day with {cfg.dag_id('batch_inference')}"
                )
            yield frame, scores[offset : offset + n]
            offset += n
    if offset != len(scores):
        raise MonitoringError(f"ds={ds_str(ds)}: {offset} feature rows but {len(scores)} predictions; rescore the day")


def check_drift(
    cfg: ModelConfig, lake: Lake, registry: Any, ds: dt.date | str, *, links: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Drift of interval ``ds`` against the profile of the version that scored it; reports written either way.
    Returns the summary the DAG passes on (:func:`drift_summary`)."""
    from sluice.monitoring.drift import DriftAccumulator, checked_features, feature_rows
    from sluice.monitoring.report import render_drift_html

    serving = serving_of(cfg, lake, ds)
    ref = read_reference(registry, serving["model_run_id"])
    acc = DriftAccumulator(ref.profile, *checked_features(cfg))
    for frame, scores in interval_chunks(cfg, lake, ds, acc.columns):
        acc.update(frame, scores)
    result = acc.verdict(cfg.monitoring, ref.importances).of_interval(ds_str(ds), cfg.name, serving["model_version"])
    view = result.to_dict()  # the page shows what drift.json holds
    charts = {
        name: (s["distribution"]["labels"], s["distribution"]["reference"], s["distribution"]["current"] or [])
        for name, s in [*result.features.items(), ("prediction", result.prediction or {})]
        if s.get("distribution") and s["distribution"].get("current") is not None
    }
    title = f"{cfg.name} drift, ds={ds_str(ds)}, against the reference of v{serving['model_version']}"
    page = render_drift_html(title, view, feature_rows(view), charts, links)
    report_json, report_html = record.write_drift(lake, cfg.name, result, page)
    record.log_drift(registry, serving["model_run_id"], result, page)
    log.info("%s ds=%s v%s: %s", cfg.name, ds_str(ds), serving["model_version"], result.reason)
    return drift_summary(result, report_json, report_html)


def drift_summary(result: DriftResult, report_json: str, report_html: str) -> dict[str, Any]:
    """What the drift check passes on (XCom ``drift``, the retrain mail): the verdict without the statistics, and
    where its reports are."""
    return {
        "ds": result.ds,
        "drift": result.drift,
        "reason": result.reason,
        "reasons": result.reasons,
        "drifted_features": result.drifted_features,
        "model_version": result.model_version,
        "rows": result.rows,
        "report_json": report_json,
        "report_html": report_html,
    }


def decide_retrain(cfg: ModelConfig, lake: Lake, ds: dt.date | str, drift: Mapping[str, Any]) -> dict[str, Any]:
    """Persistence (k of the last n intervals judged against the same version), the cooldown around the retrains
    on either side of the interval, once per interval:
    :func:`sluice.monitoring.policy.retrain_on` over the drift reports in the lake. ``drift`` is the interval's
    :func:`drift_summary`."""
    from sluice.monitoring.policy import retrain_on

    day = dt.date.fromisoformat(ds_str(ds))
    history = [
        {"ds": r.ds, "drift": r.drift, "model_version": r.model_version}
        for r in record.drift_history(lake, cfg.name, day)
    ]
    history.append({**drift, "ds": day.isoformat()})
    last, later = record.retrains_around(lake, cfg.name, day)
    decision = retrain_on(
        "drift",
        history,
        cfg.monitoring,
        version=drift["model_version"],
        today=day,
        last_retrain=last,
        next_retrain=later,
        prior=_prior(lake, cfg, day),
    )
    return decision.to_dict()


def decide_on_performance(cfg: ModelConfig, lake: Lake, ds: dt.date | str, perf: Mapping[str, Any]) -> dict[str, Any]:
    """Decay starts a retraining when it persists (``performance.persistence``), under the same cooldown, once per
    interval: :func:`sluice.monitoring.policy.retrain_on` over the performance reports in the lake. ``perf`` is
    the interval's :func:`check_performance` result."""
    from sluice.monitoring.policy import retrain_on

    day = dt.date.fromisoformat(ds_str(ds))
    history = [
        {
            "ds": r.ds,
            "decay": r.decay,
            "interval_decay": r.interval_decay,
            "status": r.status,
            "model_version": r.model_version,
        }
        for r in record.performance_history(lake, cfg.name, day)
    ]
    history.append({**perf, "ds": day.isoformat(), "decay": bool(perf.get("decay"))})
    last, later = record.retrains_around(lake, cfg.name, day)
    decision = retrain_on(
        "decay",
        history,
        cfg.monitoring,
        version=perf.get("model_version"),
        today=day,
        last_retrain=last,
        next_retrain=later,
        prior=_prior(lake, cfg, day),
    )
    return decision.to_dict()


def _prior(lake: Lake, cfg: ModelConfig, day: dt.date) -> dict[str, Any] | None:
    """The retrain record of interval ``day`` as the policy quotes it, if the interval started one."""
    prior = record.read_retrain(lake, cfg.name, day)
    return None if prior is None else prior.to_dict()


def check_performance(cfg: ModelConfig, lake: Lake, registry: Any, ds: dt.date | str) -> dict[str, Any]:
    """Live performance of interval ``ds`` once its labels arrived, against the serving version's test metric,
    alone and pooled with the earlier intervals the same version served since the last retrain (their
    ``performance.json``): ``performance.json`` written; its JSON form plus ``reasons`` (the per-interval and the
    pooled verdict, for the mail) and ``report_json``, its URI."""
    import pandas as pd

    from sluice.monitoring.performance import interval_performance

    serving = serving_of(cfg, lake, ds)
    ref = read_reference(registry, serving["model_run_id"])
    preds = pd.concat([pd.read_parquet(io.BytesIO(b)) for b in lake.read_published("predictions", cfg.name, ds)])
    label_ds = dt.date.fromisoformat(ds_str(ds)) + dt.timedelta(days=cfg.labels.delay_days)
    files = lake.landing_files("labels", cfg.labels.dataset, label_ds)
    if not files:
        raise MonitoringError(f"no labels for ds={ds_str(ds)} in labels/{cfg.labels.dataset}/ds={label_ds}")
    labels = pd.concat([pd.read_parquet(io.BytesIO(b)) for b in files.values()])
    earlier = pooled_run(cfg, lake, ds, serving["model_version"])
    result = interval_performance(
        cfg, preds, labels, ref.test_metrics, ref.interval_metrics, earlier, ds_str(ds)
    ).of_interval(ds_str(ds), serving["model_version"], label_ds.isoformat())
    uri = record.write_performance(lake, cfg.name, result)
    log.info("%s ds=%s v%s: %s", cfg.name, ds_str(ds), serving["model_version"], result.reason)
    reasons = [result.reason]
    if result.sequential and result.sequential["reason"] not in result.reason:
        reasons.append(str(result.sequential["reason"]))
    return {**result.to_dict(), "reasons": reasons, "report_json": uri}


def pooled_run(cfg: ModelConfig, lake: Lake, ds: dt.date | str, version: str) -> list[dict[str, Any]]:
    """The earlier intervals of the pooled check of interval ``ds``: the performance reports before it judged
    against ``version`` since the last retrain (:func:`sluice.monitoring.policy.sequential_run`)."""
    from sluice.monitoring.policy import sequential_run

    day = dt.date.fromisoformat(ds_str(ds))
    history = [r.to_dict() for r in record.performance_history(lake, cfg.name, day)]
    return sequential_run(history, version, record.last_retrain(lake, cfg.name, day))


def record_retrain(
    cfg: ModelConfig, lake: Lake, ds: dt.date | str, *, source: str, reason: str, report: str, run_id: str
) -> dict[str, Any]:
    """Remember that interval ``ds`` started a retraining: the cooldown's memory and the idempotency key."""
    rec = record.RetrainRecord(ds=ds_str(ds), source=source, reason=reason, report=report, training_run_id=run_id)
    record.write_retrain(lake, cfg.name, rec)
    return rec.to_dict()
