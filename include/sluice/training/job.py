"""Continuous training as plain Python over the lake and an MLflow registry: plan, train, evaluate,
gate, promote. The Airflow operators are thin wrappers; tests call these directly against a real
MLflow server.

Every step rebuilds the snapshot from the lake and checks that its manifest hash is the one training
used, so evaluation can never run on different rows than the model was split on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sluice.config import ModelConfig
from sluice.lake import Lake
from sluice.registry import ledger
from sluice.registry.artifact import FILE_TAG, SHA_TAG, model_dir_sha256
from sluice.registry.ledger import promotion_lock
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry, git_sha, pip_requirements

log = logging.getLogger(__name__)

#: run tags copied onto the registered version: who/what/which data/which code/which config/which bytes
LINEAGE_PREFIXES = ("airflow.", "data.", "code.", "config.", "model.")
# training -> rejected | evaluated -> passed | failed | awaiting_approval (-> approved | not_approved)
# -> promoted | superseded
STATE_TAG = "sluice.state"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


def lineage_tags(cfg: ModelConfig, dag_id: str, run_id: str, manifest_sha256: str) -> dict[str, str]:
    return {
        "airflow.dag_id": dag_id,
        "airflow.run_id": run_id,
        "data.manifest_sha256": manifest_sha256,
        "code.git_sha": git_sha(),
        "config.hash": cfg.config_hash,
        "sluice.model": cfg.name,
    }


# --------------------------------------------------------------------------------------------- plan


def plan_training(
    cfg: ModelConfig, lake: Lake, registry: Registry, *, end_ds: dt.date | None, force: bool, reason: str
) -> dict[str, Any]:
    """Whether to train now, and on which window: the config's rule on new partitions, unless forced."""
    days = lake.partitions("features", cfg.features.feature_set)
    if not days:
        fs, dag = cfg.features.feature_set, cfg.dag_id("features")
        raise TrainingError(f"no published feature partitions of {fs!r} in {lake.root}: run {dag} first")
    end = end_ds or days[-1]
    last_end = None
    for v in reversed(registry.versions(cfg.name)):
        if v.tags.get("data.window_end"):
            last_end = dt.date.fromisoformat(v.tags["data.window_end"])
            break
    new = [d for d in days if d <= end and (last_end is None or d > last_end)]
    rule = cfg.training.min_new_partitions
    if force:
        why = "forced by the run's params"
    elif reason:
        why = f"requested: {reason}"
    elif last_end is None:
        why = "no model registered yet"
    elif len(new) >= rule:
        why = f"{len(new)} new partitions since {last_end} (rule: {rule})"
    else:
        why = ""
    return {
        "train": bool(why),
        "why": why or f"only {len(new)} new partitions since {last_end} (rule: at least {rule})",
        "end_ds": end.isoformat(),
        "new_partitions": len(new),
    }


# --------------------------------------------------------------------------------------------- train


def _split(cfg: ModelConfig, lake: Lake, end_ds: dt.date, window_days: int, expect_sha: str | None = None):
    from sluice.training.snapshot import build_snapshot, time_split

    snap = build_snapshot(cfg, lake, end_ds, window_days)
    if expect_sha and snap.manifest_sha256 != expect_sha:
        raise TrainingError(
            f"the snapshot of {end_ds} changed since training (manifest {snap.manifest_sha256[:12]} != "
            f"{expect_sha[:12]}): a partition was republished; rerun the training"
        )
    return snap, *time_split(snap.frame, cfg)


