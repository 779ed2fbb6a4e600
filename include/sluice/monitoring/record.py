"""The monitoring reports in the lake: what :mod:`sluice.monitoring.job` writes there, and reading it back.

One place for the names others read (the Sluice view and the overview, the mails, the retrain policy):

- ``reports/<model>/drift/ds=D/drift.json`` (a :class:`~sluice.monitoring.drift.DriftResult`) and
  ``drift.html``; a copy of both on the serving version's MLflow run under ``monitoring/drift/ds=D/``;
- ``reports/<model>/performance/ds=D/performance.json`` (a
  :class:`~sluice.monitoring.performance.PerformanceResult`);
- ``reports/<model>/retrain/ds=D/retrain.json`` (a :class:`RetrainRecord`): the cooldown's memory and the
  once-per-interval key.

Every JSON report is written the same way (:func:`_put_json`: ``json.dumps(..., indent=1)``) from its
result's ``to_dict`` and read back with its ``from_dict``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sluice.lake import Lake, ds_str
from sluice.monitoring.drift.judging import DriftResult
from sluice.monitoring.performance import PerformanceResult

log = logging.getLogger(__name__)

DRIFT, PERFORMANCE, RETRAIN = "drift", "performance", "retrain"
#: the JSON report of each kind
REPORT_FILE = {DRIFT: "drift.json", PERFORMANCE: "performance.json", RETRAIN: "retrain.json"}
DRIFT_PAGE = "drift.html"

__all__ = [
    "DRIFT",
    "PERFORMANCE",
    "RETRAIN",
    "RetrainRecord",
    "drift_history",
    "last_retrain",
    "retrains_around",
    "performance_history",
    "read_drift",
    "read_performance",
    "read_retrain",
    "report_prefix",
    "write_drift",
    "write_performance",
    "write_retrain",
]


@dataclass(frozen=True)
class RetrainRecord:
    """Interval ``ds`` started a retraining: from which signal (``source``), why, the report, the training run."""

    ds: str
    source: str
    reason: str
    report: str
    training_run_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainRecord:
        missing = [k for k in ("ds", "source", "reason", "report", "training_run_id") if k not in data]
        if missing:
            raise ValueError(f"not a retrain record: no {missing} (it has {sorted(data)})")
        return cls(**{k: str(data[k]) for k in ("ds", "source", "reason", "report", "training_run_id")})


def report_prefix(model: str, kind: str, ds: dt.date | str) -> str:
    """``reports/<model>/<kind>/ds=D``: the folder of an interval's report of ``kind``."""
    return f"reports/{model}/{kind}/ds={ds_str(ds)}"


def report_key(model: str, kind: str, ds: dt.date | str) -> str:
    """The key of an interval's JSON report of ``kind``."""
    return f"{report_prefix(model, kind, ds)}/{REPORT_FILE[kind]}"


def _put_json(lake: Lake, model: str, kind: str, ds: dt.date | str, data: Mapping[str, Any]) -> str:
    """Write one JSON report (the one encoding every report has); its URI."""
    lake.put_files(report_prefix(model, kind, ds), {REPORT_FILE[kind]: json.dumps(data, indent=1).encode()})
    return lake.uri(report_key(model, kind, ds))


def _read_json(lake: Lake, model: str, kind: str, ds: dt.date | str) -> dict[str, Any] | None:
    key = report_key(model, kind, ds)
    return json.loads(lake.read(key)) if lake.storage.exists(key) else None


def _days(lake: Lake, model: str, kind: str) -> Iterator[tuple[dt.date, str]]:
    """The intervals with a JSON report of ``kind``, oldest first, with its key (listed, not read)."""
    name = REPORT_FILE[kind]
    for key in sorted(lake.list(f"reports/{model}/{kind}")):
        if key.endswith(f"/{name}"):
            yield dt.date.fromisoformat(key.split("/ds=")[1].split("/")[0]), key


def _reports(lake: Lake, model: str, kind: str, before: dt.date) -> Iterator[tuple[dt.date, dict[str, Any]]]:
    """The JSON reports of ``kind`` of the intervals before ``before``, oldest first, with the day of their
    folder."""
    for day, key in _days(lake, model, kind):
        if day < before:
            yield day, json.loads(lake.read(key))


