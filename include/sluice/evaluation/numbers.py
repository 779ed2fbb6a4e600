"""Numbers as strict JSON holds them: one rule for every result the pipeline records.

Strict JSON (XCom, MLflow's ``log_dict``, the lake's reports) has no NaN or infinity; an undefined number
(the AUC of a one-class slice, the std of one value) is ``None`` there. The gate, the evaluation, the drift
and the performance results all go through :func:`json_safe`; single numbers through :func:`finite`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = ["finite", "is_finite", "json_object", "json_safe"]


def finite(x: Any) -> float | None:
    """A finite Python float, or None (None, NaN and infinity alike)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def is_finite(x: Any) -> bool:
    """Whether ``x`` is a finite number (not a bool, not a string that is no number)."""
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def json_safe(value: Any) -> Any:
    """Plain JSON types: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, enums -> values,
    mapping keys -> str. Anything else is a TypeError: a result must not carry objects JSON cannot hold."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
        if isinstance(value, bool):
            return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise TypeError(f"not JSON-safe: {type(value).__name__} {value!r}")


def json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`json_safe` of a mapping: a JSON object."""
    out: dict[str, Any] = json_safe(value)
    return out