def _artifact_digest(model_uri: str) -> tuple[str, str]:
    """(file, sha256) of the model file as the store holds it: what every later load is checked against."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return model_dir_sha256(Path(tmp))


def log_pipeline(cfg: ModelConfig, model: Any, example: Any) -> dict[str, str]:
    """Log a fitted pipeline into the active run (skops, signature, input example, pinned requirements) and
    tag the run with the sha256 of the stored model file. Returns ``model_uri``, ``model_id``, ``sha256``."""
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature

    from sluice.training.model import predict_scores

    # We built this model object ourselves, so the types skops flags in it are trusted by construction;
    # the list is recorded on the run for review.
    trusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    mlflow.set_tag("model.skops_trusted_types", ",".join(trusted)[:5000])
    info = mlflow.sklearn.log_model(
        skops_trusted_types=trusted,
        sk_model=model,
        name="model",
        signature=infer_signature(example, predict_scores(model, example, cfg.task)),
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    model_file, model_sha = _artifact_digest(info.model_uri)
    mlflow.set_tags({SHA_TAG: model_sha, FILE_TAG: model_file})
    return {"model_uri": info.model_uri, "model_id": info.model_id, "sha256": model_sha, "file": model_file}


def register_pipeline(registry: Registry, cfg: ModelConfig, model: Any, example: Any, **tags: str) -> tuple[str, dict]:
    """Log a fitted pipeline in a run of its own and register it as a new version of ``cfg.name``, with its
    sha256; no gate runs. For bringing a model fitted elsewhere into the registry, and for tests."""
    import mlflow

    with mlflow.start_run(experiment_id=registry.experiment_id(cfg.name), tags={"sluice.model": cfg.name}) as run:
        info = log_pipeline(cfg, model, example)
    version = registry.register(
        cfg.name, info["model_uri"], run.info.run_id, {SHA_TAG: info["sha256"], FILE_TAG: info["file"], **tags}
    )
    return str(version.version), info


def _log_bytes(data: bytes, name: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        mlflow.log_artifact(str(path))


def train(
    cfg: ModelConfig,
    lake: Lake,
    registry: Registry,
    *,
    end_ds: dt.date,
    window_days: int,
    dag_id: str,
    run_id: str,
    note: str = "",
    reason: str = "",
) -> dict[str, Any]:
    """Snapshot -> training-set suite -> fit -> one MLflow run with everything a reviewer needs."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd

    from sluice.training.model import (
        feature_columns,
        feature_importance,
        fit,
        importance_plot_png,
        model_size_mb,
        predict_scores,
        single_row_latency_ms,
    )
    from sluice.training.profile import reference_profile
    from sluice.training.snapshot import write_manifest
    from sluice.training.suite import check_training_set

    snap, train_df, val_df, test_df = _split(cfg, lake, end_ds, window_days)
    manifest_key = write_manifest(lake, cfg, snap)
    suite = check_training_set(snap.frame, cfg)
    tags = {
        **lineage_tags(cfg, dag_id, run_id, snap.manifest_sha256),
        STATE_TAG: "training",
        "data.window_end": end_ds.isoformat(),
        "sluice.note": note[:500],
        "sluice.reason": reason[:500],
    }
    label = cfg.labels.column
    cols = feature_columns(cfg)
    ts = cfg.dataset.timestamp_column
    # Labels arrive labels.delay_days late, and the newest labelled rows are held out for validation and
    # test: the newest row the model was fitted on is older than end_ds.
    labelled_through = (
        str(pd.Timestamp(train_df[ts].max()).date()) if ts in train_df.columns and len(train_df) else None
    )
    with mlflow.start_run(
        experiment_id=registry.experiment_id(cfg.name), run_name=f"{cfg.name}-{end_ds}", tags=tags
    ) as run:
        mlflow.log_params(
            {
                "estimator": cfg.training.estimator.class_path,
                **{f"estimator.{k}": v for k, v in cfg.training.estimator.params.items()},
                "window_days": window_days,
                "window_end": end_ds.isoformat(),
                "labelled_through": labelled_through,
                "seed": cfg.training.seed,
                "rows.train": len(train_df),
                "rows.validation": len(val_df),
                "rows.test": len(test_df),
            }
        )
        source = lake.uri(manifest_key)
        for context, frame in (("training", train_df), ("validation", val_df), ("testing", test_df)):
            ds = mlflow.data.from_pandas(
                frame, source=source, targets=label, name=f"{cfg.features.feature_set}@{snap.manifest_sha256[:12]}"
            )
            mlflow.log_input(ds, context=context)
        mlflow.log_dict(snap.manifest, "snapshot_manifest.json")
        mlflow.log_dict({"success": suite.success, "failures": suite.failures}, "training_set_suite.json")
        if not suite.success:
            mlflow.set_tag(STATE_TAG, "rejected")
            return {
                "run_id": run.info.run_id,
                "suite_passed": False,
                "suite_failures": suite.failures,
                "manifest_sha256": snap.manifest_sha256,
                "end_ds": end_ds.isoformat(),
                "window_days": window_days,
            }
        t0 = time.monotonic()
        model = fit(cfg, train_df)
        fit_s = time.monotonic() - t0
        val_scores = predict_scores(model, val_df, cfg.task)
        from sluice.evaluation.metrics import compute_metrics

        val_metrics = compute_metrics(cfg.task, val_df[label].to_numpy(), val_scores, cfg.gate.metrics)
        mlflow.log_metrics({f"validation.{k}": v for k, v in val_metrics.items() if np.isfinite(v)})
        importances = feature_importance(model, val_df, val_df[label], cfg, cfg.training.seed)
        mlflow.log_dict(importances, "feature_importance.json")
        _log_bytes(importance_plot_png(importances), "feature_importance.png")
        train_scores = predict_scores(model, train_df, cfg.task)
        profile = reference_profile(train_df, cfg, train_scores)
        mlflow.log_dict(profile, "reference_profile.json")
        size_mb = model_size_mb(model)
        latency = single_row_latency_ms(model, test_df[cols].head(1))
        mlflow.log_metrics({"model_size_mb": size_mb, "latency_ms_p95": latency, "fit_seconds": fit_s})
        info = log_pipeline(cfg, model, train_df[cols].head(5))
        mlflow.set_tag(STATE_TAG, "trained")
        log.info("trained %s on %s rows in %.1fs: validation %s", cfg.name, len(train_df), fit_s, val_metrics)
    return {
        "run_id": run.info.run_id,
        "model_uri": info["model_uri"],
        "suite_passed": True,
        "manifest_sha256": snap.manifest_sha256,
        "end_ds": end_ds.isoformat(),
        "window_days": window_days,
        "labelled_through": labelled_through,
        "model_size_mb": size_mb,
        "latency_ms": latency,
        "validation_metrics": val_metrics,
    }


