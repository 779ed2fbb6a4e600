"""Profiles and the features a drift check covers: which features of a model are checked (and why the others
are not), a profile of any frame without a model config, and reading a profile file with its checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sluice.config import ModelConfig
from sluice.training.profile import (
    PART_SPAN,
    SPAN_NAME,
    categorical_profile,
    interval_span,
    numeric_profile,
)

#: An integer or string column of at least this many rows with every value distinct is an identifier.
MIN_ID_ROWS = 20


def checked_features(cfg: ModelConfig) -> tuple[list[str], list[str], dict[str, str]]:
    """``(numeric, categorical, not_checked)``: the features a drift check of ``cfg`` tests, and why the others
    are left out.

    Left out: ``monitoring.exclude_features`` (with the reason given there), and the calendar parts of the
    dataset's timestamp (``datetime_parts`` on ``dataset.timestamp_column``) that cannot vary within one
    scheduled interval -- the day of week of a daily model holds one value per interval, so against a reference
    of many days it "drifts" every day and says nothing.
    """
    skip = dict(cfg.monitoring.exclude_features)
    span = interval_span(cfg.schedule)
    for t in cfg.features.transforms:
        if span is None or not t.fn.endswith(":datetime_parts"):
            continue
        column = t.params.get("column")
        if column != cfg.dataset.timestamp_column:
            continue
        prefix = t.params.get("prefix")
        prefix = prefix if prefix is not None else f"{column}_"
        for part in t.params.get("parts", ("hour", "dayofweek")):
            name = f"{prefix}{part}"
            if PART_SPAN.get(part, -1) >= span and name not in skip:
                skip[name] = f"calendar part ({part}) of {column}: one value per {SPAN_NAME[span]} interval"
    numeric = [c for c in cfg.features.numeric if c not in skip]
    categorical = [c for c in cfg.features.categorical if c not in skip]
    listed = {*cfg.features.numeric, *cfg.features.categorical}
    return numeric, categorical, {c: why for c, why in skip.items() if c in listed}


def _is_datetime(dtype: Any) -> bool:
    return pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype)


def infer_columns(frame: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """``(numeric, categorical, skipped)`` for a frame without a model config.

    Numeric dtypes (not booleans) are numeric, the rest categorical. Skipped, with the reason: timestamps,
    and identifiers (integer or string columns of at least ``MIN_ID_ROWS`` rows whose values are all distinct,
    which would drift by construction).
    """
    numeric: list[str] = []
    categorical: list[str] = []
    skipped: dict[str, str] = {}
    for c in frame.columns:
        s = frame[c]
        name = str(c)
        if _is_datetime(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
            skipped[name] = f"timestamp ({s.dtype})"
            continue
        is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        maybe_id = (not is_num) or pd.api.types.is_integer_dtype(s.dtype)
        present = s.dropna()
        if maybe_id and len(present) >= MIN_ID_ROWS and present.nunique() == len(present):
            skipped[name] = "identifier (every value distinct)"
            continue
        (numeric if is_num else categorical).append(name)
    return numeric, categorical, skipped


def profile_frame(
    frame: pd.DataFrame,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    scores: Any = None,
    n_bins: int = 10,
    max_categories: int = 50,
    model: str | None = None,
) -> dict[str, Any]:
    """A reference profile of any frame, laid out as ``reference_profile`` makes it, without a model config.

    Columns default to :func:`infer_columns`. ``meta.config_hash`` is None (no config).
    """
    if numeric is None and categorical is None:
        numeric, categorical, _ = infer_columns(frame)
    numeric, categorical = list(numeric or ()), list(categorical or ())
    both = set(numeric) & set(categorical)
    if both:
        raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
    missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot profile: columns {missing} are not in the frame (columns: {list(frame.columns)})")
    features: dict[str, Any] = {}
    for c in numeric:
        features[c] = numeric_profile(frame[c], n_bins)
    for c in categorical:
        features[c] = categorical_profile(frame[c], max_categories)
    return {
        "features": features,
        "prediction": numeric_profile(np.asarray(scores, dtype="float64"), n_bins) if scores is not None else None,
        "meta": {
            "model": model,
            "rows": int(len(frame)),
            "config_hash": None,
            "n_bins": int(n_bins),
            "max_categories": int(max_categories),
        },
    }


def check_entry(name: str, entry: Any) -> str:
    """The kind of a profile entry; ValueError naming the feature and the missing key."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"profile feature {name!r}: expected a mapping, got {type(entry).__name__}")
    kind = str(entry.get("kind"))
    need = {"numeric": ("edges", "proportions", "n"), "categorical": ("frequencies", "n")}.get(kind)
    if need is None:
        raise ValueError(f"profile feature {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}")
    lacking = [k for k in need if k not in entry]
    if lacking:
        raise ValueError(f"profile feature {name!r} ({kind}): missing {lacking}")
    if kind == "numeric" and len(entry["proportions"]) != len(entry["edges"]) - 1:
        raise ValueError(
            f"profile feature {name!r}: {len(entry['edges'])} edges but {len(entry['proportions'])} proportions"
        )
    return kind


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile JSON file (``reference_profile.json``), checked; errors name the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the profile: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON profile: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
        raise ValueError(f"{path}: not a reference profile: expected a mapping with a 'features' mapping")
    try:
        for name, entry in data["features"].items():
            check_entry(name, entry)
        if data.get("prediction") is not None and check_entry("prediction", data["prediction"]) != "numeric":
            raise ValueError("profile 'prediction': must be a numeric entry")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return dict(data)
