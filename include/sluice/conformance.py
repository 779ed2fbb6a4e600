"""Paper conformance: which principles (P1-P9) and components (C1-C9) of the MLOps architecture of
Kreuzberger, Kühl & Hirschl ("Machine Learning Operations (MLOps): Overview, Definition, and Architecture",
IEEE Access, 2023) one model's pipeline covers, with the evidence, and what is missing.

Evidence is of two kinds, and a row reports both:

- **designed**: what the pipeline defines: tasks of the model's DAGs (id and operator class, from
  ``sluice.airflow.inventory``), its config, and the repository's files (``.ci/run``, the committed suite);
- **exercised**: the last record that shows the part ran: a training run's lineage tags and the registered
  versions (MLflow), the newest features, predictions and monitoring reports (the lake).

A row is ``covered`` when everything it needs is designed and a record shows it ran, ``designed`` when it is
defined but no run has exercised it yet, ``partial`` when some of what it needs is missing, ``missing`` when
none of it is there. Nothing here imports Airflow or MLflow: the caller passes the DAG facts and the records.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sluice.config import ModelConfig, models_dir
from sluice.lake import Lake
from sluice.runtime import REPO_ROOT

PAPER = (
    "Kreuzberger, Kühl & Hirschl, Machine Learning Operations (MLOps): Overview, Definition, and Architecture, "
    "IEEE Access 11, 2023"
)
Status = Literal["covered", "designed", "partial", "missing"]
STATUSES: tuple[Status, ...] = ("covered", "designed", "partial", "missing")


@dataclass(frozen=True)
class TaskFacts:
    task_id: str
    operator: str
    outlets: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagFacts:
    dag_id: str
    schedule: str
    tasks: tuple[TaskFacts, ...]


@dataclass(frozen=True)
class Records:
    """What the pipeline has recorded for one model (empty where a store could not be read: see ``errors``)."""

    last_training: dict[str, str] = field(default_factory=dict)  # tags of the newest registered version
    versions: int = 0
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version
    ledger_entries: int = 0
    newest: dict[str, str] = field(default_factory=dict)  # "features" / "predictions" / "drift" / ... -> ds
    features_sha256: str = ""
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    status: Status
    evidence: tuple[str, ...]
    exercised: str | None
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    model: str
    rows: tuple[Row, ...]
    errors: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.rows) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "paper": PAPER, "counts": self.counts(), **asdict(self)}


# ---------------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at for one model."""

    cfg: ModelConfig
    dags: Mapping[str, DagFacts]
    records: Records
    repo: Path

    def task(self, kind: str, *operators: str) -> TaskFacts | None:
        dag = self.dags.get(self.cfg.dag_id(kind))
        return next((t for t in dag.tasks if t.operator in operators), None) if dag else None

    def tasks(self, kind: str, *operators: str) -> list[TaskFacts]:
        dag = self.dags.get(self.cfg.dag_id(kind))
        return [t for t in dag.tasks if t.operator in operators] if dag else []

    def schedule(self, kind: str) -> str | None:
        dag = self.dags.get(self.cfg.dag_id(kind))
        return dag.schedule if dag else None


#: (what is needed, a function giving the evidence when it is there, or None)
Need = tuple[str, Callable[[Facts], str | None]]


def _task(kind: str, *operators: str) -> Callable[[Facts], str | None]:
    def find(f: Facts) -> str | None:
        found = f.tasks(kind, *operators)
        return ", ".join(f"{f.cfg.dag_id(kind)}.{t.task_id} ({t.operator})" for t in found) or None

    return find


def _on_asset(kind: str, uri: Callable[[ModelConfig], str]) -> Callable[[Facts], str | None]:
    def find(f: Facts) -> str | None:
        schedule = f.schedule(kind) or ""
        return f"{f.cfg.dag_id(kind)} runs on {uri(f.cfg)}" if uri(f.cfg) in schedule else None

    return find


def _file(relative: str | Callable[[ModelConfig], str]) -> Callable[[Facts], str | None]:
    def find(f: Facts) -> str | None:
        rel = relative(f.cfg) if callable(relative) else relative
        return rel if (f.repo / rel).is_file() else None

    return find


