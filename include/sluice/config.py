"""Model configuration: one YAML file per model, loaded into frozen, validated objects.

A bad file fails at load with a message that names the file, the key and what was expected, so a data
engineer editing YAML finds the mistake before the scheduler does. This module is imported by DAG files,
so it must stay light: no pandas, sklearn or mlflow at import time. Checks that need an import (does the
estimator class exist?) run in ``check_imports`` -- from the CLI, CI and every task -- not at DAG parse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluice.runtime import REPO_ROOT

MODELS_DIR = REPO_ROOT / "include" / "models"
EXPECTATIONS_DIR = REPO_ROOT / "include" / "expectations"

#: metric name -> (task type, bounded to [0, 1], greater is better)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "roc_auc": ("classification", True, True),
    "pr_auc": ("classification", True, True),
    "f1": ("classification", True, True),
    "precision": ("classification", True, True),
    "recall": ("classification", True, True),
    "accuracy": ("classification", True, True),
    "precision_at_k": ("classification", True, True),
    "log_loss": ("classification", False, False),
    "brier": ("classification", True, False),
    "rmse": ("regression", False, False),
    "mae": ("regression", False, False),
    "r2": ("regression", False, True),
}
#: the pipelines every model gets, one DAG file each in dags/: ``<model>_<kind>``
DAG_KINDS = ("features", "training", "deployment", "batch_inference", "monitoring")
SCHEDULE_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly"}
_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_DOTTED = r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$"
_EMAIL = r"^[^@\s]+@[^@\s]+$"


#: The serving latency budget from the model: LATENCY_MULTIPLE x its in-process single-row predict p95 (a busy
#: serving process, a neighbour) + HTTP_OVERHEAD_MS (what one single-row request adds on a busy 2-core machine:
#: JSON parse, validation, response). ``sluice init`` drafts ``max_latency_ms_p95`` with it.
LATENCY_MULTIPLE = 5.0
HTTP_OVERHEAD_MS = 50.0


def latency_budget_ms(model_p95_ms: float) -> float:
    """``LATENCY_MULTIPLE`` x the model's in-process single-row p95 + ``HTTP_OVERHEAD_MS``, whole ms up."""
    return float(math.ceil(LATENCY_MULTIPLE * model_p95_ms + HTTP_OVERHEAD_MS))


class ConfigError(ValueError):
    """A model config is invalid; the message names the file, the key and what was expected."""


class _Frozen(BaseModel):
    # use_attribute_docstrings: the docstring under a field is its description, which the generated config
    # reference (docs/config-reference.md, ``python -m sluice config reference``) prints next to it.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, use_attribute_docstrings=True)


