"""The JSON form of the monitoring results, written once for all of them.

A result (:class:`~sluice.monitoring.drift.DriftResult`, :class:`~sluice.monitoring.performance.PerformanceResult`)
is a frozen dataclass whose last fields are its *identity* (the interval, the version, ...), None until
monitoring stamps them: the JSON form lists the verdict's fields in their order, then the identity fields that
are set. Reading a report back names any missing field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["fields_from", "json_form"]


def json_form(result: Any, identity: Collection[str]) -> dict[str, Any]:
    """The fields of ``result`` in order, the ``identity`` fields only when set."""
    out = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in identity}
    out.update({k: getattr(result, k) for k in identity if getattr(result, k) is not None})
    return out


def fields_from(cls: Any, data: Mapping[str, Any], what: str, optional: Collection[str]) -> dict[str, Any]:
    """The constructor arguments of ``cls`` from its JSON form ``data``: a missing field not in ``optional`` is a
    ValueError naming it (``what``: how the error names the result); ``model_version`` is a string."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in optional and n not in data]
    if missing:
        raise ValueError(f"not a {what}: no {missing} (it has {sorted(data)})")
    fields = {n: data.get(n) for n in names}
    if fields.get("model_version") is not None:
        fields["model_version"] = str(fields["model_version"])
    return fields
