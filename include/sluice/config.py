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


class ConfigError(ValueError):
    """A model config is invalid; the message names the file, the key and what was expected."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


Name = Annotated[str, Field(pattern=_NAME)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class DatasetConfig(_Frozen):
    """The raw landing data: ``<lake>/landing/<name>/ds=YYYY-MM-DD/``."""

    name: Name
    format: Literal["parquet", "csv"] = "parquet"
    id_column: str
    timestamp_column: str
    # The sensor gives up after this long; landing data is usually late, not missing.
    wait_timeout_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 6 * 60


class LabelsConfig(_Frozen):
    """Ground truth arriving ``delay_days`` after the events, in ``<lake>/labels/<dataset>/ds=D/``."""

    dataset: Name
    column: str
    delay_days: Annotated[int, Field(ge=0, le=365)]
    join_key: str


class TransformConfig(_Frozen):
    """One pure feature transform, ``fn(df, **params) -> df``, named by dotted path."""

    fn: Annotated[str, Field(pattern=_DOTTED)]
    params: dict[str, Any] = Field(default_factory=dict)


class FeaturesConfig(_Frozen):
    feature_set: Name
    transforms: tuple[TransformConfig, ...] = ()
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    # Columns carried into the feature partition untouched (id, timestamp, slice keys).
    passthrough: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> FeaturesConfig:
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        if not self.numeric and not self.categorical:
            raise ValueError("at least one numeric or categorical feature is required")
        return self


class ValidationConfig(_Frozen):
    suite: Name
    # A partition bigger than this is validated in one pass anyway; the knob bounds the detailed
    # evidence pass on failure (GX COMPLETE results grow with the row count).
    evidence_sample_rows: Annotated[int, Field(ge=1, le=1000)] = 20


class EstimatorConfig(_Frozen):
    class_path: Annotated[str, Field(pattern=_DOTTED)]
    params: dict[str, Any] = Field(default_factory=dict)


class SplitConfig(_Frozen):
    """Time-based split: the oldest share trains, the newest tests."""

    validation: Fraction = 0.15
    test: Fraction = 0.15

    @model_validator(mode="after")
    def _sum(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError(f"validation + test must be < 0.9, got {self.validation + self.test:.2f}")
        return self


class TrainingConfig(_Frozen):
    window_days: Annotated[int, Field(ge=1, le=3650)]
    min_new_partitions: Annotated[int, Field(ge=1)] = 1
    min_rows: Annotated[int, Field(ge=1)] = 1000
    # The training-set suite's bounds on the share of positive labels (classification).
    positive_share: tuple[Fraction, Fraction] = (0.01, 0.99)
    seed: int = 0
    split: SplitConfig = SplitConfig()
    estimator: EstimatorConfig


class ApprovalConfig(_Frozen):
    """A person decides an INCONCLUSIVE gate: the training run waits ``timeout_hours`` for Approve / Reject in the
    Airflow UI (Browse > Required Actions); no answer in time counts as Reject. ``enabled: false``: INCONCLUSIVE
    fails red like FAIL."""

    enabled: bool = True
    timeout_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 72.0


class GateConfig(_Frozen):
    """Thresholds for promotion. An empty gate is a failure at run time, never a silent pass."""

    primary_metric: str
    metrics: tuple[str, ...]
    floors: dict[str, float] = Field(default_factory=dict)
    non_inferiority_margin: Annotated[float, Field(ge=0, lt=1)] | None = None
    min_improvement: Annotated[float, Field(ge=0, lt=1)] | None = None
    slice_columns: tuple[str, ...] = ()
    slice_max_regression: Annotated[float, Field(gt=0, lt=1)] | None = None
    max_model_mb: Annotated[float, Field(gt=0)] | None = None
    max_latency_ms: Annotated[float, Field(gt=0)] | None = None
    bootstrap_samples: Annotated[int, Field(ge=100, le=100_000)] = 1000
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    approval: ApprovalConfig = ApprovalConfig()


class InfraValidationConfig(_Frozen):
    """The budget a version must meet in a fresh serving process before anything is pushed."""

    sample_rows: Annotated[int, Field(ge=1, le=10_000)] = 200
    max_latency_ms_p95: Annotated[float, Field(gt=0)] = 50.0
    max_memory_mb: Annotated[float, Field(gt=0)] = 1024.0
    startup_timeout_s: Annotated[float, Field(gt=0)] = 120.0


class LocalTargetConfig(_Frozen):
    """A model server on 127.0.0.1; ``port`` is the stable address (``$SLUICE_SERVING_PORT_<MODEL>`` overrides)."""

    port: Annotated[int, Field(ge=1024, le=65535)] = 8600
    drain_seconds: Annotated[float, Field(ge=0, le=300)] = 2.0


class SageMakerTargetConfig(_Frozen):
    """A SageMaker real-time endpoint; the model artifact is uploaded to ``artifact_uri`` as model.tar.gz."""

    endpoint_name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")]
    image_uri: Annotated[str, Field(min_length=1)]
    artifact_uri: Annotated[str, Field(pattern=r"^s3://[^/]+(/.*)?$")]
    region: str = "us-east-1"
    instance_type: str = "ml.m5.large"
    instance_count: Annotated[int, Field(ge=1)] = 1
    wait_timeout_s: Annotated[float, Field(gt=0)] = 1800.0
    poll_interval_s: Annotated[float, Field(gt=0)] = 30.0


class DeployConfig(_Frozen):
    target: Literal["local", "sagemaker", "batch"] = "batch"
    infra_validation: InfraValidationConfig = InfraValidationConfig()
    smoke_rows: Annotated[int, Field(ge=1, le=1000)] = 20
    local: LocalTargetConfig = LocalTargetConfig()
    sagemaker: SageMakerTargetConfig | None = None

    @model_validator(mode="after")
    def _target_section(self) -> DeployConfig:
        if self.target == "sagemaker" and self.sagemaker is None:
            raise ValueError(
                "target 'sagemaker' needs a 'sagemaker:' section with endpoint_name, role_arn, image_uri, artifact_uri"
            )
        return self


class AlertsConfig(_Frozen):
    emails: tuple[Annotated[str, Field(pattern=_EMAIL)], ...]

    @field_validator("emails")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one recipient is required: a gate that fails silently is not a gate")
        return v


class PersistenceConfig(_Frozen):
    """Drift must show in ``k`` of the last ``n`` intervals before it counts (1 of 1: the first interval)."""

    k: Annotated[int, Field(ge=1, le=365)] = 1
    n: Annotated[int, Field(ge=1, le=365)] = 1

    @model_validator(mode="after")
    def _k_within_n(self) -> PersistenceConfig:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n}): drift in k of the last n intervals")
        return self


class PerformanceConfig(_Frozen):
    """Live performance once labels arrive: decay when ``metric`` is ``max_drop`` worse than the champion's test."""

    # None: the gate's primary metric.
    metric: str | None = None
    # Absolute, in the metric's units (0.05 of roc_auc; for log_loss an increase of 0.05).
    max_drop: Annotated[float, Field(gt=0)] = 0.05
    # Fewer labelled rows than this: too few to judge, never a decay.
    min_rows: Annotated[int, Field(ge=1)] = 500
    # Decay must show in k of the last n labelled intervals before it starts a retrain (1 of 1: the first).
    persistence: PersistenceConfig = PersistenceConfig()


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
    correction: Literal["holm", "bh"] = "holm"
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    effect_size_floor: Annotated[float, Field(gt=0)] = 0.2
    share_shift_floor: Fraction = 0.05
    unseen_share_threshold: Fraction = 0.05
    # 0.05: one feature with 5% of the importance suffices (and one of up to 20 equally weighted ones).
    min_drifted_weight: Annotated[float, Field(gt=0, le=1)] = 0.05
    prediction_psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    # A numeric feature (or the scores) whose mean moved between the reference's intervals by at least
    # effect_size_floor sd is "clustered" (its rows share e.g. an hourly reading): it drifts only when the
    # interval's mean lies this many sd of the reference's interval means away from their mean. Live
    # performance uses the same band: a decay must also exceed this many sd of the test intervals' metric.
    interval_z_threshold: Annotated[float, Field(gt=0)] = 3.0
    persistence: PersistenceConfig = PersistenceConfig()
    # After a retrain, no drift-triggered retrain for this many days.
    cooldown_days: Annotated[int, Field(ge=0, le=365)] = 3
    performance: PerformanceConfig = PerformanceConfig()
    # Extra days to wait after labels.delay_days before judging live performance (late labels).
    label_wait_days: Annotated[int, Field(ge=0, le=365)] = 1
    # Features the drift check leaves out, with the reason shown in every report, e.g.
    # {origin_event_count: "a count of today's events, a new value every day by design"}. Calendar parts of the
    # timestamp that cannot vary within one interval (dayofweek of a daily model) are left out without listing.
    exclude_features: dict[str, Annotated[str, Field(min_length=1)]] = {}


class ModelConfig(_Frozen):
    name: Name
    owner: str
    description: str = ""
    task: Literal["classification", "regression"]
    schedule: str = "@daily"
    start_date: dt.date
    end_date: dt.date | None = None
    # Off by default: history is loaded with backfills (UI or `airflow backfill create`). With catchup on,
    # a scheduled run colliding with a backfill run on the same logical date stops Airflow 3.3's scheduler
    # from creating runs for the DAG (unique key on dag_id + logical_date); see docs/architecture.md.
    catchup: bool = False
    tags: tuple[str, ...] = ()
    dataset: DatasetConfig
    labels: LabelsConfig
    features: FeaturesConfig
    validation: ValidationConfig
    training: TrainingConfig
    gate: GateConfig
    deploy: DeployConfig = DeployConfig()
    alerts: AlertsConfig
    monitoring: MonitoringConfig = MonitoringConfig()

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