Name = Annotated[str, Field(pattern=_NAME)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class DatasetConfig(_Frozen):
    """The raw events a producer lands: ``<lake>/landing/<name>/ds=YYYY-MM-DD/`` holds the data files of one
    day, then an empty ``_SUCCESS`` marker; a partition without ``_SUCCESS`` is still being written."""

    name: Name
    """The dataset's folder under ``landing/``."""
    format: Literal["parquet", "csv"] = "parquet"
    """The data files' format (every file of a partition is read and concatenated)."""
    id_column: str
    """A column unique per event, without nulls; the validation suite checks it, the labels join on it."""
    timestamp_column: str
    """The event time; every value must lie inside its partition's day."""
    wait_timeout_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 6 * 60
    """The landing sensor gives up after this long (landing data is usually late, not missing)."""


class LabelsConfig(_Frozen):
    """Ground truth, landed like events: the labels of the events of day D in
    ``<lake>/labels/<dataset>/ds=D+delay_days/`` with ``_SUCCESS``, one row per event (see "Labels" above)."""

    dataset: Name
    """The labels' folder under ``labels/``."""
    column: str
    """The label column (0/1 for classification, a number for regression)."""
    delay_days: Annotated[int, Field(ge=0, le=365)]
    """Days between an event and its label: labels of event day D land in ``ds = D + delay_days``."""
    join_key: str
    """The column the labels share with the events (usually ``dataset.id_column``)."""


class TransformConfig(_Frozen):
    """One pure feature transform, ``fn(df, **params) -> df``, named by dotted path."""

    fn: Annotated[str, Field(pattern=_DOTTED)]
    """``package.module:function`` (``sluice.features.transforms`` holds the generic ones)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``fn``."""


class FeaturesConfig(_Frozen):
    """The feature partition ``features/<feature_set>/ds=D`` built from a validated landing partition."""

    feature_set: Name
    """The feature partitions' folder under ``features/`` (bump the suffix when the features change)."""
    transforms: tuple[TransformConfig, ...] = ()
    """Applied in order to the landing frame before the columns below are selected."""
    numeric: tuple[str, ...]
    """Numeric model inputs (nulls imputed with the training median)."""
    categorical: tuple[str, ...] = ()
    """Categorical model inputs (one-hot; nulls are a category of their own, rare values pooled)."""
    passthrough: tuple[str, ...] = ()
    """Columns carried into the feature partition untouched (id, timestamp, slice keys)."""

    @model_validator(mode="after")
    def _disjoint(self) -> FeaturesConfig:
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        if not self.numeric and not self.categorical:
            raise ValueError("at least one numeric or categorical feature is required")
        return self


class ValidationConfig(_Frozen):
    """The GX suite every landing partition must pass before it is published (else quarantined)."""

    suite: Name
    """``include/expectations/<suite>.json``, proposed by ``sluice suite MODEL`` and reviewed."""
    evidence_sample_rows: Annotated[int, Field(ge=1, le=1000)] = 20
    """Failing values kept as evidence per failed expectation (a partition is validated in one pass anyway)."""


class EstimatorConfig(_Frozen):
    """The scikit-learn-style estimator, behind the platform's preprocessing (impute, one-hot)."""

    class_path: Annotated[str, Field(pattern=_DOTTED)]
    """Dotted path of a class with ``fit`` (e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor arguments; ``random_state`` defaults to ``training.seed`` when the class takes one."""


class SplitConfig(_Frozen):
    """Time-based split: the oldest share trains, the newest tests."""

    validation: Fraction = 0.15
    """Share of the window (after the training rows, in time) held out for validation."""
    test: Fraction = 0.15
    """Share of the window (the newest rows) the gate compares candidate and champion on."""

    @model_validator(mode="after")
    def _sum(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError(f"validation + test must be < 0.9, got {self.validation + self.test:.2f}")
        return self


class TrainingConfig(_Frozen):
    """Which labelled feature partitions train a candidate, and how (``sluice init`` sizes the window)."""

    window_days: Annotated[int, Field(ge=1, le=3650)]
    """Days of labelled feature partitions in a training snapshot, ending at the run's ``end_ds``.
    ``sluice init`` drafts enough days for about 5,000 rows (14 to 90 days)."""
    min_new_partitions: Annotated[int, Field(ge=1)] = 1
    """A scheduled retrain runs only when this many labelled partitions arrived since the last one."""
    min_rows: Annotated[int, Field(ge=1)] = 1000
    """The training-set suite refuses a snapshot with fewer rows. ``sluice init`` drafts half the rows of a
    window at the observed volume."""
    positive_share: tuple[Fraction, Fraction] = (0.01, 0.99)
    """The training-set suite's bounds on the share of positive labels (classification)."""
    seed: int = 0
    """Seeds the estimator (``random_state``) and the bootstrap: a rerun gives the same model."""
    split: SplitConfig = SplitConfig()
    """How the window is split in time."""
    estimator: EstimatorConfig
    """The model class and its parameters."""


class ApprovalConfig(_Frozen):
    """A person decides an INCONCLUSIVE gate: the training run waits ``timeout_hours`` for Approve / Reject in the
    Airflow UI (Browse > Required Actions); no answer in time counts as Reject. ``enabled: false``: INCONCLUSIVE
    fails red like FAIL."""

    enabled: bool = True
    """Ask a person on INCONCLUSIVE; false: INCONCLUSIVE fails like FAIL."""
    timeout_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 72.0
    """How long the run waits for an answer before it counts as Reject."""


class GateConfig(_Frozen):
    """Thresholds for promotion. An empty gate is a failure at run time, never a silent pass."""

    primary_metric: str
    """The metric the comparative rules (non-inferiority, improvement, slices) judge; listed in ``metrics``."""
    metrics: tuple[str, ...]
    """Metrics computed on the test split and recorded with the decision."""
    floors: dict[str, float] = Field(default_factory=dict)
    """Absolute limits, metric -> value: a floor for higher-is-better metrics, a ceiling for the others
    (log_loss, brier, rmse, mae). The only rules a first model (no champion) is judged by."""
    non_inferiority_margin: Annotated[float, Field(ge=0, lt=1)] | None = None
    """The candidate may be at most this much worse than the champion on the primary metric (bootstrap
    interval: entirely above -margin PASS, entirely below FAIL, else INCONCLUSIVE)."""
    min_improvement: Annotated[float, Field(ge=0, lt=1)] | None = None
    """The candidate must beat the champion by more than this (same interval logic)."""
    slice_columns: tuple[str, ...] = ()
    """Columns whose every value is a slice the candidate must not regress on."""
    slice_max_regression: Annotated[float, Field(gt=0, lt=1)] | None = None
    """Largest regression of the primary metric on any slice (champion - candidate). A slice value fails the
    gate only when its regression beyond this is significant (paired bootstrap on its rows, Holm-corrected
    across the slice values judged, at ``slice_alpha``) and it has ``slice_min_rows`` rows and
    ``slice_min_positives`` of each class; the others are reported, never decisive."""
    slice_min_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """Test rows a slice value needs before its regression can fail the gate. Smaller slice values are listed
    in the gate report (too small), not judged: an AUC on 100 rows moves by 0.1 between two similar models."""
    slice_min_positives: Annotated[int, Field(ge=0, le=1_000_000)] = 30
    """Classification: test rows of each class (positives, and as many negatives) a slice value needs to be
    judged; a ranking metric on a handful of positives is noise. Ignored for regression."""
    slice_alpha: Annotated[float, Field(gt=0, le=0.5)] = 0.05
    """Family-wise error rate of the slice rule: the chance that any slice value judged is called a regression
    beyond ``slice_max_regression`` when none is (one-sided bootstrap p-values, Holm's step-down correction).
    With ``bootstrap_samples`` B no p-value is below 1/(B+1): more than (B+1) x alpha slice values cannot all be
    judged (the gate then fails and says how many resamples it needs)."""
    max_model_mb: Annotated[float, Field(gt=0)] | None = None
    """Budget on the pickled model's size, MiB."""
    max_latency_ms: Annotated[float, Field(gt=0)] | None = None
    """Budget on the in-process single-row predict p95 measured at training, ms."""
    bootstrap_samples: Annotated[int, Field(ge=100, le=100_000)] = 1000
    """Paired bootstrap resamples of the test split for the comparative rules' intervals."""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    """Two-sided confidence of those intervals."""
    approval: ApprovalConfig = ApprovalConfig()
    """Who decides an INCONCLUSIVE gate."""


class InfraValidationConfig(_Frozen):
    """The budget a version must meet in a fresh serving process before anything is pushed."""

    sample_rows: Annotated[int, Field(ge=1, le=10_000)] = 200
    """Rows of the latest feature partition sent one request each (schema and latency)."""
    max_latency_ms_p95: Annotated[float, Field(gt=0)] = 50.0
    """p95 of those single-row HTTP requests (best of up to 3 rounds), ms. 50 is a fixed fallback sized for
    the demo on an idle machine; ``sluice init`` drafts it from the model: 5 x the in-process single-row p95
    of a model fitted on the landed rows + 50 ms of HTTP (``sluice.config.latency_budget_ms``)."""
    max_memory_mb: Annotated[float, Field(gt=0)] = 1024.0
    """Peak resident memory (VmHWM) of the serving process, MB."""
    startup_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    """The server must answer /ping with the version within this long."""


class LocalTargetConfig(_Frozen):
    """A model server on 127.0.0.1; ``port`` is the stable address (``$SLUICE_SERVING_PORT_<MODEL>`` overrides)."""

    port: Annotated[int, Field(ge=1024, le=65535)] = 8600
    """The stable address clients call; blue/green servers run behind it."""
    drain_seconds: Annotated[float, Field(ge=0, le=300)] = 2.0
    """Requests still being answered get this long on the old server after the switch."""


class SageMakerTargetConfig(_Frozen):
    """A SageMaker real-time endpoint; the model artifact is uploaded to ``artifact_uri`` as model.tar.gz."""

    endpoint_name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
    """The endpoint updated in place (UpdateEndpoint)."""
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")]
    """The execution role SageMaker assumes."""
    image_uri: Annotated[str, Field(min_length=1)]
    """The serving container image."""
    artifact_uri: Annotated[str, Field(pattern=r"^s3://[^/]+(/.*)?$")]
    """Where model.tar.gz is uploaded."""
    region: str = "us-east-1"
    """AWS region of the endpoint."""
    instance_type: str = "ml.m5.large"
    """Instance type of the production variant."""
    instance_count: Annotated[int, Field(ge=1)] = 1
    """Instances of the production variant."""
    wait_timeout_s: Annotated[float, Field(gt=0)] = 1800.0
    """The deploy task (deferred to the triggerer) waits this long for InService."""
    poll_interval_s: Annotated[float, Field(gt=0)] = 30.0
    """How often the trigger asks for the endpoint's status."""


class DeployConfig(_Frozen):
    """Where a champion serves, and the checks before and after it does."""

    target: Literal["local", "sagemaker", "batch"] = "batch"
    """``batch``: scored by the batch-inference DAG only; ``local``: a model server on this host;
    ``sagemaker``: a real-time endpoint (needs the ``sagemaker`` section)."""
    infra_validation: InfraValidationConfig = InfraValidationConfig()
    """The budget checked in a fresh serving process before any deployment."""
    smoke_rows: Annotated[int, Field(ge=1, le=1000)] = 20
    """Rows sent to the live address after a deployment; a failure rolls back."""
    local: LocalTargetConfig = LocalTargetConfig()
    """Settings of the ``local`` target."""
    sagemaker: SageMakerTargetConfig | None = None
    """Settings of the ``sagemaker`` target."""
    shadow: Literal["off", "while_waiting", "always"] = "while_waiting"
    """Shadow scoring by the batch-inference DAG into ``shadow/<model>/v<version>/ds=D`` (never served):
    ``while_waiting``: the ``challenger`` while it waits for deployment; ``always``: also the previous
    champion after a deployment, so the live comparison goes on; ``off``: never. Scored rows paired with
    the champion's predictions and the labels that arrive become live evidence (docs/serving.md)."""
    require_shadow_days: Annotated[int, Field(ge=0, le=365)] = 0
    """No deployment of a challenger until this many of its shadow days have labels and the live paired
    comparison (the gate's bootstrap, primary metric) does not say it is worse than the champion. 0: shadow
    evidence is shown in the view and the mails but never required. Rollbacks are exempt."""
    shadow_margin: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """The challenger counts as worse live when the whole interval of challenger - champion (primary metric,
    oriented so positive is better) lies below ``-shadow_margin``."""

    @model_validator(mode="after")
    def _target_section(self) -> DeployConfig:
        if self.target == "sagemaker" and self.sagemaker is None:
            raise ValueError(
                "target 'sagemaker' needs a 'sagemaker:' section with endpoint_name, role_arn, image_uri, artifact_uri"
            )
        return self

    @model_validator(mode="after")
    def _shadow_needed(self) -> DeployConfig:
        if self.require_shadow_days and self.shadow == "off":
            raise ValueError(
                f"require_shadow_days: {self.require_shadow_days} needs shadow scoring, but shadow is 'off'; "
                "set shadow: while_waiting (or always), or require_shadow_days: 0"
            )
        return self


class AlertsConfig(_Frozen):
    """Who is mailed: quarantines, gate decisions, failed deployments, drift and decay."""

    emails: tuple[Annotated[str, Field(pattern=_EMAIL)], ...]
    """At least one recipient."""

    @field_validator("emails")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one recipient is required: a gate that fails silently is not a gate")
        return v


class PersistenceConfig(_Frozen):
    """Drift must show in ``k`` of the last ``n`` intervals before it counts (1 of 1: the first interval)."""

    k: Annotated[int, Field(ge=1, le=365)] = 1
    """Intervals out of the last ``n`` that must show it."""
    n: Annotated[int, Field(ge=1, le=365)] = 1
    """The intervals looked back over."""

    @model_validator(mode="after")
    def _k_within_n(self) -> PersistenceConfig:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n}): drift in k of the last n intervals")
        return self


