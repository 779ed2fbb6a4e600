"""A monitoring replay (backtest): how many drift alarms, retrainings and gate decisions a model's monitoring
config would have raised over a stretch of history, before anyone switches it on.

Everything runs in this process over a lake, with no Airflow and no MLflow, and every step is the platform's
own code:

1. Land (demo sources: :func:`sluice.datagen.writer.generate_into_lake`), validate
   (:func:`sluice.features.job.check_landing`, so a day the platform would quarantine is missing here too)
   and publish (:func:`sluice.features.job.publish_features`) every day of the range that the lake does not
   already hold.
2. The first champion is trained on the first ``train_days`` days with the training DAG's own steps
   (:mod:`sluice.training.steps`): ``split_snapshot`` (labels that have arrived by the window's end, the
   time split), the training-set suite, ``fit_candidate`` (fit, validation metrics, importances, the
   reference profile, size and latency), ``evaluate_candidate`` and the gate (``judge``). Only the
   recording in MLflow (:mod:`sluice.training.record`) is left out: the results stay in memory.
3. Then day by day, from the day after the first training window: the day's features are scored by the
   champion, one record batch at a time, into a :class:`~sluice.monitoring.drift.DriftAccumulator` on the
   champion's reference profile, judged with the model's ``monitoring`` settings and the champion's
   importances (as ``sluice.monitoring.job.check_drift``). Once the labels of an earlier day arrive
   (``labels.delay_days`` later) its live metric is checked against the test metric of the version that
   scored it (``performance_check``, as ``check_performance``), alone and pooled with the earlier intervals
   of that version since the last retrain (``performance.sequential``). Decay is decided before drift (its interval
   is the older one), each by the monitoring DAG's retrain policy (:mod:`sluice.monitoring.policy`:
   ``retrain_on``): the intervals judged against the serving version,
   persistence ``k`` of ``n``, ``cooldown_days``, at most one retraining per interval.
4. A retraining trains on the window of ``training.window_days`` ending that day, exactly as the training
   DAG triggered by monitoring would; the candidate and the champion are scored on the candidate's test rows
   and the gate decides. The champion changes only on PASS, from the next day on (the platform would deploy
   the challenger first).

Memory is that of one day of features (plus the ids and scores of the days whose labels are still due, and
one training window while retraining); the result holds one small row per day.

:func:`replay` returns a JSON-safe dict: ``days`` (per day: rows, serving version, drift verdict and
per-feature rows, decisions, live performance, retraining), ``alarms`` (each drifted day with its drifted
features, by importance, and their reasons), ``retrains`` (reason, window, gate decision with its failing
rules and metrics), ``prepared`` (days published, quarantined with the reason, missing) and a ``summary``.
:func:`format_summary` renders the summary.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import io
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sluice.config import ModelConfig, MonitoringConfig
from sluice.lake import Lake, open_lake
from sluice.monitoring.policy import RetrainDecision, retrain_on, sequential_run
from sluice.training.steps import Evaluation, Fitted

log = logging.getLogger(__name__)

__all__ = ["ReplayError", "format_summary", "replay", "with_monitoring"]

#: Drifted features named per alarm in the printed summary (the JSON has them all).
TOP_FEATURES = 3
BATCH_ROWS = 65_536


class ReplayError(RuntimeError):
    """The replay cannot run; the message says what is missing."""


# ---- settings ------------------------------------------------------------------------------------------


def with_monitoring(cfg: ModelConfig, overrides: Mapping[str, Any]) -> ModelConfig:
    """``cfg`` with some monitoring settings replaced, validated, e.g. ``{"persistence.k": 3, "alpha": 0.001}``.

    Dotted keys reach nested settings (``persistence.n``, ``performance.max_drop``). Unknown keys and invalid
    values are a ValueError naming them. For trying a config on history before committing it.
    """
    data = cfg.monitoring.model_dump()
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node = data
        for part in path:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"monitoring has no section {part!r} (in {key!r}); settings: {sorted(data)}")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"monitoring has no setting {key!r}; settings here: {sorted(node)}")
        node[leaf] = value
    try:
        monitoring = MonitoringConfig.model_validate(data)
    except Exception as exc:  # pydantic's ValidationError names the field and the rule
        raise ValueError(f"invalid monitoring override {dict(overrides)}: {exc}") from None
    return cfg.model_copy(update={"monitoring": monitoring})


# ---- the lake ------------------------------------------------------------------------------------------


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def prepare_lake(
    cfg: ModelConfig,
    lake: Lake,
    start: dt.date,
    end: dt.date,
    *,
    scenario_path: str | Path | None = None,
    seed: int = 7,
    rows_per_day: int | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """Published features for every day of ``start..end`` that can have them; ``{"landed", "published",
    "quarantined": {ds: reason}, "missing": [ds]}``.

    Days already published are kept. A demo source of sluice.datagen lands the days that have no landing
    partition, and the label partitions the lake lacks (generated aside and copied: partitions already in the
    lake are never overwritten); other datasets must already be landed. Each landing partition is checked
    with the model's GX suite first (``validate``), and a failing day is quarantined, not published.
    """
    from sluice.datagen.writer import SOURCES
    from sluice.features.job import check_landing, publish_features

    days = _days(start, end)
    fs, name = cfg.features.feature_set, cfg.dataset.name
    published = set(lake.partitions("features", fs))
    landed = {d for d in lake.partitions("landing", name, published_only=False) if start <= d <= end}
    out: dict[str, Any] = {"landed": 0, "published": 0, "quarantined": {}, "missing": []}
    need = [d for d in days if d not in published and d not in landed]
    if need and name in SOURCES:
        out["landed"] = _land_missing(cfg, lake, start, end, need, scenario_path, seed, rows_per_day)
        landed |= set(need)
    elif need and len(need) == len(days):
        raise ReplayError(
            f"no landing partitions of {name!r} in {start}..{end} under {lake.root}, and no demo source to "
            f"generate them ({', '.join(SOURCES)}): land the history first, or pass the lake that holds it"
        )
    for ds in days:
        if ds in published:
            continue
        if ds not in landed:
            out["missing"].append(ds.isoformat())
            continue
        if validate:
            check = check_landing(cfg, lake, ds)
            if not check.success:
                out["quarantined"][ds.isoformat()] = check.reason
                continue
        publish_features(cfg, lake, ds)
        out["published"] += 1
    return out


def _land_missing(
    cfg: ModelConfig,
    lake: Lake,
    start: dt.date,
    end: dt.date,
    need: list[dt.date],
    scenario_path: str | Path | None,
    seed: int,
    rows_per_day: int | None,
) -> int:
    """Generate ``start..end`` into a scratch lake and copy in the landing partitions of ``need``, the label
    partitions and reference tables ``lake`` lacks. Returns the number of days landed."""
    from sluice.datagen.writer import generate_into_lake

    kwargs: dict[str, Any] = {"scenario_path": scenario_path, "seed": seed}
    if rows_per_day is not None:
        kwargs["rows_per_day"] = rows_per_day
    name, labels = cfg.dataset.name, cfg.labels.dataset
    with tempfile.TemporaryDirectory(prefix="sluice-replay-land-") as tmp:
        side = open_lake(tmp)
        generate_into_lake(cfg, side, start, len(_days(start, end)), **kwargs)
        for ds in need:
            lake.put_landing("landing", name, ds, side.landing_files("landing", name, ds))
        have = set(lake.partitions("labels", labels, published_only=False))
        for ds in side.partitions("labels", labels, published_only=False):
            if ds not in have:
                lake.put_landing("labels", labels, ds, side.landing_files("labels", labels, ds))
        for key in side.list("reference"):
            if not lake.storage.exists(key):
                prefix, _, fname = key.rpartition("/")
                lake.put_files(prefix, {fname: side.read(key)})
    return len(need)


def _feature_batches(cfg: ModelConfig, lake: Lake, ds: dt.date, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The day's published features (checked against the manifest), ``columns`` only, in record batches."""
    import pyarrow.parquet as pq

    man = lake.manifest("features", cfg.features.feature_set, ds)
    if man is None:
        raise ReplayError(f"features/{cfg.features.feature_set}/ds={ds}: not published")
    for entry, data in zip(man["files"], lake.read_published("features", cfg.features.feature_set, ds), strict=True):
        if not entry["name"].endswith(".parquet"):
            raise ReplayError(f"features/{cfg.features.feature_set}/ds={ds}/{entry['name']}: expected parquet")
        pf = pq.ParquetFile(io.BytesIO(data), pre_buffer=False)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield batch.to_pandas()


