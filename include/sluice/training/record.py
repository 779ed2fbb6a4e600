"""The training run in MLflow: what the steps of :mod:`sluice.training.steps` write there, and reading it back.

One place for the names on a training run that others read (the Sluice view, the ledger, the mails,
monitoring): the artifacts ``snapshot_manifest.json``, ``training_set_suite.json``,
``feature_importance.{json,png}``, ``reference_profile.json``, ``evaluation.json``, ``plots/*.png``,
``gate_decision.json`` and ``gate_report.html``; the metrics ``validation.<m>``, ``test.<m>``,
``champion.test.<m>``, ``test_interval.<metric>.<mean|std|intervals>``, ``model_size_mb``,
``latency_ms_p95`` and ``fit_seconds``; the tags ``sluice.state`` and ``gate.decision``.
``log_*`` write (into the active run, or on ``run_id`` through the registry's client);
:func:`read_reference` reads back what monitoring judges an interval against.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sluice.config import ModelConfig
from sluice.evaluation.gate import GateDecision
from sluice.training.steps import Evaluation, Fitted, Split

# training -> rejected | evaluated -> passed | failed | awaiting_approval (-> approved | not_approved)
# -> promoted | superseded
STATE_TAG = "sluice.state"
GATE_TAG = "gate.decision"
PROFILE = "reference_profile.json"
IMPORTANCE = "feature_importance.json"
EVALUATION = "evaluation.json"
GATE_DECISION = "gate_decision.json"
GATE_REPORT = "gate_report.html"
INTERVAL_PREFIX = "test_interval."
INTERVAL_STATS = ("mean", "std", "intervals")

__all__ = [
    "STATE_TAG",
    "Reference",
    "interval_metrics_from",
    "interval_metrics_to",
    "log_evaluation",
    "log_fitted",
    "log_gate",
    "log_split",
    "read_reference",
]


def _log_bytes(data: bytes, name: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        mlflow.log_artifact(str(path))


def _finite_metrics(prefix: str, metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """``{prefix + name: value}`` of the defined metrics: MLflow takes no NaN (JSON-safe results hold None)."""
    return {f"{prefix}{k}": float(v) for k, v in (metrics or {}).items() if v is not None and np.isfinite(v)}


# --------------------------------------------------------------------------------------------- the interval metric


def interval_metrics_to(per_interval: Mapping[str, Any] | None) -> dict[str, float]:
    """``test_interval.<metric>.<mean|std|intervals>``: the candidate's per-interval test metric as run metrics."""
    if not per_interval:
        return {}
    return {f"{INTERVAL_PREFIX}{per_interval['metric']}.{k}": float(per_interval[k]) for k in INTERVAL_STATS}