class SequentialConfig(_Frozen):
    """The pooled check of live performance (``sluice.monitoring.sequential``): a one-sided CUSUM of the labelled
    intervals' drops below the serving version's per-interval test metric, so that a slow decline that no single
    interval shows is flagged within a bounded number of intervals.

    Each interval adds ``(drop - allowance) / sd`` to the sum (never below 0); it flags when the sum reaches
    ``threshold``. The allowance is ``min_drop + reference_z`` standard errors of the reference (its test
    intervals' sd over the square root of their number: the reference is itself an estimate, and its error
    is the same on every interval, so it is absorbed per interval, not once) ``+ allowance_sd`` sd. The sd
    pools the test intervals' sd with the live intervals' successive differences (insensitive to a slow
    trend). The sum runs over the intervals judged against one version since its last retrain."""

    enabled: bool = True
    """Run the pooled check next to the per-interval one; false: only the per-interval check decides."""
    reference_z: Annotated[float, Field(ge=0, le=10)] = 2.0
    """Standard errors of the reference the live mean may fall below it before a drop counts (2: a reference
    from 9 test intervals with sd 0.03 is trusted to 2 x 0.01)."""
    allowance_sd: Annotated[float, Field(ge=0, le=5)] = 0.5
    """The CUSUM's own slack, in interval sd (0.5: tuned to detect a shift of about one sd quickly)."""
    min_drop: Annotated[float, Field(ge=0, le=1)] = 0.0
    """A sustained drop smaller than this (metric units, on top of the reference's error) never counts."""
    threshold: Annotated[float, Field(gt=0, le=100)] = 5.0
    """The CUSUM in sd units from which the decline is flagged (5: on a stationary stream about 0.04 false
    alarms per 100 intervals, measured in tests/unit/monitoring/test_sequential.py)."""


