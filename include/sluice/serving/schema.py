"""The request contract of a served model, derived from its config, enforced strictly.

MLflow's scoring server accepts an extra column with 200, silently turns "1.5" into a float and puts a
stack trace in some 400 bodies. Ours refuses each of those with a 4xx that names the row and the field,
and never coerces: a string is not a number, a boolean is not a number, a number is not a category.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sluice.config import ModelConfig


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "number" or "string"
    nullable: bool = True  # the pipeline imputes missing values of both kinds


class RequestError(ValueError):
    """A bad request: ``status`` is the HTTP status to answer with, the message says what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_schema(cfg: ModelConfig) -> tuple[FieldSpec, ...]:
    f = cfg.features
    return (*(FieldSpec(c, "number") for c in f.numeric), *(FieldSpec(c, "string") for c in f.categorical))


#: At most this many characters of a refused value are quoted back in an error.
SHOWN_CHARS = 60


def _show(value: Any) -> str:
    """A refused value as the error quotes it: its repr, cut short (a value can be as long as the body)."""
    if isinstance(value, (list, dict)):
        return "[...]" if isinstance(value, list) else "{...}"  # may nest hundreds deep: never repr'd whole
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _type_error(value: Any, spec: FieldSpec) -> str | None:
    if value is None:
        return None if spec.nullable else "must not be null"
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a JSON number, got {type(value).__name__} {_show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if isinstance(value, int) and abs(value) > sys.float_info.max:  # exact: an int compares without rounding
            return f"must be within the float range (about ±1.8e308), got an integer of {value.bit_length()} bits"
        return None
    if not isinstance(value, str):
        return f"must be a JSON string, got {type(value).__name__} {_show(value)}"
    return None


def parse_records(payload: Any, schema: Sequence[FieldSpec], max_rows: int) -> pd.DataFrame:
    """``{"records": [{field: value, ...}, ...]}`` -> a DataFrame in schema order, or a RequestError."""
    if not isinstance(payload, Mapping) or set(payload) != {"records"}:
        got = sorted(payload) if isinstance(payload, Mapping) else type(payload).__name__
        raise RequestError(422, f'the body must be a JSON object with exactly one key "records", got {got}')
    records = payload["records"]
    if not isinstance(records, list) or not records:
        raise RequestError(422, '"records" must be a non-empty list of objects')
    if len(records) > max_rows:
        raise RequestError(413, f"{len(records)} records exceed the limit of {max_rows} per request")
    names = [s.name for s in schema]
    expected = set(names)
    problems: list[str] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            problems.append(f"records[{i}]: must be an object, got {type(rec).__name__}")
            continue
        missing = [n for n in names if n not in rec]
        extra = sorted(set(rec) - expected)
        if missing:
            problems.append(f"records[{i}]: missing fields {missing}")
        if extra:
            problems.append(f"records[{i}]: unknown fields {extra} (the model takes {names})")
        for spec in schema:
            if spec.name in rec and (err := _type_error(rec[spec.name], spec)):
                problems.append(f"records[{i}].{spec.name}: {err}")
        if len(problems) >= 20:
            problems.append("... (first 20 problems shown)")
            break
    if problems:
        raise RequestError(422, "; ".join(problems))
    # Column by column with the dtype set once: about 2x faster than from_records + astype for one row.
    return pd.DataFrame(
        {
            spec.name: pd.Series(
                [rec[spec.name] for rec in records], dtype="float64" if spec.kind == "number" else object
            )
            for spec in schema
        }
    )