def interval_metrics_from(metrics: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """The run metrics :func:`interval_metrics_to` wrote, back as ``{metric: {"metric", "mean", "std",
    "intervals"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in metrics.items():
        if k.startswith(INTERVAL_PREFIX):
            metric, _, stat = k.removeprefix(INTERVAL_PREFIX).rpartition(".")
            out.setdefault(metric, {"metric": metric})[stat] = v
    return out


# --------------------------------------------------------------------------------------------- write


def log_split(
    cfg: ModelConfig,
    split: Split,
    *,
    source: str,
    window_days: int,
    end_ds: dt.date,
    labelled_through: str | None,
    suite: Any,
) -> None:
    """Into the active run: the parameters, the three datasets (lineage to the snapshot manifest ``source``),
    the manifest and the training-set suite's result."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    snap = split.snapshot
    mlflow.log_params(
        {
            "estimator": cfg.training.estimator.class_path,
            **{f"estimator.{k}": v for k, v in cfg.training.estimator.params.items()},
            "window_days": window_days,
            "window_end": end_ds.isoformat(),
            "labelled_through": labelled_through,
            "seed": cfg.training.seed,
            "rows.train": len(split.train),
            "rows.validation": len(split.validation),
            "rows.test": len(split.test),
        }
    )
    for context, frame in (("training", split.train), ("validation", split.validation), ("testing", split.test)):
        ds = from_pandas(
            frame,
            source=source,
            targets=cfg.labels.column,
            name=f"{cfg.features.feature_set}@{snap.manifest_sha256[:12]}",
        )
        mlflow.log_input(ds, context=context)
    mlflow.log_dict(snap.manifest, "snapshot_manifest.json")
    mlflow.log_dict({"success": suite.success, "failures": suite.failures}, "training_set_suite.json")


def log_fitted(fitted: Fitted) -> None:
    """Into the active run: validation metrics, importances (JSON and chart), the reference profile, size,
    latency and fit time. The model itself is logged by ``sluice.training.job.log_pipeline``."""
    import mlflow

    from sluice.training.model import importance_plot_png

    mlflow.log_metrics(_finite_metrics("validation.", fitted.validation_metrics))
    mlflow.log_dict(fitted.importances, IMPORTANCE)
    _log_bytes(importance_plot_png(fitted.importances), "feature_importance.png")
    mlflow.log_dict(fitted.profile, PROFILE)
    mlflow.log_metrics(
        {"model_size_mb": fitted.model_size_mb, "latency_ms_p95": fitted.latency_ms, "fit_seconds": fitted.fit_seconds}
    )


def log_plots(registry: Any, run_id: str, plots: Mapping[str, bytes]) -> None:
    """``plots/<name>`` on the run."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in plots.items():
            (Path(tmp) / name).write_bytes(png)
        registry.client.log_artifacts(run_id, tmp, "plots")


def log_evaluation(registry: Any, run_id: str, evaluation: Evaluation) -> None:
    """The test metrics of candidate and champion, the candidate's per-interval metric, ``evaluation.json``."""
    client = registry.client
    for key, value in _finite_metrics("test.", evaluation.candidate).items():
        client.log_metric(run_id, key, value)
    for key, value in _finite_metrics("champion.test.", evaluation.champion_metrics).items():
        client.log_metric(run_id, key, value)
    for key, value in interval_metrics_to(evaluation.candidate_intervals).items():
        client.log_metric(run_id, key, value)
    client.log_dict(run_id, evaluation.to_dict(), EVALUATION)
    client.set_tag(run_id, STATE_TAG, "evaluated")


def log_gate(registry: Any, cfg: ModelConfig, run_id: str, decision: GateDecision, champion_version: Any) -> None:
    """The gate's decision (JSON, HTML report, tags) on the run, before anyone acts on it."""
    from sluice.evaluation.report import as_judged_against, render_html

    client = registry.client
    client.log_dict(run_id, decision.to_dict(), GATE_DECISION)
    shown, label = as_judged_against(decision, champion_version, compared=f"v{champion_version}")
    html = render_html(shown, model=cfg.name, candidate_label=f"run {run_id[:8]}", champion_label=label, links={})
    client.log_text(run_id, html, GATE_REPORT)
    value = decision.decision.value
    client.set_tag(run_id, GATE_TAG, value)
    waits = value == "INCONCLUSIVE" and cfg.gate.approval.enabled
    client.set_tag(run_id, STATE_TAG, "passed" if value == "PASS" else "awaiting_approval" if waits else "failed")


# --------------------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class Reference:
    """What a registered version is judged against in monitoring: its training run's reference profile,
    feature importances (None for runs that predate them: equal weights), test metrics and per-interval test
    metrics (``{metric: {"metric", "mean", "std", "intervals"}}``)."""

    profile: dict[str, Any]
    importances: dict[str, Any] | None
    test_metrics: dict[str, float]
    interval_metrics: dict[str, dict[str, Any]]


def read_reference(registry: Any, run_id: str) -> Reference:
    """The :class:`Reference` recorded on training run ``run_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        profile = json.loads(Path(registry.client.download_artifacts(run_id, PROFILE, tmp)).read_text())
        try:
            importances = json.loads(Path(registry.client.download_artifacts(run_id, IMPORTANCE, tmp)).read_text())
        except Exception:  # older runs: equal weights, said so in the result's "weighting"
            importances = None
    metrics = registry.run(run_id).data.metrics
    return Reference(
        profile=profile,
        importances=importances,
        test_metrics={k.removeprefix("test."): v for k, v in metrics.items() if k.startswith("test.")},
        interval_metrics=interval_metrics_from(metrics),
    )