# --------------------------------------------------------------------------------------------- evaluate


def interval_metric(cfg: ModelConfig, test_df: Any, scores: Any) -> dict[str, Any] | None:
    """The live-performance metric on each scheduled interval of the test rows: what one monitored interval
    should score. On rows that share a day's conditions the pooled metric is higher than a typical day's (it
    also ranks the days against each other), so live performance is judged against these, not the pooled one.
    ``{"metric", "intervals", "mean", "std", "values"}``; None without a timestamp or with < 2 intervals.
    An interval counts when it has the rows a live interval needs (``performance.min_rows``) and is not a
    stub cut by the time split (``full_intervals``)."""
    import pandas as pd

    from sluice.evaluation.metrics import compute_metrics
    from sluice.training.profile import full_intervals, interval_labels

    labels = interval_labels(test_df, cfg)
    if labels is None:
        return None
    metric, y, s = cfg.monitoring_metric, test_df[cfg.labels.column].to_numpy(), np.asarray(scores)
    counts = full_intervals(pd.Series(labels).value_counts())
    values = {}
    for key in sorted(counts.index):
        rows = labels == key
        if counts[key] >= cfg.monitoring.performance.min_rows:
            v = compute_metrics(cfg.task, y[rows], s[rows], [metric])[metric]
            if np.isfinite(v):
                values[str(key)] = float(v)
    if len(values) < 2:
        return None
    arr = np.array(list(values.values()))
    return {
        "metric": metric,
        "intervals": len(arr),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)),
        "values": values,
    }


def compare(cfg: ModelConfig, test_df: Any, candidate: Any, champion: Any | None) -> dict[str, Any]:
    """Candidate (and champion, if any) scored on the same test rows: the gate's metrics, slices and the paired
    bootstrap of the primary metric. Pure: the models are in memory, nothing is logged; the training DAG's
    ``evaluate`` and the monitoring replay share it. ``champion`` is filled in by the caller."""
    from sluice.evaluation.bootstrap import paired_bootstrap
    from sluice.evaluation.metrics import compute_metrics, slice_metrics
    from sluice.training.model import predict_scores

    g = cfg.gate
    y = test_df[cfg.labels.column].to_numpy()
    cand = predict_scores(candidate, test_df, cfg.task)
    slices = {c: test_df[c].to_numpy() for c in g.slice_columns}
    out: dict[str, Any] = {
        "test_rows": len(test_df),
        "candidate": compute_metrics(cfg.task, y, cand, g.metrics),
        "candidate_slices": slice_metrics(cfg.task, y, cand, slices, g.primary_metric) if slices else None,
        "candidate_intervals": interval_metric(cfg, test_df, cand),
        "champion": None,
    }
    if champion is not None:
        champ = predict_scores(champion, test_df, cfg.task)
        boot = paired_bootstrap(
            cfg.task,
            g.primary_metric,
            y,
            cand,
            champ,
            n_samples=g.bootstrap_samples,
            confidence=g.confidence,
            seed=cfg.training.seed,
        )
        out.update(
            champion_metrics=compute_metrics(cfg.task, y, champ, g.metrics),
            champion_slices=slice_metrics(cfg.task, y, champ, slices, g.primary_metric) if slices else None,
            bootstrap=boot.to_dict(),
        )
    return out