# ---- training, evaluation, gate: the training DAG's steps, kept in memory ---------------------------------


class _Model:
    """A fitted version and what monitoring needs of it (what the registry holds for a real one)."""

    def __init__(self, version: int, fitted: Fitted, evaluation: Evaluation, window: list[str]) -> None:
        self.version = version
        self.model = fitted.model
        self.profile = fitted.profile
        self.importances = fitted.importances
        self.test_metrics = dict(evaluation.candidate)
        self.interval_metric = evaluation.candidate_intervals
        self.window = window


def _training_round(
    cfg: ModelConfig, lake: Lake, end_ds: dt.date, window_days: int, champion: _Model | None, version: int
) -> tuple[_Model | None, dict[str, Any]]:
    """The training DAG's steps (:mod:`sluice.training.steps`): split, suite, fit, evaluate against the
    champion, gate. (the new version on PASS else None, the record)."""
    from sluice.training.steps import SKIPPED, evaluate_candidate, fit_candidate, judge, split_snapshot
    from sluice.training.suite import check_training_set

    t0 = time.monotonic()
    try:
        split = split_snapshot(cfg, lake, end_ds, window_days)
    except ValueError as exc:  # the snapshot cannot be built (no labels yet, too few rows to split)
        record = {"end_ds": end_ds.isoformat(), "window_days": window_days, "error": str(exc), "decision": "ERROR"}
        return None, {**record, "seconds": round(time.monotonic() - t0, 2)}
    manifest = split.snapshot.manifest
    suite = check_training_set(split.snapshot.frame, cfg)
    split = dataclasses.replace(
        split, snapshot=dataclasses.replace(split.snapshot, frame=split.snapshot.frame.iloc[:0])
    )
    fitted = fit_candidate(cfg, split) if suite.success else None
    if fitted is None:
        evaluation = SKIPPED
    else:
        ref = {"version": str(champion.version), "run_id": None} if champion is not None else None
        evaluation = evaluate_candidate(cfg, split.test, fitted.model, champion.model if champion else None, ref)
    rows = split.rows
    del split
    decision = judge(
        cfg,
        evaluation,
        suite_passed=bool(suite.success),
        model_size_mb=fitted.model_size_mb if fitted else None,
        latency_ms=fitted.latency_ms if fitted else None,
    )
    gate = decision.to_dict()
    ev = evaluation.to_dict()
    record = {
        "end_ds": end_ds.isoformat(),
        "window_days": window_days,
        "window": manifest["window"],
        "rows": rows,
        "missing_days": manifest["missing_days"],
        "suite_passed": bool(suite.success),
        "suite_failures": None if suite.success else suite.failures,
        "decision": gate["decision"],
        "failing_rules": [f"{r['rule']}: {r['detail']}" for r in gate["rules"] if r["verdict"] == "FAIL"],
        "inconclusive_rules": [f"{r['rule']}: {r['detail']}" for r in gate["rules"] if r["verdict"] == "INCONCLUSIVE"],
        "candidate_metrics": ev.get("candidate"),
        "champion_metrics": ev.get("champion_metrics"),
        "bootstrap": ev.get("bootstrap"),
        "champion_version": champion.version if champion else None,
        "gate": gate,
        "seconds": None,
    }
    new = None
    if decision.passed and fitted is not None:
        new = _Model(version, fitted, evaluation, manifest["window"])
        record["importances"] = new.importances
    record["seconds"] = round(time.monotonic() - t0, 2)
    return new, record