def _model_file(f: Facts) -> str | None:
    path = models_dir() / f"{f.cfg.name}.yaml"
    if not path.is_file():
        return None
    return str(path.relative_to(f.repo)) if path.is_relative_to(f.repo) else str(path)


def _suite(f: Facts) -> str | None:
    rel = f"include/expectations/{f.cfg.validation.suite}.json"
    return rel if (f.repo / rel).is_file() else None


def _all_dags(f: Facts) -> str | None:
    kinds = ("features", "training", "deployment", "batch_inference", "monitoring")
    present = [f.cfg.dag_id(k) for k in kinds if f.cfg.dag_id(k) in f.dags]
    return ", ".join(present) if len(present) == len(kinds) else None


def _config(describe: Callable[[ModelConfig], str | None]) -> Callable[[Facts], str | None]:
    return lambda f: describe(f.cfg)


def _lineage(*keys: str) -> Callable[[Records], str | None]:
    def find(r: Records) -> str | None:
        tags = r.last_training
        return ", ".join(f"{k}={tags[k][:12]}" for k in keys) if tags and all(tags.get(k) for k in keys) else None

    return find


def _ci(f: Facts) -> str | None:
    run = f.repo / ".ci" / "run"
    return ".ci/run (make lint, make test)" if run.is_file() and "make test" in run.read_text() else None


def _git(f: Facts) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(f.repo), "ls-files", "--error-unmatch", "dags", "include/sluice"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "git: dags/ and include/sluice/ are tracked" if out.returncode == 0 else None


# ------------------------------------------------------------------------------------ exercised by


def _newest(*kinds: str) -> Callable[[Records], str | None]:
    def find(r: Records) -> str | None:
        seen = [f"{k} ds={r.newest[k]}" for k in kinds if r.newest.get(k)]
        return "; ".join(seen) or None

    return find


def _features_record(r: Records) -> str | None:
    ds = r.newest.get("features")
    return f"features ds={ds} sha256 {r.features_sha256[:12]}" if ds else None


def _training(r: Records) -> str | None:
    tags = r.last_training
    if not tags:
        return None
    run = tags.get("airflow.run_id") or "?"
    return f"version {tags.get('version', '?')} trained by {tags.get('airflow.dag_id', '?')} run {run}"


def _registry(r: Records) -> str | None:
    if not r.versions:
        return None
    aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(r.aliases.items())) or "no alias"
    return f"{r.versions} registered versions ({aliases}); {r.ledger_entries} ledger entries"


def _both(*finders: Callable[[Records], str | None]) -> Callable[[Records], str | None]:
    def find(r: Records) -> str | None:
        parts = [p for fn in finders if (p := fn(r))]
        return "; ".join(parts) if len(parts) == len(finders) else None

    return find


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    needs: tuple[Need, ...]
    exercised: Callable[[Records], str | None]


def _features_uri(c: ModelConfig) -> str:
    return f"sluice://features/{c.features.feature_set}"


def _model_uri(c: ModelConfig) -> str:
    return f"sluice://model/{c.name}"