def log_evaluation_plots(
    cfg: ModelConfig, registry: Registry, run_id: str, test_df: Any, candidate: Any, champion: Any | None
) -> list[str]:
    """ROC, PR, calibration and confusion matrix (classification) as ``plots/*.png`` on the training run."""
    from sluice.evaluation.plots import evaluation_plots
    from sluice.training.model import predict_scores

    y = test_df[cfg.labels.column].to_numpy()
    cand = predict_scores(candidate, test_df, cfg.task)
    champ = predict_scores(champion, test_df, cfg.task) if champion is not None else None
    plots = evaluation_plots(cfg.task, y, cand, champ)
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in plots.items():
            (Path(tmp) / name).write_bytes(png)
        registry.client.log_artifacts(run_id, tmp, "plots")
    return sorted(plots)


def evaluate(cfg: ModelConfig, lake: Lake, registry: Registry, trained: Mapping[str, Any]) -> dict[str, Any]:
    """Candidate and current champion on the same test rows: metrics, slices, paired bootstrap CI."""
    import mlflow
    import mlflow.sklearn

    from sluice.evaluation.gate import json_safe

    if not trained.get("suite_passed"):
        return {"skipped": "training-set suite failed", "champion": None}
    end = dt.date.fromisoformat(trained["end_ds"])
    _, _, _, test_df = _split(cfg, lake, end, int(trained["window_days"]), trained["manifest_sha256"])
    candidate = mlflow.sklearn.load_model(trained["model_uri"])
    champ = registry.by_alias(cfg.name, CHAMPION)
    champion = mlflow.sklearn.load_model(f"models:/{cfg.name}/{champ.version}") if champ is not None else None
    out = compare(cfg, test_df, candidate, champion)
    log_evaluation_plots(cfg, registry, trained["run_id"], test_df, candidate, champion)
    if champ is not None:
        out["champion"] = {"version": champ.version, "run_id": champ.run_id}
    client = registry.client
    rid = trained["run_id"]
    for k, v in out["candidate"].items():
        if np.isfinite(v):
            client.log_metric(rid, f"test.{k}", float(v))
    for k, v in (out.get("champion_metrics") or {}).items():
        if np.isfinite(v):
            client.log_metric(rid, f"champion.test.{k}", float(v))
    per_interval = out.get("candidate_intervals")
    if per_interval:
        for k in ("mean", "std", "intervals"):
            client.log_metric(rid, f"test_interval.{per_interval['metric']}.{k}", float(per_interval[k]))
    out = json_safe(out)  # NaN (e.g. AUC of a one-class slice) -> null; XCom and MLflow take strict JSON
    client.log_dict(rid, out, "evaluation.json")
    client.set_tag(rid, STATE_TAG, "evaluated")
    return out


# --------------------------------------------------------------------------------------------- gate