class PerformanceConfig(_Frozen):
    """Live performance once labels arrive: decay when ``metric`` is ``max_drop`` worse than the champion's test."""

    metric: str | None = None
    """The live metric; null: the gate's primary metric."""
    max_drop: Annotated[float, Field(gt=0)] = 0.05
    """Absolute, in the metric's units (0.05 of roc_auc; for log_loss an increase of 0.05)."""
    min_rows: Annotated[int, Field(ge=1)] = 500
    """Fewer labelled rows in an interval than this: too few to judge, never a decay. 500 is a fixed fallback
    sized for the demo (about 1,000 rows a day); ``sluice init`` drafts 80% of a median interval's labelled rows
    (at least 30), so that an ordinary interval is judged and a thin one is not."""
    persistence: PersistenceConfig = PersistenceConfig()
    """Per-interval decay must show in k of the last n labelled intervals before it starts a retrain (1 of 1:
    the first). A pooled (sequential) alarm is persistent evidence by construction and needs no k of n."""
    sequential: SequentialConfig = SequentialConfig()
    """The pooled check over the labelled intervals of the serving version (a one-sided CUSUM)."""


class MonitoringConfig(_Frozen):
    """Drift and live-performance checks against the champion's reference profile (``sluice.monitoring``).

    A feature drifts when its Holm- (or BH-) adjusted p-value is below ``alpha`` and the change is large
    enough to matter: a mean shift of at least ``effect_size_floor`` reference standard deviations (numeric),
    a category share moving by at least ``share_shift_floor`` or unseen values taking at least
    ``unseen_share_threshold`` of the rows (categorical), or a PSI of at least ``psi_threshold``; a clustered
    numeric feature (rows of an interval not independent) when its interval mean is ``interval_z_threshold``
    sd of the reference's interval means away from them. An interval
    drifts when the drifted features carry at least ``min_drifted_weight`` of the feature importance, when a
    feature drifted by unseen values (whatever its weight), or when the score distribution drifts
    (``prediction_psi_threshold``).
    """

    alpha: Fraction = 0.01
    """Significance level of the per-feature tests, after the multiple-testing correction."""
    correction: Literal["holm", "bh"] = "holm"
    """Multiple-testing correction over the features: Holm (family-wise) or Benjamini-Hochberg (FDR)."""
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    """A feature's population stability index from which it drifts (with a significant test)."""
    effect_size_floor: Annotated[float, Field(gt=0)] = 0.2
    """Smallest mean shift of a numeric feature that counts, in reference standard deviations."""
    share_shift_floor: Fraction = 0.05
    """Smallest move of a category's share that counts."""
    unseen_share_threshold: Fraction = 0.05
    """Share of rows with categories the reference never saw from which a feature drifts."""
    min_drifted_weight: Annotated[float, Field(gt=0, le=1)] = 0.05
    """Share of the feature importance the drifted features must carry for the interval to drift (0.05: one
    feature with 5% of the importance suffices, and one of up to 20 equally weighted ones)."""
    prediction_psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    """PSI of the score distribution from which the interval drifts whatever the features do."""
    interval_z_threshold: Annotated[float, Field(gt=0)] = 3.0
    """A numeric feature (or the scores) whose mean moved between the reference's intervals by at least
    effect_size_floor sd is "clustered" (its rows share e.g. an hourly reading): it drifts only when the
    interval's mean lies this many sd of the reference's interval means away from their mean. Live
    performance uses the same band: a decay must also exceed this many sd of the test intervals' metric."""
    persistence: PersistenceConfig = PersistenceConfig()
    """Drift must show in k of the last n intervals before a retrain starts."""
    cooldown_days: Annotated[int, Field(ge=0, le=365)] = 3
    """No retrain within this many days of another, before or after the interval (intervals are judged out of
    order: an earlier interval judged after a later one that retrained is held too)."""
    performance: PerformanceConfig = PerformanceConfig()
    """Live performance once the labels arrive."""
    label_wait_days: Annotated[int, Field(ge=0, le=365)] = 1
    """Extra days to wait after labels.delay_days before judging live performance (late labels)."""
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """How often the drift sensor, deferred to the triggerer, looks for the interval's predictions (one listing
    of the lake each time): the drift check starts up to this many seconds after the batch scoring lands."""
    exclude_features: dict[str, Annotated[str, Field(min_length=1)]] = {}
    """Features the drift check leaves out, with the reason shown in every report, e.g.
    {origin_event_count: "a count of today's events, a new value every day by design"}. Calendar parts of the
    timestamp that cannot vary within one interval (dayofweek of a daily model) are left out without listing."""