RULES: tuple[Rule, ...] = (
    Rule(
        "P1",
        "CI/CD automation",
        (
            ("the CI script runs the tests", _ci),
            ("infra validation before any deploy", _task("deployment", "InfraValidateOperator")),
            ("deployment starts on the model Asset", _on_asset("deployment", _model_uri)),
            ("deploy and champion switch", _task("deployment", "DeployOperator", "SetChampionOperator")),
        ),
        _newest("predictions"),
    ),
    Rule(
        "P2",
        "Workflow orchestration",
        (
            ("the five DAGs of the loop", _all_dags),
            ("training runs on the features Asset", _on_asset("training", _features_uri)),
        ),
        _newest("features"),
    ),
    Rule(
        "P3",
        "Reproducibility",
        (
            ("a seed for the whole pipeline", _config(lambda c: f"training.seed={c.training.seed}")),
            ("immutable training snapshots (data manifest hash)", _task("training", "TrainModelOperator")),
        ),
        _lineage("data.manifest_sha256", "code.git_sha", "config.hash"),
    ),
    Rule(
        "P4",
        "Versioning of data, model and code",
        (
            ("content-addressed feature partitions", _task("features", "PublishFeaturesOperator")),
            ("the data suite is committed", _suite),
            ("model versions registered", _task("training", "PromoteModelOperator")),
            ("code under version control", _git),
        ),
        _both(_newest("features"), _registry),
    ),
    Rule(
        "P5",
        "Collaboration",
        (
            ("an owning team and who is told", _config(lambda c: f"owner {c.owner}; alerts to {len(c.alerts.emails)}")),
            ("a person decides an INCONCLUSIVE gate", _task("training", "ApprovePromotionOperator")),
            ("the model config is a reviewed file", _model_file),
        ),
        lambda r: f"{r.ledger_entries} alias moves in the ledger" if r.ledger_entries else None,
    ),
    Rule(
        "P6",
        "Continuous training and evaluation",
        (
            ("training on new features", _on_asset("training", _features_uri)),
            ("evaluation and a gate", _task("training", "EvaluateModelOperator", "GateOperator")),
            ("retraining on a monitoring signal", _task("monitoring", "RetrainOperator")),
        ),
        _training,
    ),
    Rule(
        "P7",
        "ML metadata tracking and logging",
        (
            ("runs tracked with lineage to Airflow", _task("training", "TrainModelOperator")),
            ("every alias move in a ledger", _task("deployment", "SetChampionOperator")),
        ),
        _lineage("airflow.dag_id", "airflow.run_id"),
    ),
    Rule(
        "P8",
        "Continuous monitoring",
        (
            ("drift of every interval", _task("monitoring", "DriftSensor")),
            ("live performance on delayed labels", _task("monitoring", "PerformanceOperator")),
        ),
        _newest("drift", "performance"),
    ),
    Rule(
        "P9",
        "Feedback loops",
        (
            (
                "labels joined back after a delay",
                _config(lambda c: f"labels {c.labels.dataset}, +{c.labels.delay_days} d"),
            ),
            ("monitoring triggers retraining", _task("monitoring", "RetrainOperator")),
            ("a new model redeploys itself", _on_asset("deployment", _model_uri)),
        ),
        _newest("retrain", "performance"),
    ),
    Rule(
        "C1",
        "CI/CD component",
        (("the CI script", _ci), ("DAG integrity tests", _file("tests/dags/test_dag_integrity.py"))),
        _newest("predictions"),
    ),
    Rule(
        "C2",
        "Source code repository",
        (("code under version control", _git), ("the model config", _model_file), ("the data suite", _suite)),
        _lineage("code.git_sha"),
    ),
    Rule(
        "C3",
        "Workflow orchestration component",
        (("the five DAGs of the loop", _all_dags),),
        _training,
    ),
    Rule(
        "C4",
        "Feature store system",
        (
            ("validated landing data", _task("features", "ValidateLandingOperator")),
            ("published feature partitions", _task("features", "PublishFeaturesOperator")),
        ),
        _features_record,
    ),
    Rule(
        "C5",
        "Model training infrastructure",
        (("a training task", _task("training", "TrainModelOperator")),),
        _training,
    ),
    Rule(
        "C6",
        "Model registry",
        (
            ("versions registered with aliases", _task("training", "PromoteModelOperator")),
            ("the champion alias", _task("deployment", "SetChampionOperator")),
        ),
        _registry,
    ),
    Rule(
        "C7",
        "ML metadata stores",
        (("runs tracked with lineage tags", _task("training", "TrainModelOperator")),),
        _lineage("airflow.run_id", "data.manifest_sha256"),
    ),
    Rule(
        "C8",
        "Model serving component",
        (
            ("a deployment target", _config(lambda c: f"deploy.target={c.deploy.target}")),
            ("batch scoring", _task("batch_inference", "BatchScoreOperator")),
        ),
        _newest("predictions"),
    ),
    Rule(
        "C9",
        "Monitoring component",
        (
            ("drift", _task("monitoring", "DriftSensor")),
            ("performance", _task("monitoring", "PerformanceOperator")),
        ),
        _newest("drift", "performance"),
    ),
)