def decide(cfg: ModelConfig, registry: Registry, trained: Mapping[str, Any], evaluation: Mapping[str, Any]):
    """The gate's typed decision, recorded on the MLflow run (JSON, HTML, tags) before anyone acts on it."""
    from sluice.evaluation.bootstrap import BootstrapResult
    from sluice.evaluation.gate import GateInputs, evaluate_gate
    from sluice.evaluation.report import render_html

    boot = evaluation.get("bootstrap")
    inputs = GateInputs(
        candidate_metrics=evaluation.get("candidate") or {},
        champion_metrics=evaluation.get("champion_metrics"),
        bootstrap=BootstrapResult(**boot) if boot else None,
        candidate_slices=evaluation.get("candidate_slices"),
        champion_slices=evaluation.get("champion_slices"),
        model_size_mb=trained.get("model_size_mb"),
        latency_ms=trained.get("latency_ms"),
        training_suite_passed=bool(trained.get("suite_passed")),
    )
    decision = evaluate_gate(cfg.gate, inputs)
    rid = trained["run_id"]
    champ = evaluation.get("champion") or {}
    registry.client.log_dict(rid, decision.to_dict(), "gate_decision.json")
    html = render_html(
        decision,
        model=cfg.name,
        candidate_label=f"run {rid[:8]}",
        champion_label=f"v{champ['version']}" if champ else "none",
        links={},
    )
    registry.client.log_text(rid, html, "gate_report.html")
    registry.client.set_tag(rid, "gate.decision", decision.decision.value)
    value = decision.decision.value
    waits = value == "INCONCLUSIVE" and cfg.gate.approval.enabled
    registry.client.set_tag(rid, STATE_TAG, "passed" if value == "PASS" else "awaiting_approval" if waits else "failed")
    return decision


# --------------------------------------------------------------------------------------------- approval


def record_approval(
    cfg: ModelConfig,
    registry: Registry,
    trained: Mapping[str, Any],
    record: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
) -> None:
    """A person's answer to an INCONCLUSIVE gate, on the MLflow run; a rejection (or timeout) also goes to the
    ledger here, an approval with the promotion it allows."""
    rid = trained["run_id"]
    for key in ("outcome", "by", "why", "responded_at"):
        registry.client.set_tag(rid, f"approval.{key}", str(record.get(key) or "")[:5000])
    registry.client.set_tag(rid, STATE_TAG, "approved" if record.get("approved") else "not_approved")
    if record.get("approved"):
        return
    with promotion_lock(cfg.name):
        current = registry.by_alias(cfg.name, CHALLENGER)
        version = current.version if current else None
        ledger.append(
            registry,
            cfg.name,
            alias=CHALLENGER,
            from_version=version,
            to_version=version,
            why=approval_why(record, rid),
            who=str(record.get("by")),
            dag_id=dag_id,
            run_id=run_id,
            evidence=f"runs:/{rid}/gate_decision.json",
            extra={"decision": str(record.get("outcome")), "candidate_run": rid},
        )


def approval_why(record: Mapping[str, Any], rid: str) -> str:
    why = str(record.get("why") or "").strip() or "no reason given"
    return f"gate INCONCLUSIVE for run {rid[:8]}: {record.get('outcome')} by {record.get('by')}: {why}"


# --------------------------------------------------------------------------------------------- promote


def _primary(cfg: ModelConfig, evaluation: Mapping[str, Any]) -> float:
    from sluice.evaluation.metrics import higher_is_better

    value = float((evaluation.get("candidate") or {}).get(cfg.gate.primary_metric, float("nan")))
    return value if higher_is_better(cfg.gate.primary_metric) else -value


PROMOTION_WAIT_SECONDS = float(os.environ.get("SLUICE_PROMOTION_WAIT_SECONDS", "600"))
UNJUDGED = ("training", "trained", "evaluated")  # a gate decision is still to come


def _rivals(cfg: ModelConfig, registry: Registry, rid: str, manifest_sha: str, states: tuple[str, ...]) -> list[Any]:
    """Other training runs of this model on the same snapshot, in one of ``states``, from the last 6 hours."""
    since = int((time.time() - 6 * 3600) * 1000)
    runs = registry.client.search_runs(
        [registry.experiment_id(cfg.name)],
        filter_string=f"tags.`data.manifest_sha256` = '{manifest_sha}'",
        max_results=200,
    )
    return [
        r for r in runs if r.info.run_id != rid and r.info.start_time >= since and r.data.tags.get(STATE_TAG) in states
    ]


