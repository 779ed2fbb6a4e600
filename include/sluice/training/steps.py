"""The steps of continuous training as pure functions with typed results: split the snapshot, fit and measure a
candidate, score it against the champion on the same test rows, and judge it at the gate.

Nothing here talks to MLflow: :mod:`sluice.training.job` runs these steps for the training DAG and records
their results with :mod:`sluice.training.record`; the monitoring replay (:mod:`sluice.apps.replay`) runs the
very same steps in memory. A step's result is a frozen dataclass; ``to_dict`` gives the JSON-safe form that
goes to XCom and MLflow, ``from_dict`` reads it back.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sluice.config import ModelConfig
from sluice.evaluation.gate import GateDecision
from sluice.evaluation.numbers import json_object, json_safe
from sluice.lake import Lake
from sluice.training.snapshot import Snapshot

__all__ = [
    "Evaluation",
    "Fitted",
    "Split",
    "Trained",
    "TrainingError",
    "compare",
    "evaluate_candidate",
    "fit_candidate",
    "interval_metric",
    "judge",
    "labelled_through",
    "split_snapshot",
]

SKIPPED_SUITE = "training-set suite failed"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


# --------------------------------------------------------------------------------------------- split


@dataclass(frozen=True, eq=False)
class Split:
    """A training window's snapshot and its time split."""

    snapshot: Snapshot
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    @property
    def rows(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_snapshot(
    cfg: ModelConfig, lake: Lake, end_ds: dt.date, window_days: int, expect_sha: str | None = None
) -> Split:
    """The snapshot of the window ending ``end_ds``, split in time; with ``expect_sha``, the manifest hash must
    be the one training used, so evaluation never runs on other rows than the model was split on."""
    from sluice.training.snapshot import build_snapshot, time_split

    snap = build_snapshot(cfg, lake, end_ds, window_days)
    if expect_sha and snap.manifest_sha256 != expect_sha:
        raise TrainingError(
            f"the snapshot of {end_ds} changed since training (manifest {snap.manifest_sha256[:12]} != "
            f"{expect_sha[:12]}): a partition was republished; rerun the training"
        )
    return Split(snap, *time_split(snap.frame, cfg))


def labelled_through(cfg: ModelConfig, train_df: pd.DataFrame) -> str | None:
    """The day of the newest row the model is fitted on. Labels arrive ``labels.delay_days`` late, and the
    newest labelled rows are held out for validation and test: it is older than the window's end."""
    ts = cfg.dataset.timestamp_column
    return str(pd.Timestamp(train_df[ts].max()).date()) if ts in train_df.columns and len(train_df) else None


# --------------------------------------------------------------------------------------------- fit


@dataclass(frozen=True, eq=False)
class Fitted:
    """A fitted candidate and what was measured on it before the gate."""

    model: Any
    fit_seconds: float
    validation_metrics: dict[str, float]
    importances: dict[str, float]
    profile: dict[str, Any]
    model_size_mb: float
    latency_ms: float


def fit_candidate(cfg: ModelConfig, split: Split) -> Fitted:
    """Fit on the training rows; the validation metrics, permutation importances, the reference profile of the
    training rows and their scores (what monitoring compares with), the size and the single-row latency."""
    from sluice.evaluation.metrics import compute_metrics
    from sluice.training.model import (
        feature_columns,
        feature_importance,
        fit,
        model_size_mb,
        predict_scores,
        single_row_latency_ms,
    )
    from sluice.training.profile import reference_profile

    label = cfg.labels.column
    train_df, val_df = split.train, split.validation
    t0 = time.monotonic()
    model = fit(cfg, train_df)
    fit_seconds = time.monotonic() - t0
    val_scores = predict_scores(model, val_df, cfg.task)
    return Fitted(
        model=model,
        fit_seconds=fit_seconds,
        validation_metrics=compute_metrics(cfg.task, val_df[label].to_numpy(), val_scores, cfg.gate.metrics),
        importances=feature_importance(model, val_df, val_df[label], cfg, cfg.training.seed),
        profile=reference_profile(train_df, cfg, predict_scores(model, train_df, cfg.task)),
        model_size_mb=model_size_mb(model),
        latency_ms=single_row_latency_ms(model, split.test[feature_columns(cfg)].head(1)),
    )


@dataclass(frozen=True)
class Trained:
    """The training step's record (XCom ``train``): the run, the snapshot, and on a passed suite the measures
    the gate needs."""

    run_id: str
    suite_passed: bool
    manifest_sha256: str
    end_ds: str
    window_days: int
    suite_failures: list[dict[str, Any]] | None = None
    model_uri: str | None = None
    labelled_through: str | None = None
    model_size_mb: float | None = None
    latency_ms: float | None = None
    validation_metrics: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        if not self.suite_passed:
            return {
                "run_id": self.run_id,
                "suite_passed": False,
                "suite_failures": self.suite_failures,
                "manifest_sha256": self.manifest_sha256,
                "end_ds": self.end_ds,
                "window_days": self.window_days,
            }
        return {
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "suite_passed": True,
            "manifest_sha256": self.manifest_sha256,
            "end_ds": self.end_ds,
            "window_days": self.window_days,
            "labelled_through": self.labelled_through,
            "model_size_mb": self.model_size_mb,
            "latency_ms": self.latency_ms,
            "validation_metrics": self.validation_metrics,
        }


# --------------------------------------------------------------------------------------------- evaluate


def interval_metric(cfg: ModelConfig, test_df: pd.DataFrame, scores: Any) -> dict[str, Any] | None:
    """The live-performance metric on each scheduled interval of the test rows: what one monitored interval
    should score. On rows that share a day's conditions the pooled metric is higher than a typical day's (it
    also ranks the days against each other), so live performance is judged against these, not the pooled one.
    ``{"metric", "intervals", "mean", "std", "values"}``; None without a timestamp or with < 2 intervals.
    An interval counts when it has the rows a live interval needs (``performance.min_rows``) and is not a
    stub cut by the time split (``full_intervals``)."""
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


def compare(cfg: ModelConfig, test_df: pd.DataFrame, candidate: Any, champion: Any | None) -> dict[str, Any]:
    """Candidate (and champion, if any) scored on the same test rows: the gate's metrics, slices and the paired
    bootstrap of the primary metric. ``champion`` (who it is) is filled in by :func:`evaluate_candidate`."""
    from sluice.evaluation.bootstrap import paired_bootstrap, paired_bootstrap_slices
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
        n, conf, seed = g.bootstrap_samples, g.confidence, cfg.training.seed
        slice_boot = None
        if slices and g.slice_max_regression is not None:
            # the slices' significance is read off the gate's own resamples, restricted to each slice's rows
            limit = g.slice_max_regression
            boot, slice_boot = paired_bootstrap_slices(
                cfg.task, g.primary_metric, y, cand, champ, slices, limit=limit, n_samples=n, confidence=conf, seed=seed
            )
        else:
            boot = paired_bootstrap(cfg.task, g.primary_metric, y, cand, champ, n_samples=n, confidence=conf, seed=seed)
        out.update(
            champion_metrics=compute_metrics(cfg.task, y, champ, g.metrics),
            champion_slices=slice_metrics(cfg.task, y, champ, slices, g.primary_metric) if slices else None,
            bootstrap=boot.to_dict(),
            slice_bootstrap=slice_boot,
        )
    return out


@dataclass(frozen=True)
class Evaluation:
    """Candidate and champion on the candidate's test rows (XCom ``evaluate``, ``evaluation.json``), JSON-safe:
    an undefined metric (the AUC of a one-class slice) is None. ``skipped`` says why nothing was scored."""

    candidate: dict[str, Any]
    champion: dict[str, Any] | None = None  # {"version", "run_id"} of the champion compared with
    test_rows: int | None = None
    candidate_slices: dict[str, Any] | None = None
    candidate_intervals: dict[str, Any] | None = None
    champion_metrics: dict[str, Any] | None = None
    champion_slices: dict[str, Any] | None = None
    bootstrap: dict[str, Any] | None = None
    slice_bootstrap: dict[str, Any] | None = None  # per slice value: rows, classes, p-value against the limit
    skipped: str | None = None

    @property
    def has_champion(self) -> bool:
        return self.champion_metrics is not None

    def to_dict(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped, "champion": None}
        out: dict[str, Any] = {
            "test_rows": self.test_rows,
            "candidate": self.candidate,
            "candidate_slices": self.candidate_slices,
            "candidate_intervals": self.candidate_intervals,
            "champion": self.champion,
        }
        if self.has_champion:
            out.update(
                champion_metrics=self.champion_metrics,
                champion_slices=self.champion_slices,
                bootstrap=self.bootstrap,
                slice_bootstrap=self.slice_bootstrap,
            )
        return json_object(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            candidate=dict(data.get("candidate") or {}),
            champion=data.get("champion"),
            test_rows=data.get("test_rows"),
            candidate_slices=data.get("candidate_slices"),
            candidate_intervals=data.get("candidate_intervals"),
            champion_metrics=data.get("champion_metrics"),
            champion_slices=data.get("champion_slices"),
            bootstrap=data.get("bootstrap"),
            slice_bootstrap=data.get("slice_bootstrap"),
            skipped=data.get("skipped"),
        )


def evaluate_candidate(
    cfg: ModelConfig,
    test_df: pd.DataFrame,
    candidate: Any,
    champion: Any | None,
    champion_ref: Mapping[str, Any] | None = None,
) -> Evaluation:
    """:func:`compare`, with who the champion is (``champion_ref``: ``{"version", "run_id"}``), JSON-safe."""
    out = json_safe(compare(cfg, test_df, candidate, champion))
    if champion is not None and champion_ref is not None:
        out["champion"] = dict(champion_ref)
    return Evaluation.from_dict(out)


SKIPPED = Evaluation(candidate={}, skipped=SKIPPED_SUITE)


# --------------------------------------------------------------------------------------------- gate


def judge(
    cfg: ModelConfig,
    evaluation: Evaluation,
    *,
    suite_passed: bool,
    model_size_mb: float | None,
    latency_ms: float | None,
) -> GateDecision:
    """The gate's typed decision on what was measured (see :mod:`sluice.evaluation.gate`)."""
    from sluice.evaluation.bootstrap import BootstrapResult
    from sluice.evaluation.gate import GateInputs, evaluate_gate

    boot = evaluation.bootstrap
    inputs = GateInputs(
        candidate_metrics=evaluation.candidate,
        champion_metrics=evaluation.champion_metrics,
        bootstrap=BootstrapResult(**boot) if boot else None,
        candidate_slices=evaluation.candidate_slices,
        champion_slices=evaluation.champion_slices,
        slice_bootstrap=evaluation.slice_bootstrap,
        model_size_mb=model_size_mb,
        latency_ms=latency_ms,
        training_suite_passed=suite_passed,
    )
    return evaluate_gate(cfg.gate, inputs)