# --------------------------------------------------------------------------------------------- drift


def write_drift(lake: Lake, model: str, result: DriftResult, page: str) -> tuple[str, str]:
    """``drift.json`` and ``drift.html`` of the result's interval; their URIs (JSON, HTML)."""
    if result.ds is None:
        raise ValueError("the drift result has no ds: stamp it with of_interval() before recording it")
    prefix = report_prefix(model, DRIFT, result.ds)
    lake.put_files(prefix, {DRIFT_PAGE: page.encode()})
    return _put_json(lake, model, DRIFT, result.ds, result.to_dict()), lake.uri(f"{prefix}/{DRIFT_PAGE}")


def log_drift(registry: Any, run_id: str, result: DriftResult, page: str) -> None:
    """A copy of the drift report on the serving version's MLflow run; the lake copy is the record, so a failure
    here is logged, not raised."""
    where = f"monitoring/drift/ds={result.ds}"
    try:
        registry.client.log_dict(run_id, result.to_dict(), f"{where}/{REPORT_FILE[DRIFT]}")
        registry.client.log_text(run_id, page, f"{where}/{DRIFT_PAGE}")
    except Exception:
        log.exception("could not log the drift report of ds=%s to MLflow", result.ds)


def read_drift(lake: Lake, model: str, ds: dt.date | str) -> DriftResult | None:
    data = _read_json(lake, model, DRIFT, ds)
    return None if data is None else DriftResult.from_dict(data)


def drift_history(lake: Lake, model: str, before: dt.date) -> list[DriftResult]:
    """The drift results of the intervals before ``before``, oldest first (``ds`` from the report's folder)."""
    return [DriftResult.from_dict({**r, "ds": d.isoformat()}) for d, r in _reports(lake, model, DRIFT, before)]


# --------------------------------------------------------------------------------------------- performance


def write_performance(lake: Lake, model: str, result: PerformanceResult) -> str:
    """``performance.json`` of the result's interval; its URI."""
    if result.ds is None:
        raise ValueError("the performance result has no ds: stamp it with of_interval() before recording it")
    return _put_json(lake, model, PERFORMANCE, result.ds, result.to_dict())


def read_performance(lake: Lake, model: str, ds: dt.date | str) -> PerformanceResult | None:
    data = _read_json(lake, model, PERFORMANCE, ds)
    return None if data is None else PerformanceResult.from_dict(data)


def performance_history(lake: Lake, model: str, before: dt.date) -> list[PerformanceResult]:
    """The performance results of the intervals before ``before``, oldest first (``ds`` from the folder)."""
    return [
        PerformanceResult.from_dict({**r, "ds": d.isoformat()}) for d, r in _reports(lake, model, PERFORMANCE, before)
    ]


# --------------------------------------------------------------------------------------------- retrain


def write_retrain(lake: Lake, model: str, record: RetrainRecord) -> str:
    """Remember that the record's interval started a retraining; the URI of ``retrain.json``."""
    return _put_json(lake, model, RETRAIN, record.ds, record.to_dict())


def read_retrain(lake: Lake, model: str, ds: dt.date | str) -> RetrainRecord | None:
    """The retrain record of interval ``ds``, if it started one."""
    data = _read_json(lake, model, RETRAIN, ds)
    return None if data is None else RetrainRecord.from_dict(data)


def retrains_around(lake: Lake, model: str, day: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """``(last, next)``: the newest interval before ``day`` and the oldest after it that started a retraining,
    from one listing. Intervals are judged out of order (backfills, concurrent runs), so a later interval's
    retrain holds an earlier one's cooldown too."""
    days = [d for d, _ in _days(lake, model, RETRAIN)]
    before = [d for d in days if d < day]
    after = [d for d in days if d > day]
    return (before[-1] if before else None), (after[0] if after else None)


def last_retrain(lake: Lake, model: str, before: dt.date) -> dt.date | None:
    """The newest interval before ``before`` that started a retraining."""
    return retrains_around(lake, model, before)[0]
