"""Continuous training as plain Python over the lake and an MLflow registry: plan, train, evaluate,
gate, promote. The Airflow operators are thin wrappers; tests call these directly against a real
MLflow server.

Every step rebuilds the snapshot from the lake and checks that its manifest hash is the one training
used, so evaluation can never run on different rows than the model was split on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.config import ModelConfig
from sluice.lake import Lake
from sluice.registry import ledger
from sluice.registry.artifact import FILE_TAG, SHA_TAG, model_dir_sha256
from sluice.registry.ledger import promotion_lock
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry, git_sha, pip_requirements
from sluice.training.record import STATE_TAG
from sluice.training.steps import Evaluation, Trained, TrainingError

if TYPE_CHECKING:
    from sluice.evaluation.gate import GateDecision

log = logging.getLogger(__name__)

#: run tags copied onto the registered version: who/what/which data/which code/which config/which bytes
LINEAGE_PREFIXES = ("airflow.", "data.", "code.", "config.", "model.")


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


def register_pipeline(
    registry: Registry, cfg: ModelConfig, model: Any, example: Any, **tags: str
) -> tuple[str, dict[str, str]]:
    """Log a fitted pipeline in a run of its own and register it as a new version of ``cfg.name``, with its
    sha256; no gate runs. For bringing a model fitted elsewhere into the registry, and for tests."""
    import mlflow

    with mlflow.start_run(experiment_id=registry.experiment_id(cfg.name), tags={"sluice.model": cfg.name}) as run:
        info = log_pipeline(cfg, model, example)
    version = registry.register(
        cfg.name, info["model_uri"], run.info.run_id, {SHA_TAG: info["sha256"], FILE_TAG: info["file"], **tags}
    )
    return str(version.version), info


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

    from sluice.training import record
    from sluice.training.model import feature_columns
    from sluice.training.snapshot import write_manifest
    from sluice.training.steps import fit_candidate, labelled_through, split_snapshot
    from sluice.training.suite import check_training_set

    split = split_snapshot(cfg, lake, end_ds, window_days)
    snap = split.snapshot
    manifest_key = write_manifest(lake, cfg, snap)
    suite = check_training_set(snap.frame, cfg)
    tags = {
        **lineage_tags(cfg, dag_id, run_id, snap.manifest_sha256),
        STATE_TAG: "training",
        "data.window_end": end_ds.isoformat(),
        "sluice.note": note[:500],
        "sluice.reason": reason[:500],
    }
    through = labelled_through(cfg, split.train)
    # The run is open (state "training") while the model fits: concurrent runs on the same snapshot wait for it.
    with mlflow.start_run(
        experiment_id=registry.experiment_id(cfg.name), run_name=f"{cfg.name}-{end_ds}", tags=tags
    ) as run:
        record.log_split(
            cfg,
            split,
            source=lake.uri(manifest_key),
            window_days=window_days,
            end_ds=end_ds,
            labelled_through=through,
            suite=suite,
        )
        trained = Trained(
            run_id=run.info.run_id,
            suite_passed=bool(suite.success),
            manifest_sha256=snap.manifest_sha256,
            end_ds=end_ds.isoformat(),
            window_days=window_days,
        )
        if not suite.success:
            mlflow.set_tag(STATE_TAG, "rejected")
            return dataclasses.replace(trained, suite_failures=suite.failures).to_dict()
        fitted = fit_candidate(cfg, split)
        record.log_fitted(fitted)
        info = log_pipeline(cfg, fitted.model, split.train[feature_columns(cfg)].head(5))
        mlflow.set_tag(STATE_TAG, "trained")
        log.info(
            "trained %s on %s rows in %.1fs: validation %s",
            cfg.name,
            len(split.train),
            fitted.fit_seconds,
            fitted.validation_metrics,
        )
    return dataclasses.replace(
        trained,
        model_uri=info["model_uri"],
        labelled_through=through,
        model_size_mb=fitted.model_size_mb,
        latency_ms=fitted.latency_ms,
        validation_metrics=fitted.validation_metrics,
    ).to_dict()


# --------------------------------------------------------------------------------------------- evaluate


def evaluate(cfg: ModelConfig, lake: Lake, registry: Registry, trained: Mapping[str, Any]) -> dict[str, Any]:
    """Candidate and current champion on the same test rows: metrics, slices, paired bootstrap CI."""
    import mlflow
    import mlflow.sklearn

    from sluice.evaluation.plots import evaluation_plots
    from sluice.training import record
    from sluice.training.model import predict_scores
    from sluice.training.steps import SKIPPED, evaluate_candidate, split_snapshot

    if not trained.get("suite_passed"):
        return SKIPPED.to_dict()
    end = dt.date.fromisoformat(trained["end_ds"])
    test_df = split_snapshot(cfg, lake, end, int(trained["window_days"]), trained["manifest_sha256"]).test
    candidate = mlflow.sklearn.load_model(trained["model_uri"])
    champ = registry.by_alias(cfg.name, CHAMPION)
    champion = mlflow.sklearn.load_model(f"models:/{cfg.name}/{champ.version}") if champ is not None else None
    ref = {"version": champ.version, "run_id": champ.run_id} if champ is not None else None
    evaluation = evaluate_candidate(cfg, test_df, candidate, champion, ref)
    y = test_df[cfg.labels.column].to_numpy()
    plots = evaluation_plots(
        cfg.task,
        y,
        predict_scores(candidate, test_df, cfg.task),
        predict_scores(champion, test_df, cfg.task) if champion is not None else None,
    )
    record.log_plots(registry, trained["run_id"], plots)
    record.log_evaluation(registry, trained["run_id"], evaluation)
    return evaluation.to_dict()


# --------------------------------------------------------------------------------------------- gate


def decide(
    cfg: ModelConfig, registry: Registry, trained: Mapping[str, Any], evaluation: Mapping[str, Any]
) -> GateDecision:
    """The gate's typed decision, recorded on the MLflow run (JSON, HTML, tags) before anyone acts on it."""
    from sluice.training import record
    from sluice.training.steps import judge

    ev = Evaluation.from_dict(evaluation)
    decision = judge(
        cfg,
        ev,
        suite_passed=bool(trained.get("suite_passed")),
        model_size_mb=trained.get("model_size_mb"),
        latency_ms=trained.get("latency_ms"),
    )
    # the champion compared with; or, when nothing was compared (the training-set suite failed), the one serving
    champion = (ev.champion or {}).get("version")
    if champion is None and (serving := registry.by_alias(cfg.name, CHAMPION)) is not None:
        champion = serving.version
    record.log_gate(registry, cfg, trained["run_id"], decision, champion)
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