def assess(cfg: ModelConfig, dags: Mapping[str, DagFacts], records: Records, repo: Path = REPO_ROOT) -> Report:
    """One row per principle and component of the paper for ``cfg``'s pipeline."""
    facts = Facts(cfg=cfg, dags=dags, records=records, repo=repo)
    rows = []
    for rule in RULES:
        found = [(need, fn(facts)) for need, fn in rule.needs]
        evidence = tuple(f"{need}: {ev}" for need, ev in found if ev)
        missing = tuple(need for need, ev in found if not ev)
        exercised = rule.exercised(records) if evidence else None
        status: Status
        if not evidence:
            status = "missing"
        elif missing:
            status = "partial"
        else:
            status = "covered" if exercised else "designed"
        if status == "designed":
            missing = ("no recorded run has exercised it yet",)
        rows.append(Row(rule.id, rule.name, status, evidence, exercised, missing))
    return Report(model=cfg.name, rows=tuple(rows), errors=records.errors)


# ------------------------------------------------------------------------------------------- records


def collect_records(cfg: ModelConfig, lake: Lake | None, registry: Any | None) -> Records:
    """The newest records of ``cfg``'s pipeline; a store that cannot be read is an error line, never a crash."""
    errors: list[str] = []
    newest: dict[str, str] = {}
    features_sha = ""
    if lake is not None:
        try:
            for kind, zone, name in (
                ("features", "features", cfg.features.feature_set),
                ("predictions", "predictions", cfg.name),
            ):
                days = lake.partitions(zone, name)
                if days:
                    newest[kind] = days[-1].isoformat()
            if "features" in newest:
                manifest = lake.manifest("features", cfg.features.feature_set, newest["features"]) or {}
                features_sha = str(manifest.get("content_sha256", ""))
            for kind in ("drift", "performance", "retrain"):
                keys = [k for k in lake.list(f"reports/{cfg.name}/{kind}") if k.endswith(f"/{kind}.json")]
                if keys:
                    newest[kind] = max(k.split("/ds=")[1].split("/")[0] for k in keys)
        except Exception as exc:
            errors.append(f"lake {lake.root}: {type(exc).__name__}: {str(exc)[:200]}")
    last: dict[str, str] = {}
    versions, aliases, ledger_entries = 0, {}, 0
    if registry is not None:
        try:
            from sluice.registry import ledger

            found = registry.versions(cfg.name)
            versions = len(found)
            if found:
                newest_version = found[-1]
                last = {**dict(newest_version.tags or {}), "version": str(newest_version.version)}
                for alias in ("champion", "challenger"):  # a version search does not carry the aliases
                    if (mv := registry.by_alias(cfg.name, alias)) is not None:
                        aliases[alias] = str(mv.version)
            ledger_entries = len(ledger.history(registry, cfg.name))
        except Exception as exc:
            errors.append(f"MLflow registry: {type(exc).__name__}: {str(exc)[:200]}")
    return Records(
        last_training=last,
        versions=versions,
        aliases=aliases,
        ledger_entries=ledger_entries,
        newest=newest,
        features_sha256=features_sha,
        errors=tuple(errors),
    )


# ------------------------------------------------------------------------------------------- output


def render_text(reports: Sequence[Report], import_errors: Mapping[str, str] | None = None) -> str:
    lines = [f"MLOps conformance ({PAPER})", ""]
    for path, err in sorted((import_errors or {}).items()):
        lines.append(f"DAG FILE DOES NOT PARSE: {path}: {err}")
    for report in reports:
        counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
        lines += [f"model {report.model}: {counts}", ""]
        for row in report.rows:
            lines.append(f"  {row.id:<3} {row.name:<36} {row.status.upper()}")
            for ev in row.evidence:
                lines.append(f"        + {ev}")
            if row.exercised:
                lines.append(f"        ran: {row.exercised}")
            for gap in row.missing:
                lines.append(f"        - missing: {gap}")
        for err in report.errors:
            lines.append(f"  (could not read: {err})")
        lines.append("")
    return "\n".join(lines)


def render_json(reports: Iterable[Report], import_errors: Mapping[str, str] | None = None) -> str:
    return json.dumps(
        {"paper": PAPER, "import_errors": dict(import_errors or {}), "models": [r.to_json() for r in reports]},
        indent=1,
    )
