"""``sluice init``: draft a model config from what has landed, for a person to review and commit.

A stranger's data arrives as landing partitions (``landing/<dataset>/ds=D/``) and, later, label partitions
(``labels/<labels dataset>/ds=D+delay/``). Everything a config needs that the data can tell is read from
them, and every choice is written down with its reason (a YAML comment in the draft, a line printed):

- the id column: no nulls, unique in every partition and across all of them (string or integer); a name
  like ``*_id`` wins a tie;
- the timestamp column: a datetime (or a string that parses as one) whose every value lies inside its
  partition's day;
- numeric and categorical features: numbers are numeric; strings with at most ``MAX_CATEGORIES`` distinct
  values (and no more than ``MAX_CATEGORY_SHARE`` of the rows distinct) are categorical;
- columns left out, with the reason: all null, constant, another unique identifier, free text (too many
  distinct strings), a datetime that is not the event time;
- the label join: the labels dataset holding the id column, its label column, and the delay as the offset
  between a label partition and the event partition of the keys it holds;
- sizes from the observed volume: ``training.window_days``/``min_rows``/``min_new_partitions`` and
  ``monitoring.performance.min_rows`` (see :func:`sizing`), and the serving latency budget from the model
  itself (:func:`sluice.config.latency_budget_ms`, measured on a model fitted to the landed rows).

docs/onboarding.md walks through a whole onboarding; docs/config-reference.md documents every key.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sluice.config import (
    HTTP_OVERHEAD_MS,
    LATENCY_MULTIPLE,
    ModelConfig,
    latency_budget_ms,
    models_dir,
    parse_model_config,
)
from sluice.lake import Lake

#: A string column with more distinct values than this is free text, not a category.
MAX_CATEGORIES = 100
#: ... or with more than this share of its rows distinct (a category repeats).
MAX_CATEGORY_SHARE = 0.5
#: The share of a timestamp's values that must lie inside their partition's day.
IN_DAY_SHARE = 0.99
#: Partitions read at most (the newest), landing and labels each.
MAX_PARTITIONS = 28
#: The labelled rows a first model should train on; the window is sized to reach it.
TARGET_TRAINING_ROWS = 5000
#: Bounds of the drafted training window, in days.
WINDOW_DAYS = (14, 90)
#: ``monitoring.performance.min_rows`` is this share of the labelled rows of a median interval.
PERFORMANCE_ROWS_SHARE = 0.8
#: ... and never fewer than this (a metric on fewer rows is noise).
PERFORMANCE_MIN_ROWS = 30
#: Rows the latency model is fitted on (the measurement needs a realistic model, not the best one).
LATENCY_FIT_ROWS = 2000
_ID_NAMES = ("id", "key", "uuid")


class OnboardingError(ValueError):
    """The landed data cannot be drafted into a config; the message says what is missing and where."""


@dataclass
class Draft:
    """What ``sluice init`` inferred, with the reasons, and the config it renders."""

    model: str
    dataset: str
    fmt: str
    days: list[dt.date]
    first_day: dt.date
    rows_per_day: int
    id_column: str
    timestamp_column: str
    labels_dataset: str
    label_column: str
    join_key: str
    delay_days: int
    task: str
    labelled_per_day: int
    numeric: list[str]
    categorical: list[str]
    left_out: dict[str, str]
    notes: list[str] = field(default_factory=list)
    latency_budget_ms: float | None = None
    owner: str = "data-science"
    email: str = ""

    def config(self) -> dict[str, Any]:
        """The drafted config as a mapping (what :meth:`to_yaml` renders)."""
        size = sizing(self.rows_per_day, self.labelled_per_day)
        classification = self.task == "classification"
        metrics = ["roc_auc", "pr_auc", "log_loss"] if classification else ["rmse", "mae", "r2"]
        estimator = "HistGradientBoostingClassifier" if classification else "HistGradientBoostingRegressor"
        deploy: dict[str, Any] = {"target": "batch"}
        if self.latency_budget_ms is not None:
            deploy["infra_validation"] = {"max_latency_ms_p95": self.latency_budget_ms}
        return {
            "name": self.model,
            "owner": self.owner,
            "description": f"Drafted by `sluice init` from landed {self.dataset} partitions; review every key.",
            "task": self.task,
            "schedule": "@daily",
            "start_date": self.first_day,
            "tags": ["onboarded"],
            "dataset": {
                "name": self.dataset,
                "format": self.fmt,
                "id_column": self.id_column,
                "timestamp_column": self.timestamp_column,
            },
            "labels": {
                "dataset": self.labels_dataset,
                "column": self.label_column,
                "delay_days": self.delay_days,
                "join_key": self.join_key,
            },
            "features": {
                "feature_set": f"{self.model}_v1",
                "passthrough": [self.id_column, self.timestamp_column],
                "numeric": self.numeric,
                "categorical": self.categorical,
            },
            "validation": {"suite": f"{self.model}_raw"},
            "training": {
                "window_days": size["window_days"],
                "min_new_partitions": size["min_new_partitions"],
                "min_rows": size["min_rows"],
                "estimator": {
                    "class_path": f"sklearn.ensemble.{estimator}",
                    "params": {"max_iter": 200, "random_state": 0},
                },
            },
            "gate": {
                "primary_metric": metrics[0],
                "metrics": metrics,
                "floors": {"roc_auc": 0.6} if classification else {"r2": 0.0},
                "non_inferiority_margin": 0.01,
            },
            "deploy": deploy,
            "monitoring": {"performance": {"min_rows": size["performance_min_rows"]}},
            "alerts": {"emails": [self.email or f"{self.model}-oncall@example.com"]},
        }

    def to_yaml(self) -> str:
        """The config with the reasons as comments: a header of what was inferred, the left-out columns."""
        cfg = self.config()
        head = [
            f"# Drafted by `sluice init {self.model} --dataset {self.dataset}` from the landed data; review it.",
            "#",
        ]
        head += [f"# {_comment(line)}" for line in self.notes]
        out = [*head, ""]
        for key, value in cfg.items():
            flow = None if isinstance(value, dict) else False  # lists inside sections in [a, b] form
            block = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=flow, width=110).rstrip()
            out.append(block)
            if key == "features" and self.left_out:
                out.append("  # left out of the features (add one back by moving it to numeric or categorical):")
                out += [f"  #   {_comment(col)}: {_comment(why)}" for col, why in self.left_out.items()]
        return "\n".join(out) + "\n"

    def summary(self) -> list[str]:
        """What was inferred and why, one printable line each (column names are data: no control characters)."""
        lines = [_comment(n) for n in self.notes]
        if self.left_out:
            lines.append("left out: " + "; ".join(f"{_comment(c)} ({_comment(w)})" for c, w in self.left_out.items()))
        return lines

    def validated(self) -> ModelConfig:
        return parse_model_config(yaml.safe_load(self.to_yaml()), f"draft of {self.model}")


def _comment(text: str) -> str:
    """One YAML comment line whatever a column name holds: a newline in it must not start a key."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def sizing(rows_per_day: int, labelled_per_day: int) -> dict[str, int]:
    """Windows and row floors from the observed volume (docs/config-reference.md cites these rules).

    - ``window_days``: enough days for ``TARGET_TRAINING_ROWS`` rows, within ``WINDOW_DAYS``;
    - ``min_rows``: half the rows such a window holds (a window with half its partitions missing still trains,
      one with less is refused by the training-set suite);
    - ``min_new_partitions``: a retrain needs a quarter of a window of new days (at most 7);
    - ``performance_min_rows``: ``PERFORMANCE_ROWS_SHARE`` of a median interval's labelled rows, at least
      ``PERFORMANCE_MIN_ROWS``, so that an ordinary day is judged and a thin one is not.
    """
    per_day = max(rows_per_day, 1)
    window = min(max(math.ceil(TARGET_TRAINING_ROWS / per_day), WINDOW_DAYS[0]), WINDOW_DAYS[1])
    return {
        "window_days": window,
        "min_rows": max(window * per_day // 2, 100),
        "min_new_partitions": max(1, min(7, window // 4)),
        "performance_min_rows": max(int(labelled_per_day * PERFORMANCE_ROWS_SHARE), PERFORMANCE_MIN_ROWS),
    }


# ---- reading what landed ----------------------------------------------------------------------------------


def _format_of(files: Sequence[str]) -> str:
    exts = {f.rsplit(".", 1)[-1].lower() for f in files if "." in f}
    if exts <= {"parquet"} and exts:
        return "parquet"
    if exts <= {"csv"} and exts:
        return "csv"
    raise OnboardingError(f"data files {sorted(files)}: expected only .parquet or only .csv files")


def read_zone(
    lake: Lake, zone: str, name: str, limit: int = MAX_PARTITIONS
) -> tuple[str, list[tuple[dt.date, pd.DataFrame]]]:
    """The newest ``limit`` readable partitions of ``<zone>/<name>`` and their file format."""
    from sluice.validation.reader import read_partition

    days = [d for d in lake.partitions(zone, name, published_only=False) if lake.landing_ready(zone, name, d)]
    if not days:
        raise OnboardingError(
            f"no partitions with _SUCCESS under {lake.uri(f'{zone}/{name}')}/ds=YYYY-MM-DD/: land some first"
        )
    fmt = ""
    out: list[tuple[dt.date, pd.DataFrame]] = []
    for d in days[-limit:]:
        files = lake.landing_files(zone, name, d)
        fmt = _format_of(list(files))
        read = read_partition(files, fmt)
        if not read.ok or read.frame is None:
            where = lake.uri(lake.partition_key(zone, name, d))
            raise OnboardingError(f"{where}: unreadable: {read.problems[0]['detail']}")
        out.append((d, read.frame))
    return fmt, out


def _as_datetime(s: pd.Series) -> pd.Series | None:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    if not (pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)):
        return None
    sample = s.dropna().astype(str).head(200)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{2}-\d{2}", regex=True).all():
        return None
    parsed = pd.to_datetime(s, errors="coerce", utc=True).dt.tz_localize(None)
    return parsed if parsed.notna().sum() >= 0.99 * s.notna().sum() else None


def _in_day_share(parts: list[tuple[dt.date, pd.DataFrame]], col: str) -> float:
    inside = total = 0
    for d, frame in parts:
        ts = _as_datetime(frame[col])
        if ts is None:
            return 0.0
        ts = ts.dropna()
        start = pd.Timestamp(d)
        inside += int(((ts >= start) & (ts < start + pd.Timedelta(days=1))).sum())
        total += len(ts)
    return inside / total if total else 0.0


def _is_unique_key(parts: list[tuple[dt.date, pd.DataFrame]], col: str) -> bool:
    values = pd.concat([f[col] for _, f in parts], ignore_index=True)
    # an integer is an id only by name: a count or an amount can be unique in a few thousand rows
    kind_ok = pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)
    kind_ok = kind_ok or (pd.api.types.is_integer_dtype(values) and _id_name(col))
    return bool(kind_ok and values.notna().all() and values.is_unique and len(values) > 1)


def _id_name(col: str) -> bool:
    low = col.lower()
    return any(low == n or low.endswith(f"_{n}") or low.startswith(f"{n}_") for n in _ID_NAMES)


def choose(candidates: list[str], preferred: Callable[[str], bool], what: str, where: str) -> str:
    if not candidates:
        raise OnboardingError(f"{where}: no {what} candidate found")
    return sorted(candidates, key=lambda c: (not preferred(c), candidates.index(c)))[0]


def classify_columns(
    frame: pd.DataFrame, skip: set[str], n_partitions: int
) -> tuple[list[str], list[str], dict[str, str]]:
    """Numeric, categorical and left-out (column -> reason) of ``frame`` (every landed row), minus ``skip``."""
    numeric: list[str] = []
    categorical: list[str] = []
    left_out: dict[str, str] = {}
    rows = len(frame)
    for col in frame.columns:
        if col in skip:
            continue
        s = frame[col]
        distinct = int(s.nunique(dropna=True))
        if s.isna().all():
            left_out[col] = f"all null in {rows} rows of {n_partitions} partitions"
        elif distinct <= 1:
            left_out[col] = (
                f"constant: {_plain(s.dropna().iloc[0])!r} in every non-null row of {n_partitions} partitions"
            )
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s) or _as_datetime(s) is not None:
            left_out[col] = "a datetime other than the event time (a transform such as datetime_parts can use it)"
        elif s.notna().all() and s.is_unique:
            left_out[col] = f"id-like: unique in all {rows} rows, an identifier rather than a feature"
        elif distinct > MAX_CATEGORIES or distinct > MAX_CATEGORY_SHARE * s.notna().sum():
            left_out[col] = (
                f"free text: {distinct} distinct values in {int(s.notna().sum())} rows "
                f"(a category has at most {MAX_CATEGORIES}, repeating)"
            )
        else:
            categorical.append(col)
    return numeric, categorical, left_out


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (its repr is what a reader expects in a comment)."""
    return value.item() if hasattr(value, "item") else value


def _labels_datasets(lake: Lake) -> list[str]:
    return sorted({k.split("/")[1] for k in lake.list("labels") if k.count("/") >= 2})


def infer_labels(
    lake: Lake,
    events: list[tuple[dt.date, pd.DataFrame]],
    id_column: str,
    labels_dataset: str | None,
) -> tuple[str, str, str, int, pd.DataFrame, list[str]]:
    """(labels dataset, join key, label column, delay days, every label row, notes) from the labels zone."""
    notes: list[str] = []
    if labels_dataset is None:
        holding = []
        for name in _labels_datasets(lake):
            _, parts = read_zone(lake, "labels", name, limit=1)
            if id_column in parts[0][1].columns:
                holding.append(name)
        if len(holding) != 1:
            found = f"several hold {id_column!r}: {holding}" if holding else f"none holds {id_column!r}"
            raise OnboardingError(
                f"labels zone {lake.uri('labels')}: {found} (datasets: {_labels_datasets(lake)}); "
                "name one with --labels"
            )
        labels_dataset = holding[0]
        notes.append(f"labels dataset {labels_dataset}: the only one in the labels zone holding {id_column}")
    _, label_parts = read_zone(lake, "labels", labels_dataset, limit=MAX_PARTITIONS * 2)
    labels = pd.concat([f.assign(_label_ds=d) for d, f in label_parts], ignore_index=True)
    if id_column not in labels.columns:
        raise OnboardingError(
            f"labels dataset {labels_dataset!r}: no column {id_column!r} (the events' id) to join on; "
            f"its columns: {[c for c in labels.columns if c != '_label_ds']}"
        )
    others = [c for c in labels.columns if c not in (id_column, "_label_ds")]
    numeric_others = [c for c in others if pd.api.types.is_numeric_dtype(labels[c])]
    if not numeric_others:
        raise OnboardingError(f"labels dataset {labels_dataset!r}: no numeric label column besides {id_column!r}")
    label_column = numeric_others[0]
    if len(others) > 1:
        notes.append(f"label column {label_column}: the first numeric one of {others}")
    else:
        notes.append(f"label column {label_column}: the one column of {labels_dataset} besides the join key")
    event_day = pd.concat(
        [pd.DataFrame({id_column: f[id_column], "_event_ds": d}) for d, f in events], ignore_index=True
    )
    joined = labels.merge(event_day, on=id_column, how="inner")
    if joined.empty:
        raise OnboardingError(
            f"labels dataset {labels_dataset!r}: none of its {id_column} values is in the landed events "
            "read; land label partitions for the same days"
        )
    offsets = Counter((lab - ev).days for lab, ev in zip(joined["_label_ds"], joined["_event_ds"], strict=True))
    delay, hits = offsets.most_common(1)[0]
    spread = "" if len(offsets) == 1 else f" (offsets seen: {dict(sorted(offsets.items()))})"
    notes.append(
        f"labels.delay_days {delay}: labels of event day D land in ds=D+{delay} "
        f"({hits} of {len(joined)} joined rows){spread}"
    )
    return labels_dataset, id_column, label_column, delay, joined, notes


def infer_task(y: pd.Series) -> tuple[str, str]:
    values = {_plain(v) for v in pd.unique(y.dropna())}
    if values <= {0, 1}:  # True/False compare equal to 1/0
        share = float(pd.to_numeric(y.dropna()).mean())
        return "classification", f"task classification: label values {sorted(values)}, {share:.1%} positive"
    return "regression", f"task regression: {len(values)} distinct label values"


def draft(
    lake: Lake,
    model: str,
    dataset: str,
    *,
    labels_dataset: str | None = None,
    measure_latency: bool = True,
    owner: str = "data-science",
    email: str = "",
) -> Draft:
    """Read what landed for ``dataset`` (and its labels) and infer a config; raises OnboardingError."""
    where = lake.uri(f"landing/{dataset}")
    fmt, parts = read_zone(lake, "landing", dataset)
    frame = pd.concat([f for _, f in parts], ignore_index=True)
    columns = list(frame.columns)
    notes = [f"read {len(parts)} partitions of {where} ({parts[0][0]}..{parts[-1][0]}), {len(frame)} rows, {fmt}"]

    stamps = [c for c in columns if _in_day_share(parts, c) >= IN_DAY_SHARE]
    ts = choose(stamps, lambda c: pd.api.types.is_datetime64_any_dtype(frame[c]), "timestamp", where)
    notes.append(f"timestamp {ts}: every value inside its partition's day (candidates: {stamps})")
    keys = [c for c in columns if c != ts and _is_unique_key(parts, c)]
    id_column = choose(keys, _id_name, "id (a column without nulls, unique across partitions)", where)
    notes.append(f"id {id_column}: no nulls, unique in all {len(frame)} rows (candidates: {keys})")

    labels_dataset, join_key, label_column, delay, joined, label_notes = infer_labels(
        lake, parts, id_column, labels_dataset
    )
    notes += label_notes
    task, why_task = infer_task(joined[label_column])
    notes.append(why_task)

    skip = {ts, id_column}
    numeric, categorical, left_out = classify_columns(frame, skip, len(parts))
    for col in [c for c in keys if c != id_column]:
        left_out[col] = f"id-like: unique in all {len(frame)} rows, like the id column"
        numeric = [c for c in numeric if c != col]
    if label_column in frame.columns:
        left_out[label_column] = "the label itself is in the events: a leak"
        numeric = [c for c in numeric if c != label_column]
        categorical = [c for c in categorical if c != label_column]
    if not numeric and not categorical:
        raise OnboardingError(f"{where}: no usable feature column (left out: {left_out})")
    notes.append(
        f"features: {len(numeric)} numeric, {len(categorical)} categorical (strings with at most "
        f"{MAX_CATEGORIES} distinct values), {len(left_out)} left out (listed under features)"
    )
    rows_per_day = int(pd.Series([len(f) for _, f in parts]).median())
    labelled_per_day = int(joined.groupby("_label_ds").size().median())
    size = sizing(rows_per_day, labelled_per_day)
    notes.append(
        f"volume: median {rows_per_day} rows and {labelled_per_day} labelled rows a day -> training.window_days "
        f"{size['window_days']} (about {TARGET_TRAINING_ROWS} rows), training.min_rows {size['min_rows']} (half "
        f"a window), monitoring.performance.min_rows {size['performance_min_rows']} "
        f"({PERFORMANCE_ROWS_SHARE:.0%} of a day's labels)"
    )
    out = Draft(
        model=model,
        dataset=dataset,
        fmt=fmt,
        days=[d for d, _ in parts],
        first_day=lake.partitions("landing", dataset, published_only=False)[0],
        rows_per_day=rows_per_day,
        id_column=id_column,
        timestamp_column=ts,
        labels_dataset=labels_dataset,
        label_column=label_column,
        join_key=join_key,
        delay_days=delay,
        task=task,
        labelled_per_day=labelled_per_day,
        numeric=numeric,
        categorical=categorical,
        left_out=left_out,
        notes=notes,
        owner=owner,
        email=email,
    )
    if measure_latency:
        p95 = measure_model_p95(out, frame, joined)
        out.latency_budget_ms = latency_budget_ms(p95)
        notes.append(
            f"deploy.infra_validation.max_latency_ms_p95 {out.latency_budget_ms:g}: {LATENCY_MULTIPLE:g} x the "
            f"drafted model's in-process single-row p95 ({p95:.2f} ms, fitted on landed rows) + "
            f"{HTTP_OVERHEAD_MS:g} ms HTTP"
        )
    out.validated()  # a draft that does not load is a bug here, not the reviewer's problem
    return out


def measure_model_p95(d: Draft, frame: pd.DataFrame, joined: pd.DataFrame) -> float:
    """Fit the drafted estimator on up to ``LATENCY_FIT_ROWS`` labelled rows; its single-row predict p95 (ms)."""
    from threadpoolctl import threadpool_limits

    from sluice.training.model import fit, single_row_latency_ms

    cfg = d.validated()
    rows = frame.merge(joined[[d.join_key, d.label_column]], on=d.join_key, how="inner").head(LATENCY_FIT_ROWS)
    if rows[d.label_column].nunique() < 2:
        raise OnboardingError(f"labels {d.labels_dataset!r}: one label value only in the joined rows; land more days")
    with threadpool_limits(limits=1):  # OpenMP's pool on a busy machine makes a 2 s fit take a minute
        model = fit(cfg, rows)
    return single_row_latency_ms(model, rows.head(1))


def config_path(model: str, output: Path | None = None, *, force: bool = False) -> Path:
    """Where the draft goes (default ``<models dir>/<model>.yaml``); an existing file only with ``force``."""
    path = output or models_dir() / f"{model}.yaml"
    if path.exists() and not force:
        raise OnboardingError(f"{path} exists: review it, or pass --force to overwrite it with a new draft")
    return path


def write_draft(d: Draft, output: Path | None = None, *, force: bool = False) -> Path:
    """Write the draft (see :func:`config_path`); never over an existing file without ``force``."""
    path = config_path(d.model, output, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(d.to_yaml(), encoding="utf-8")
    return path