def promote(
    cfg: ModelConfig,
    registry: Registry,
    trained: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    decision: Mapping[str, Any],
    *,
    run_type: str,
    approval: Mapping[str, Any] | None = None,
    dag_id: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """Register the candidate and point ``challenger`` at it, only on PASS and only if it is the best.

    Runs that train on the same snapshot at the same time meet here: each waits (bounded) until the
    others have their gate decision, then, under the lock, only the best of the passed ones registers,
    so exactly one promotion happens and the better model wins, whatever order they arrive in. The
    champion is re-read under the lock: a decision taken against another champion is stale. An INCONCLUSIVE
    gate promotes only with a person's approval (``approval``); the move goes to the ledger with who and why.
    """
    verdict = decision.get("decision")
    approved = verdict == "INCONCLUSIVE" and bool((approval or {}).get("approved"))
    if verdict != "PASS" and not approved:
        raise TrainingError(f"promotion refused: the gate decided {verdict} and nobody approved it")
    if run_type == "backfill":
        return {"promoted": False, "why": "a backfill run never moves an alias"}
    rid, sha = trained["run_id"], trained["manifest_sha256"]
    mine = _primary(cfg, evaluation)
    registry.client.set_tag(rid, "eval.primary_oriented", f"{mine:.6f}")
    deadline = time.monotonic() + PROMOTION_WAIT_SECONDS
    while (pending := _rivals(cfg, registry, rid, sha, UNJUDGED)) and time.monotonic() < deadline:
        log.info("waiting for %s concurrent run(s) on the same snapshot to be judged", len(pending))
        time.sleep(2)

    def supersede(why: str) -> dict[str, Any]:
        registry.client.set_tag(rid, STATE_TAG, "superseded")
        log.info("not promoted: %s", why)
        return {"promoted": False, "why": why}

    with promotion_lock(cfg.name):
        champ = registry.by_alias(cfg.name, CHAMPION)
        evaluated_against = (evaluation.get("champion") or {}).get("version")
        if (champ.version if champ else None) != evaluated_against:
            raise TrainingError(
                f"the champion moved from {evaluated_against} to {champ.version if champ else None} since this "
                "candidate was evaluated; rerun the training to compare against the current champion"
            )
        for rival in _rivals(cfg, registry, rid, sha, ("passed",)):
            theirs = float(rival.data.tags.get("eval.primary_oriented", "nan"))
            if np.isfinite(theirs) and (theirs > mine or (theirs == mine and rival.info.run_id < rid)):
                return supersede(f"run {rival.info.run_id[:8]} on the same snapshot scores {theirs:.4f} >= {mine:.4f}")
        current = registry.by_alias(cfg.name, CHALLENGER)
        if current is not None and current.tags.get("data.manifest_sha256") == sha:
            theirs = float(current.tags.get("eval.primary_oriented", "nan"))
            if np.isfinite(theirs) and theirs >= mine:
                return {
                    **supersede(f"challenger v{current.version} from the same snapshot scores {theirs:.4f}"),
                    "challenger": current.version,
                }
        run = registry.run(rid)
        tags = {
            **{k: v for k, v in run.data.tags.items() if k.startswith(LINEAGE_PREFIXES + ("approval.",))},
            "gate.decision": verdict,
            "gate.primary_metric": cfg.gate.primary_metric,
            "eval.primary_oriented": f"{mine:.6f}",
            "gate.evidence": f"runs:/{rid}/gate_decision.json",
        }
        version = registry.register(cfg.name, trained["model_uri"], rid, tags)
        registry.set_alias(cfg.name, CHALLENGER, version.version)
        registry.client.set_tag(rid, STATE_TAG, "promoted")
        ledger.append(
            registry,
            cfg.name,
            alias=CHALLENGER,
            from_version=current.version if current else None,
            to_version=version.version,
            why=approval_why(approval or {}, rid) if approved else f"gate PASS for run {rid[:8]}",
            who=str((approval or {}).get("by")) if approved else "airflow:gate",
            dag_id=dag_id,
            run_id=run_id,
            evidence=f"runs:/{rid}/gate_decision.json",
            extra={"decision": "approved", "candidate_run": rid} if approved else {"candidate_run": rid},
        )
        if current is not None and current.version != version.version:
            registry.client.set_model_version_tag(cfg.name, current.version, STATE_TAG, "superseded")
    log.info("registered %s v%s and set alias %s (gate %s)", cfg.name, version.version, CHALLENGER, verdict)
    return {"promoted": True, "version": version.version, "alias": CHALLENGER, "run_id": rid}