class ModelConfig(_Frozen):
    """One model: ``include/models/<name>.yaml`` (or ``$SLUICE_MODELS_DIR``), five DAGs ``<name>_<kind>``."""

    name: Name
    """The model's name: DAG ids, the registered model, lake folders."""
    owner: str
    """The team that owns the model (shown in mails and the UI)."""
    description: str = ""
    """One line on what the model predicts."""
    task: Literal["classification", "regression"]
    """Binary classification (label 0/1, scores are probabilities) or regression."""
    schedule: str = "@daily"
    """A cron expression or an Airflow preset; one data interval is one partition ``ds``."""
    start_date: dt.date
    """The first data interval."""
    end_date: dt.date | None = None
    """The last data interval (null: open-ended)."""
    catchup: bool = False
    """Off by default: history is loaded with backfills (UI or `airflow backfill create`). With catchup on,
    a scheduled run colliding with a backfill run on the same logical date stops Airflow 3.3's scheduler
    from creating runs for the DAG (unique key on dag_id + logical_date); see docs/architecture.md."""
    tags: tuple[str, ...] = ()
    """Airflow DAG tags."""
    dataset: DatasetConfig
    """The landed events."""
    labels: LabelsConfig
    """The landed ground truth and how it joins."""
    features: FeaturesConfig
    """How a validated landing partition becomes model inputs."""
    validation: ValidationConfig
    """The landing partitions' GX suite."""
    training: TrainingConfig
    """The training window and the estimator."""
    gate: GateConfig
    """Promotion thresholds."""
    deploy: DeployConfig = DeployConfig()
    """Serving target and its checks."""
    alerts: AlertsConfig
    """Mail recipients."""
    monitoring: MonitoringConfig = MonitoringConfig()
    """Drift and live-performance settings."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if v in SCHEDULE_PRESETS:
            return v
        from croniter import croniter  # light, and an Airflow dependency anyway

        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is neither a cron expression nor one of {sorted(SCHEDULE_PRESETS)}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelConfig:
        if self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        g = self.gate
        for m in (g.primary_metric, *g.metrics, *g.floors):
            if m not in METRICS:
                raise ValueError(f"gate: unknown metric {m!r}; known metrics: {sorted(METRICS)}")
            if METRICS[m][0] != self.task:
                raise ValueError(f"gate: metric {m!r} is for {METRICS[m][0]}, but task is {self.task!r}")
        if g.primary_metric not in g.metrics:
            raise ValueError(f"gate: primary_metric {g.primary_metric!r} must also be listed in gate.metrics")
        for m, v in g.floors.items():
            if METRICS[m][1] and not 0 <= v <= 1:
                raise ValueError(f"gate.floors.{m}: must be between 0 and 1, got {v}")
        return self

    @model_validator(mode="after")
    def _monitoring_metric(self) -> ModelConfig:
        m = self.monitoring.performance.metric
        if m is not None:
            if m not in METRICS:
                raise ValueError(
                    f"monitoring.performance.metric: unknown metric {m!r}; known metrics: {sorted(METRICS)}"
                )
            if METRICS[m][0] != self.task:
                raise ValueError(
                    f"monitoring.performance.metric: {m!r} is for {METRICS[m][0]}, but task is {self.task!r}"
                )
        return self

    @model_validator(mode="after")
    def _monitoring_features(self) -> ModelConfig:
        features = {*self.features.numeric, *self.features.categorical}
        unknown = sorted(set(self.monitoring.exclude_features) - features)
        if unknown:
            raise ValueError(
                f"monitoring.exclude_features: {unknown} are not features of this model "
                f"(features.numeric and features.categorical: {sorted(features)})"
            )
        return self

    @property
    def monitoring_metric(self) -> str:
        """The live-performance metric: ``monitoring.performance.metric``, else the gate's primary metric."""
        return self.monitoring.performance.metric or self.gate.primary_metric

    @property
    def config_hash(self) -> str:
        """Stable hash of the validated content, for lineage tags on every run."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def dag_id(self, kind: str) -> str:
        return f"{self.name}_{kind}"


def _describe(err: Mapping[str, Any], section: type[BaseModel] | None) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        allowed = sorted(section.model_fields) if section is not None else []
        return f"unknown key (allowed keys here: {', '.join(allowed)})"
    if kind == "literal_error":
        return f"{msg}, got {value!r}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} does not match the expected form {err['ctx']['pattern']}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{msg.lower()}, got {type(value).__name__} {value!r}"
    msg = msg.removeprefix("Value error, ")
    return f"{msg}, got {value!r}" if kind.startswith(("greater", "less")) else msg


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk the model tree along ``loc`` (minus the last key) to list allowed keys in the message."""
    model: type[BaseModel] = ModelConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        for candidate in (ann, *getattr(ann, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
            inner = getattr(candidate, "__args__", ())
            hit = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
            if hit:
                model = hit[0]
                break
        else:
            return None
    return model


def parse_model_config(data: Any, source: str) -> ModelConfig:
    """Validate a parsed YAML mapping; ``source`` (a path) goes into every error message."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{source}: {key}: {_describe(err, _section_for(loc))}")
        raise ConfigError("\n".join(lines)) from None


def load_model_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read model config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_model_config(data, str(path))


def models_dir() -> Path:
    """Where the model configs live: ``$SLUICE_MODELS_DIR`` (configs kept outside the repository, a test
    stack of its own), else ``include/models``. DAG files, tasks and servers all read it the same way."""
    return Path(os.environ.get("SLUICE_MODELS_DIR") or MODELS_DIR)


def load_model_configs(directory: str | Path | None = None) -> dict[str, ModelConfig]:
    """All ``*.yaml`` in ``directory`` (default :func:`models_dir`), keyed by model name; duplicates are an error."""
    directory = directory or models_dir()
    configs: dict[str, ModelConfig] = {}
    origin: dict[str, Path] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        cfg = load_model_config(path)
        if cfg.name in configs:
            raise ConfigError(f"{path}: name: duplicate model name {cfg.name!r}, already defined in {origin[cfg.name]}")
        configs[cfg.name] = cfg
        origin[cfg.name] = path
    return configs


def get_model_config(name: str, directory: str | Path | None = None) -> ModelConfig:
    directory = directory or models_dir()
    configs = load_model_configs(directory)
    if name not in configs:
        raise ConfigError(f"no model named {name!r} in {directory}; known models: {sorted(configs)}")
    return configs[name]


def resolve(dotted: str) -> Any:
    """Import ``pkg.module:attr`` or ``pkg.module.attr``."""
    module, _, attr = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def check_imports(cfg: ModelConfig, source: str = "") -> None:
    """Checks that need imports: the estimator class and every transform function must exist."""
    where = source or f"model {cfg.name!r}"
    targets: Iterable[tuple[str, str]] = [("training.estimator.class_path", cfg.training.estimator.class_path)]
    targets = [*targets, *((f"features.transforms.{i}.fn", t.fn) for i, t in enumerate(cfg.features.transforms))]
    for key, dotted in targets:
        try:
            obj = resolve(dotted)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{where}: {key}: cannot import {dotted!r} ({exc})") from None
        if key.startswith("training") and not (isinstance(obj, type) and hasattr(obj, "fit")):
            raise ConfigError(f"{where}: {key}: {dotted!r} is not an estimator class with a fit method")
        if key.startswith("features") and not callable(obj):
            raise ConfigError(f"{where}: {key}: {dotted!r} is not callable")
    suite = EXPECTATIONS_DIR / f"{cfg.validation.suite}.json"
    if not suite.exists():
        raise ConfigError(f"{where}: validation.suite: no suite file {suite}; run `make suite MODEL={cfg.name}`")
