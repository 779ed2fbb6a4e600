"""The features job for one data interval, in plain Python: validate the landing partition, then either
quarantine it with its evidence or publish its feature partition.

Airflow calls these through thin operators; tests and benchmarks call them directly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sluice.config import EXPECTATIONS_DIR, ModelConfig
from sluice.features.pipeline import build_features, manifest_meta, to_parquet_bytes
from sluice.lake import Lake, sha256
from sluice.validation.gx import render_data_docs, render_summary_html, validate
from sluice.validation.reader import read_partition

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    """The verdict on one landing partition, with the evidence a person needs to act on it."""

    ds: str
    dataset: str
    success: bool
    rows: int | None
    failures: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the raw bytes
    quarantine_uri: str | None = None
    data_docs_uri: str | None = None

    @property
    def reason(self) -> str:
        if self.success:
            return "passed"
        bits = []
        for f in self.failures[:6]:
            what = f.get("expectation") or f.get("check")
            where = f.get("column") or f.get("file")
            n = f.get("unexpected_count")
            bits.append(f"{what}({where})" + (f": {n} rows" if n else "") if where else str(what))
        more = f" and {len(self.failures) - 6} more" if len(self.failures) > 6 else ""
        return "; ".join(bits) + more

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reason": self.reason}


def load_suite(name: str) -> dict[str, Any]:
    path = EXPECTATIONS_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"GX suite {path} does not exist; infer one with `make suite MODEL=<model>`")
    suite: dict[str, Any] = json.loads(path.read_text())
    return suite


def interval_params(ds: dt.date) -> dict[str, pd.Timestamp]:
    start = pd.Timestamp(ds)
    return {"interval_start": start, "interval_end": start + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)}


def check_landing(
    cfg: ModelConfig,
    lake: Lake,
    ds: dt.date,
    links: dict[str, str] | None = None,
    suite: dict[str, Any] | None = None,
) -> CheckResult:
    """Validate the raw partition of ``ds``; on failure copy it to quarantine with the GX evidence.

    The raw files are only read. The quarantine record's key is the raw content hash, so a rerun on the
    same bad bytes rewrites the same record, and a corrected file leaves the old record as history.
    """
    dset = cfg.dataset
    files = lake.landing_files("landing", dset.name, ds)
    hashes = {n: sha256(b) for n, b in sorted(files.items())}
    read = read_partition(files, dset.format, dset.timestamp_column)
    gx_result: dict[str, Any] = {}
    if read.ok:
        assert read.frame is not None
        rules = suite or load_suite(cfg.validation.suite)
        outcome = validate(read.frame, rules, interval_params(ds), cfg.validation.evidence_sample_rows, dset.id_column)
        failures, gx_result, rows = outcome.failures, outcome.result, len(read.frame)
    else:
        failures, rows = read.problems, None
    result = CheckResult(ds.isoformat(), dset.name, not failures, rows, failures, hashes)
    if result.success:
        log.info("landing %s ds=%s: %s rows passed suite %s", dset.name, ds, rows, cfg.validation.suite)
        return result
    key = sha256("".join(hashes.values()).encode())[:12] if hashes else "no-files"
    prefix = f"{lake.partition_key('quarantine', dset.name, ds)}/{key}"
    result.quarantine_uri = lake.uri(prefix)
    result.data_docs_uri = lake.uri(f"{prefix}/data_docs.html")
    title = f"{dset.name} ds={ds}: quarantined ({len(failures)} failed checks)"
    docs = render_data_docs(gx_result, title, dset.id_column) if gx_result else None
    summary = render_summary_html(title, failures, links or {})
    record = {
        "ds": result.ds,
        "dataset": dset.name,
        "suite": cfg.validation.suite,
        "rows": rows,
        "files": hashes,
        "reason": result.reason,
        "failures": failures,
        "links": links or {},
    }
    out: dict[str, bytes] = {f"raw/{n}": b for n, b in files.items()}  # copies: the landing files stay put
    out["validation_result.json"] = json.dumps(
        {"record": record, "gx_result": gx_result}, indent=1, default=str
    ).encode()
    out["summary.html"] = summary.encode()
    out["data_docs.html"] = (docs or summary).encode()
    out["_RECORD.json"] = json.dumps(record, indent=1, sort_keys=True, default=str).encode()  # last: marks it complete
    lake.put_files(prefix, out)
    log.warning("landing %s ds=%s quarantined at %s: %s", dset.name, ds, result.quarantine_uri, result.reason)
    return result


def quarantine_records(lake: Lake, dataset: str, ds: dt.date) -> list[dict[str, Any]]:
    prefix = lake.partition_key("quarantine", dataset, ds)
    return [json.loads(lake.read(k)) for k in lake.list(prefix) if k.endswith("/_RECORD.json")]


def reference_loader(lake: Lake) -> Callable[[str], pd.DataFrame]:
    """Reference tables for lookup joins: every parquet file under ``<lake>/reference/<name>/``."""
    import io

    cache: dict[str, pd.DataFrame] = {}

    def load(name: str) -> pd.DataFrame:
        if name not in cache:
            keys = [k for k in lake.list(f"reference/{name}") if k.endswith(".parquet")]
            if not keys:
                raise FileNotFoundError(f"reference table {name!r} not found under {lake.uri(f'reference/{name}')}")
            cache[name] = pd.concat([pd.read_parquet(io.BytesIO(lake.read(k))) for k in keys], ignore_index=True)
        return cache[name]

    return load


def publish_features(cfg: ModelConfig, lake: Lake, ds: dt.date) -> dict[str, Any]:
    """Transform the (validated) landing partition and publish ``features/<feature_set>/ds=D``."""
    dset = cfg.dataset
    files = lake.landing_files("landing", dset.name, ds)
    read = read_partition(files, dset.format, dset.timestamp_column)
    if not read.ok:
        raise ValueError(
            f"landing {dset.name} ds={ds} is unreadable ({read.problems}); it should have been quarantined"
        )
    assert read.frame is not None
    feats = build_features(read.frame, cfg, reference_loader(lake))
    data = to_parquet_bytes(feats)
    source = {"dataset": dset.name, "files": {n: sha256(b) for n, b in sorted(files.items())}}
    manifest = lake.publish(
        "features", cfg.features.feature_set, ds, {".parquet": data}, manifest_meta(feats, cfg, source)
    )
    log.info(
        "published features/%s/ds=%s: %s rows, sha256 %s",
        cfg.features.feature_set,
        ds,
        manifest["rows"],
        manifest["content_sha256"][:12],
    )
    return manifest