# ---- one interval --------------------------------------------------------------------------------------


def _score_and_drift(
    cfg: ModelConfig, lake: Lake, ds: dt.date, champ: _Model
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The champion's scores of day ``ds`` and the drift verdict, as ``check_drift`` judges it."""
    from sluice.monitoring.drift import DriftAccumulator, checked_features
    from sluice.training.model import feature_columns, predict_scores

    acc = DriftAccumulator(champ.profile, *checked_features(cfg))
    key = cfg.labels.join_key
    columns = list(dict.fromkeys([key, *feature_columns(cfg), *acc.columns]))
    ids, scores = [], []
    for frame in _feature_batches(cfg, lake, ds, columns):
        s = predict_scores(champ.model, frame, cfg.task)
        acc.update(frame[acc.columns], s)
        ids.append(frame[key].to_numpy())
        scores.append(s)
    result = acc.result(cfg.monitoring, champ.importances)
    return result, np.concatenate(ids) if ids else np.array([]), np.concatenate(scores) if scores else np.array([])


def _live(
    cfg: ModelConfig,
    lake: Lake,
    ds: dt.date,
    label_ds: dt.date,
    scored: tuple[_Model, np.ndarray, np.ndarray],
    earlier: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """``check_performance`` of interval ``ds`` once its labels landed at ``label_ds``; None before that.
    ``earlier``: the pooled check's run so far (:func:`sluice.monitoring.policy.sequential_run`)."""
    from sluice.monitoring.performance import check_interval

    if not lake.landing_ready("labels", cfg.labels.dataset, label_ds):
        return None
    files = lake.landing_files("labels", cfg.labels.dataset, label_ds)
    if not files:
        return None
    labels = pd.concat([pd.read_parquet(io.BytesIO(b)) for b in files.values()], ignore_index=True)
    model, ids, scores = scored
    key = cfg.labels.join_key
    preds = pd.DataFrame({key: ids, "score": scores})
    if labels[key].dtype != preds[key].dtype:
        labels[key] = labels[key].astype(preds[key].dtype)
    per_interval = {model.interval_metric["metric"]: model.interval_metric} if model.interval_metric else {}
    _, check = check_interval(cfg, preds, labels, model.test_metrics, per_interval, earlier or [], ds.isoformat())
    return {"ds": ds.isoformat(), "label_ds": label_ds.isoformat(), "model_version": model.version, **check}


def _alarm(ds: dt.date, version: int, result: Mapping[str, Any]) -> dict[str, Any]:
    stats = result["features"]
    drifted = sorted(result["drifted_features"], key=lambda c: -(stats[c].get("weight") or 0.0))
    features = [
        {
            "feature": c,
            "weight": stats[c].get("weight"),
            "criteria": stats[c].get("criteria"),
            "psi": stats[c].get("psi"),
            "effect": stats[c].get("effect"),
            "reason": stats[c]["reason"],
        }
        for c in drifted
    ]
    if result.get("by_prediction"):
        pred = result["prediction"]
        features.append(
            {
                "feature": "prediction",
                "weight": None,
                "criteria": pred.get("criteria"),
                "psi": pred.get("psi"),
                "effect": pred.get("effect"),
                "reason": pred["reason"],
            }
        )
    return {"ds": ds.isoformat(), "model_version": version, "reason": result["reason"], "features": features}


def _why(result: Mapping[str, Any]) -> str:
    """Which rule raised the alarm, briefly: the drifted importance, unseen values, the scores."""
    parts = []
    if result["by_features"]:
        parts.append(f"drifted features carry {result['drifted_weight']:.0%} of the importance")
    if result["by_unseen"]:
        parts.append(f"unseen values in {', '.join(result['by_unseen'])}")
    if result["by_prediction"]:
        parts.append("the scores drifted")
    return "; ".join(parts)


def _day_row(ds: dt.date, version: int, result: Mapping[str, Any]) -> dict[str, Any]:
    from sluice.monitoring.drift import feature_rows

    return {
        "ds": ds.isoformat(),
        "rows": result["rows"],
        "model_version": version,
        "drift": result["drift"],
        "drift_reason": result["reason"],
        "drifted_features": result["drifted_features"],
        "drifted_weight": result["drifted_weight"],
        "feature_rows": feature_rows(result),
        "decision": None,
        "performance": None,
        "decay_decision": None,
        "retrain": None,
    }


# ---- the walk ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _lake_for(lake: Lake | str | Path | None) -> Iterator[Lake]:
    if isinstance(lake, Lake):
        yield lake
    elif lake is not None:
        Path(lake).mkdir(parents=True, exist_ok=True)
        yield open_lake(str(lake))
    else:
        with tempfile.TemporaryDirectory(prefix="sluice-replay-") as tmp:
            yield open_lake(tmp)


def replay(
    cfg: ModelConfig,
    start: dt.date,
    end: dt.date,
    *,
    train_days: int = 28,
    lake: Lake | str | Path | None = None,
    scenario_path: str | Path | None = None,
    seed: int = 7,
    rows_per_day: int | None = None,
    validate: bool = True,
    threads: int | None = 1,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``cfg``'s monitoring over ``start..end`` (see the module doc); the JSON-safe result.

    ``lake``: a Lake or a root path to land, publish and read (days already published there are used as
    they are), or None for a temporary directory removed afterwards. ``scenario_path``, ``seed`` and
    ``rows_per_day`` go to the demo generator (loans). ``echo`` receives a line per month and a line per day
    on which something happened (an alarm, a decay, a retraining and its gate decision). ``threads`` caps the
    native thread pools (OpenMP, BLAS; None: their defaults): one thread gives the same models, and on a
    busy machine HistGradientBoosting's per-tree barriers made fitting six times slower with two.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _replay(cfg, start, end, train_days, lake, scenario_path, seed, rows_per_day, validate, echo)


def _replay(
    cfg: ModelConfig,
    start: dt.date,
    end: dt.date,
    train_days: int,
    lake: Lake | str | Path | None,
    scenario_path: str | Path | None,
    seed: int,
    rows_per_day: int | None,
    validate: bool,
    echo: Callable[[str], None] | None,
) -> dict[str, Any]:
    say = echo or (lambda line: log.info("%s", line))
    if end < start:
        raise ReplayError(f"--to {end} is before --from {start}")
    if train_days < 1:
        raise ReplayError(f"train_days={train_days}: must be >= 1")
    walk_start = start + dt.timedelta(days=train_days)
    if walk_start > end:
        raise ReplayError(
            f"nothing to replay: the first {train_days} days ({start}..{walk_start - dt.timedelta(days=1)}) train "
            f"the first champion and the range ends on {end}"
        )
    t_start = time.monotonic()
    settings = cfg.monitoring
    delay, window_days = cfg.labels.delay_days, cfg.training.window_days
    with _lake_for(lake) as lk:
        t0 = time.monotonic()
        prepared = prepare_lake(
            cfg, lk, start, end, scenario_path=scenario_path, seed=seed, rows_per_day=rows_per_day, validate=validate
        )
        prepared["seconds"] = round(time.monotonic() - t0, 1)
        if prepared["quarantined"]:
            for d, why in prepared["quarantined"].items():
                say(f"{d} quarantined by the landing suite (not published): {why}")
        say(
            f"lake {lk.root}: {prepared['published']} days published, {len(prepared['quarantined'])} quarantined, "
            f"{len(prepared['missing'])} missing ({prepared['seconds']:.0f}s)"
        )

        first_end = walk_start - dt.timedelta(days=1)
        champion, initial = _training_round(cfg, lk, first_end, train_days, None, version=1)
        if champion is None:
            why = initial.get("error") or "; ".join(initial.get("failing_rules") or []) or initial["decision"]
            raise ReplayError(
                f"the first champion, trained on {start}..{first_end} ({train_days} days), did not pass the gate "
                f"({initial['decision']}): {why}. Give it more days (--train-days) or start later."
            )
        initial["version"] = 1
        say(
            f"champion v1 trained on {initial['window'][0]}..{initial['window'][1]} ({initial['rows']['train']} "
            f"training rows): test {_metrics_text(initial['candidate_metrics'])}, gate {initial['decision']} "
            f"({initial['seconds']:.0f}s)"
        )

        versions: dict[int, dict[str, Any]] = {1: _version_info(champion)}  # no models kept: bounded memory
        history: list[dict[str, Any]] = []  # drift verdicts of intervals, with the version that was judged
        decays: list[dict[str, Any]] = []  # live-performance verdicts of labelled intervals, likewise
        retrain_days: dict[dt.date, dict[str, Any]] = {}  # interval ds -> retrain record: cooldown + once
        pending: collections.OrderedDict[dt.date, tuple[_Model, np.ndarray, np.ndarray]] = collections.OrderedDict()
        days_out: list[dict[str, Any]] = []
        alarms: list[dict[str, Any]] = []
        retrains: list[dict[str, Any]] = []
        published = set(lk.partitions("features", cfg.features.feature_set))
        month: dict[str, Any] = {"key": None, "days": 0, "alarms": 0, "retrains": 0, "t": time.monotonic()}

        def last_retrain(before: dt.date) -> dt.date | None:
            earlier = [d for d in retrain_days if d < before]
            return max(earlier) if earlier else None

        def policy(signal: str, signals: list[dict[str, Any]], version: int, interval: dt.date) -> RetrainDecision:
            """The monitoring DAG's decision on ``interval``: its cooldown and retrain records are the replay's."""
            return retrain_on(
                signal,
                signals,
                settings,
                version=version,
                today=interval,
                last_retrain=last_retrain(interval),
                prior=retrain_days.get(interval),
            )

        def retrain(ds: dt.date, interval: dt.date, source: str, reason: str) -> dict[str, Any]:
            nonlocal champion
            new, rec = _training_round(cfg, lk, ds, window_days, champion, version=max(versions) + 1)
            rec.update(ds=ds.isoformat(), interval=interval.isoformat(), source=source, reason=reason)
            if new is not None:
                versions[new.version] = _version_info(new)
                champion = new
                rec["new_version"] = new.version
            # what the platform's retrain record keeps: the cooldown's memory, once per interval
            retrain_days[interval] = {"ds": interval.isoformat(), "source": source, "reason": reason}
            retrains.append(rec)
            month["retrains"] += 1
            return rec

        def flush_month(force: bool = False, next_day: dt.date | None = None) -> None:
            key = month["key"]
            if key is None or (not force and next_day is not None and next_day.strftime("%Y-%m") == key):
                return
            say(
                f"-- {key}: {month['days']} days, {month['alarms']} drift alarms, {month['retrains']} retrainings, "
                f"champion v{champion.version} ({time.monotonic() - month['t']:.0f}s)"
            )
            month.update(key=None, days=0, alarms=0, retrains=0, t=time.monotonic())

        for ds in _days(walk_start, end):
            flush_month(next_day=ds)
            if month["key"] is None:
                month["key"] = ds.strftime("%Y-%m")
            month["days"] += 1
            events: list[str] = []
            row: dict[str, Any]
            if ds in published:
                judged = champion
                result, ids, scores = _score_and_drift(cfg, lk, ds, judged)
                row = _day_row(ds, judged.version, result)
                pending[ds] = (judged, ids, scores)
                history.append({"ds": ds.isoformat(), "drift": result["drift"], "model_version": judged.version})
                if result["drift"]:
                    alarm = _alarm(ds, judged.version, result)
                    alarms.append(alarm)
                    month["alarms"] += 1
                    names = [f["feature"] for f in alarm["features"]]
                    events.append(
                        f"ALARM v{judged.version}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} "
                        f"({_why(result)})"
                    )
            else:
                row = {"ds": ds.isoformat(), "rows": 0, "model_version": champion.version, "drift": None}
                row["drift_reason"] = (
                    f"no published features ({prepared['quarantined'].get(ds.isoformat(), 'missing')})"
                )
                result = None
                events.append(f"no features: {row['drift_reason']}")

            # Decay first: its interval (ds - delay) is older than today's drift interval.
            interval = ds - dt.timedelta(days=delay)
            scored = pending.pop(interval, None)
            for old in [d for d in pending if d < interval]:
                pending.pop(old)
            perf = None
            if scored is not None:
                run = sequential_run(decays, scored[0].version, last_retrain(interval))
                perf = _live(cfg, lk, interval, ds, scored, run)
            if perf is not None:
                row["performance"] = perf
                decays.append({**perf, "ds": interval.isoformat(), "decay": bool(perf.get("decay"))})
                decay = policy("decay", decays, perf["model_version"], interval)
                row["decay_decision"] = decay.to_dict()
                if perf.get("decay"):
                    events.append(f"DECAY of {interval} (v{perf['model_version']}): {perf['reason']}")
                    if not decay.retrain:
                        events.append(decay.reason.split(" (decay:")[0])
                if decay.retrain:
                    rec = retrain(ds, interval, "performance", decay.reason)
                    row["retrain"] = _retrain_brief(rec)
                    events.append(_retrain_text(rec))

            if result is not None:
                decision = policy("drift", history, row["model_version"], ds)
                row["decision"] = {
                    "drift": decision.retrain,
                    "persisted": decision.rule["persisted"],
                    "drifted_intervals": decision.rule["drifted_intervals"],
                    "reason": decision.reason,
                }
                if result["drift"] and not decision.retrain:
                    events.append(decision.reason)
                if decision.retrain:
                    rec = retrain(ds, ds, "drift", f"drift on ds={ds}: {result['reason']}")
                    row["retrain"] = _retrain_brief(rec)
                    events.append(_retrain_text(rec))
            days_out.append(row)
            if events:
                say(f"{ds} " + " | ".join(events))
        flush_month(force=True)

        summary = _summary(cfg, start, end, train_days, days_out, alarms, retrains, versions, champion)
        summary["seconds"] = round(time.monotonic() - t_start, 1)
        summary["lake_seconds"] = prepared["seconds"]
        return {
            "model": cfg.name,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "train_days": train_days,
            "window_days": window_days,
            "settings": settings.model_dump(mode="json"),
            "lake": str(lk.root) if lake is not None else None,
            "prepared": prepared,
            "initial": initial,
            "summary": summary,
            "alarms": alarms,
            "retrains": retrains,
            "days": days_out,
        }


def _version_info(m: _Model) -> dict[str, Any]:
    return {"version": m.version, "window": m.window, "test_metrics": m.test_metrics}


def _metrics_text(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return "-"
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} -" for k, v in metrics.items())


def _retrain_brief(rec: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("source", "interval", "decision", "new_version", "champion_version", "window", "seconds")
    return {k: rec.get(k) for k in keys}


def _retrain_text(rec: Mapping[str, Any]) -> str:
    window = rec.get("window") or ["?", "?"]
    head = f"RETRAIN ({rec['source']}) on {window[0]}..{window[1]}: gate {rec['decision']}"
    if rec.get("new_version"):
        return f"{head} -> champion v{rec['new_version']} ({rec['seconds']:.0f}s)"
    why = rec.get("error") or "; ".join([*(rec.get("failing_rules") or []), *(rec.get("inconclusive_rules") or [])])
    return f"{head}, champion stays v{rec['champion_version']}: {why} ({rec['seconds']:.0f}s)"


def _summary(
    cfg: ModelConfig,
    start: dt.date,
    end: dt.date,
    train_days: int,
    days: list[dict[str, Any]],
    alarms: list[dict[str, Any]],
    retrains: list[dict[str, Any]],
    versions: Mapping[int, dict[str, Any]],
    champion: _Model,
) -> dict[str, Any]:
    judged = [d for d in days if d.get("drift") is not None]
    gate = collections.Counter(r["decision"] for r in retrains)
    features = collections.Counter(f["feature"] for a in alarms for f in a["features"])
    perf = [d["performance"] for d in days if d.get("performance")]
    return {
        "days": len(days),
        "days_judged": len(judged),
        "drift_alarms": len(alarms),
        "alarm_share": round(len(alarms) / len(judged), 4) if judged else None,
        "retrains": len(retrains),
        "retrains_by_source": dict(collections.Counter(r["source"] for r in retrains)),
        "gate": {k: gate.get(k, 0) for k in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")},
        "decays": sum(1 for p in perf if p.get("decay")),
        "interval_decays": sum(1 for p in perf if p.get("interval_decay", p.get("decay"))),
        "pooled_alarms": sum(1 for p in perf if (p.get("sequential") or {}).get("alarm")),
        "performance_checks": len(perf),
        "champions": list(versions.values()),
        "final_champion": champion.version,
        "alarms_by_feature": dict(features.most_common()),
    }


def format_summary(result: Mapping[str, Any], top: int = TOP_FEATURES) -> str:
    """The replay's summary in words: counts, gate decisions, and each alarm's top drifted features."""
    s = result["summary"]
    st = result["settings"]
    g = s["gate"]
    lines = [
        f"{result['model']} replay {result['from']}..{result['to']}: first champion on {result['train_days']} days, "
        f"retraining on {result['window_days']}-day windows; persistence {st['persistence']['k']} of "
        f"{st['persistence']['n']}, cooldown {st['cooldown_days']} days",
        f"days judged        {s['days_judged']} of {s['days']}",
        f"drift alarms       {s['drift_alarms']}"
        + (f" ({s['alarm_share']:.0%} of the days)" if s["alarm_share"] else ""),
        f"retrainings        {s['retrains']} "
        + (f"({', '.join(f'{k} {v}' for k, v in s['retrains_by_source'].items())})" if s["retrains"] else ""),
        f"gate               PASS {g['PASS']}, FAIL {g['FAIL']}, INCONCLUSIVE {g['INCONCLUSIVE']}"
        + (f", ERROR {g['ERROR']}" if g["ERROR"] else ""),
        f"decays             {s['decays']} of {s['performance_checks']} performance checks "
        f"({s['interval_decays']} per interval, {s['pooled_alarms']} pooled alarms)",
        f"champions          {len(s['champions'])} (final v{s['final_champion']})",
        f"runtime            {s['seconds']:.0f}s (lake {s['lake_seconds']:.0f}s)",
    ]
    if s["alarms_by_feature"]:
        lines.append(
            "alarms by feature  " + ", ".join(f"{f} {n}" for f, n in list(s["alarms_by_feature"].items())[:12])
        )
    if result["alarms"]:
        lines.append("")
        lines.append(f"alarms (top {top} drifted features by importance):")
        for a in result["alarms"]:
            lines.append(f"  {a['ds']} v{a['model_version']}:")
            for f in a["features"][:top]:
                weight = f" [weight {f['weight']:.1%}]" if f.get("weight") is not None else ""
                lines.append(f"      {f['reason']}{weight}")
            if len(a["features"]) > top:
                lines.append(f"      ... and {len(a['features']) - top} more")
    if result["retrains"]:
        lines.append("")
        lines.append("retrainings:")
        for r in result["retrains"]:
            lines.append(f"  {r['ds']} {_retrain_text(r)}")
    return "\n".join(lines)