def _oriented(cfg: ModelConfig, value: Any) -> float:
    """The primary metric, higher is better, rounded as the ``eval.primary_oriented`` tag holds it (so a score
    read from a tag and one read from a metric compare equal when they are)."""
    from sluice.evaluation.metrics import higher_is_better

    v = float("nan") if value is None else float(value)
    return round(v if higher_is_better(cfg.gate.primary_metric) else -v, 6)


def _primary(cfg: ModelConfig, evaluation: Mapping[str, Any]) -> float:
    return _oriented(cfg, (evaluation.get("candidate") or {}).get(cfg.gate.primary_metric))


def _score_of(cfg: ModelConfig, rival: Any) -> float:
    """A rival run's oriented primary metric: its promote's tag, else the test metric its evaluation logged. A
    rival that passed its gate but waits for the promotion pool has no tag yet; without this it scored NaN and
    both runs promoted, one after the other (seen on the Celery workers: two challenger moves)."""
    tag = rival.data.tags.get("eval.primary_oriented")
    if tag is not None:
        return float(tag)
    return _oriented(cfg, rival.data.metrics.get(f"test.{cfg.gate.primary_metric}"))


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
            theirs = _score_of(cfg, rival)
            if np.isfinite(theirs) and (theirs > mine or (theirs == mine and rival.info.run_id < rid)):
                return supersede(f"run {rival.info.run_id[:8]} on the same snapshot scores {theirs:.4f} >= {mine:.4f}")
        current = registry.by_alias(cfg.name, CHALLENGER)
        if current is not None and current.run_id == rid:
            # an earlier attempt of this promotion moved the alias and was cut off after (MLflow went away):
            # finish its bookkeeping instead of superseding the run by its own version
            return _finish_promotion(cfg, registry, rid, current, verdict, approval, approved, dag_id, run_id)
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
        # an earlier attempt may have registered this run and lost MLflow before the alias moved: a retry
        # reuses that version rather than leave it behind as a second, alias-less one
        left = [v for v in registry.versions(cfg.name) if v.run_id == rid]
        if left:
            log.info("run %s already has version %s (an interrupted attempt): reusing it", rid[:8], left[-1].version)
        version = left[-1] if left else registry.register(cfg.name, trained["model_uri"], rid, tags)
        registry.set_alias(cfg.name, CHALLENGER, version.version)
        if current is not None and current.version != version.version:
            registry.client.set_model_version_tag(cfg.name, current.version, STATE_TAG, "superseded")
        return _finish_promotion(
            cfg, registry, rid, version, verdict, approval, approved, dag_id, run_id, previous=current
        )


def _finish_promotion(
    cfg: ModelConfig,
    registry: Registry,
    rid: str,
    version: Any,
    verdict: Any,
    approval: Mapping[str, Any] | None,
    approved: bool,
    dag_id: str,
    run_id: str,
    previous: Any = None,
) -> dict[str, Any]:
    """The run's state tag and the ledger entry of the alias move, once (a retry finds the entry there)."""
    registry.client.set_tag(rid, STATE_TAG, "promoted")
    recorded = any(
        e.get("alias") == CHALLENGER and e.get("to") == version.version and e.get("candidate_run") == rid
        for e in ledger.history(registry, cfg.name)
    )
    if not recorded:
        ledger.append(
            registry,
            cfg.name,
            alias=CHALLENGER,
            from_version=previous.version if previous is not None else None,
            to_version=version.version,
            why=approval_why(approval or {}, rid) if approved else f"gate PASS for run {rid[:8]}",
            who=str((approval or {}).get("by")) if approved else "airflow:gate",
            dag_id=dag_id,
            run_id=run_id,
            evidence=f"runs:/{rid}/gate_decision.json",
            extra={"decision": "approved", "candidate_run": rid} if approved else {"candidate_run": rid},
        )
    log.info("registered %s v%s and set alias %s (gate %s)", cfg.name, version.version, CHALLENGER, verdict)
    return {"promoted": True, "version": version.version, "alias": CHALLENGER, "run_id": rid}
