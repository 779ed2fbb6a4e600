"""The training snapshot: published feature partitions of a window, joined with the labels that have arrived.

A snapshot is defined by its inputs, not by when it was built. Its manifest lists every feature partition
(``content_sha256`` from the partition's own manifest, re-checked against the bytes read), every label
file (sha256 of its bytes), the days of the window that are missing (quarantined days are never
published), and the config hash -- and nothing else: no timestamps, no host names. The same lake and config
therefore give the same manifest and the same ``manifest_sha256``, and a changed partition, a late label or
an edited config gives a new one. The manifest is stored content-addressed under
``reports/<model>/snapshots/<manifest_sha256>.json``; its bytes hash to its name.

Labels: the labels of event day D land in ``labels/<labels.dataset>/ds=D+delay_days/`` with a ``_SUCCESS``
marker. A label has *arrived* by ``end_ds`` when its partition's ds is at most ``end_ds`` and the partition
is complete. A label never arrives before its event, so only label partitions from the window's first day
on can hold labels of the window's rows; older ones are not read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sluice.config import ModelConfig
from sluice.lake import Lake, sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The training frame (feature columns + label column, sorted by time then id) and its manifest."""

    frame: pd.DataFrame
    manifest: dict[str, Any]
    manifest_sha256: str


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of ``json.dumps(manifest, sort_keys=True)``: the snapshot's identity."""
    return hashlib.sha256(_manifest_bytes(manifest)).hexdigest()


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, allow_nan=False).encode()


def window_bounds(end_ds: dt.date, window_days: int) -> tuple[dt.date, dt.date]:
    if window_days < 1:
        raise ValueError(f"window_days={window_days!r}: must be >= 1")
    return end_ds - dt.timedelta(days=window_days - 1), end_ds


def _read_table(name: str, data: bytes, where: str) -> pd.DataFrame:
    if name.endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(data))
    if name.endswith(".csv"):
        return pd.read_csv(io.BytesIO(data))
    raise ValueError(f"{where}/{name}: unsupported file type; expected .parquet or .csv")


def _feature_partition(cfg: ModelConfig, lake: Lake, ds: dt.date) -> tuple[pd.DataFrame, dict[str, Any]]:
    fs = cfg.features.feature_set
    where = lake.uri(lake.partition_key("features", fs, ds))
    man = lake.manifest("features", fs, ds)
    data = lake.read_published("features", fs, ds)  # every file checked against its sha256
    # The partition could have been republished between the two reads: the bytes must be the manifest's.
    if man is None or sha256("".join(sha256(b) for b in data).encode()) != man["content_sha256"]:
        raise ValueError(f"{where}: partition changed while it was read; rerun the snapshot")
    frames = [_read_table(e["name"], b, where) for e, b in zip(man["files"], data, strict=True)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    f = cfg.features
    missing = [c for c in dict.fromkeys([*f.passthrough, *f.numeric, *f.categorical]) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: feature columns {missing} are missing from the published partition "
            f"(columns: {sorted(frame.columns)}); was feature set {fs!r} changed without a new name?"
        )
    entry = {"ds": ds.isoformat(), "content_sha256": man["content_sha256"], "rows": int(len(frame))}
    return frame, entry


def _arrived_labels(
    cfg: ModelConfig, lake: Lake, start: dt.date, end_ds: dt.date
) -> tuple[pd.DataFrame | None, list[dict[str, Any]], list[str]]:
    """Label rows of complete partitions with ds in [start, end_ds], one per key (the latest arrival wins)."""
    lab = cfg.labels
    frames, files, incomplete = [], [], []
    for ds in lake.partitions("labels", lab.dataset, published_only=False):
        if not start <= ds <= end_ds:
            continue
        if not lake.landing_ready("labels", lab.dataset, ds):
            incomplete.append(ds.isoformat())
            continue
        where = lake.uri(lake.partition_key("labels", lab.dataset, ds))
        for name, data in sorted(lake.landing_files("labels", lab.dataset, ds).items()):
            df = _read_table(name, data, where)
            for col, what in ((lab.column, "label column (labels.column)"), (lab.join_key, "labels.join_key")):
                if col not in df.columns:
                    raise ValueError(f"{where}/{name}: {what} {col!r} is missing; columns: {sorted(df.columns)}")
            files.append({"ds": ds.isoformat(), "file": name, "sha256": sha256(data), "rows": int(len(df))})
            frames.append(df[[lab.join_key, lab.column]].assign(_arrival=ds.isoformat()))
    if not frames:
        return None, files, incomplete
    labels = pd.concat(frames, ignore_index=True)
    # A key labelled twice (a correction) keeps its latest arrival; ties break by file order, deterministically.
    labels = labels.drop_duplicates(subset=[lab.join_key], keep="last").drop(columns="_arrival")
    return labels, files, incomplete


def sort_frame(frame: pd.DataFrame, cfg: ModelConfig) -> pd.DataFrame:
    """Rows ordered by the timestamp column, then the id column (whichever of them the frame has)."""
    keys = [c for c in (cfg.dataset.timestamp_column, cfg.dataset.id_column) if c in frame.columns]
    if not keys:
        return frame.reset_index(drop=True)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def build_snapshot(cfg: ModelConfig, lake: Lake, end_ds: dt.date, window_days: int | None = None) -> Snapshot:
    """The training set of the window ending on ``end_ds`` (inclusive), with a manifest of its inputs."""
    window = window_days if window_days is not None else cfg.training.window_days
    start, end = window_bounds(end_ds, window)
    fs, lab = cfg.features.feature_set, cfg.labels
    published = [d for d in lake.partitions("features", fs) if start <= d <= end]
    if not published:
        raise ValueError(
            f"model {cfg.name!r}: no published feature partitions of features/{fs} in the window "
            f"{start}..{end} ({window} days) at {lake.uri(f'features/{fs}')}"
        )
    days = [start + dt.timedelta(days=i) for i in range(window)]
    have = set(published)
    missing_days = [d.isoformat() for d in days if d not in have]

    frames, partitions = [], []
    for ds in published:
        frame, entry = _feature_partition(cfg, lake, ds)
        frames.append(frame)
        partitions.append(entry)
    feats = pd.concat(frames, ignore_index=True)
    if lab.join_key not in feats.columns:
        raise ValueError(
            f"model {cfg.name!r}: labels.join_key {lab.join_key!r} is not a column of features/{fs}; "
            f"add it to features.passthrough"
        )
    if lab.column in feats.columns:
        raise ValueError(f"model {cfg.name!r}: label column {lab.column!r} is also a column of features/{fs}")

    labels, label_files, incomplete = _arrived_labels(cfg, lake, start, end)
    labels_uri = lake.uri(f"labels/{lab.dataset}")
    if labels is None:
        raise ValueError(
            f"model {cfg.name!r}: no labels have arrived by {end}: no complete label partition (with _SUCCESS) "
            f"in {labels_uri} with ds in {start}..{end}"
            + (f"; incomplete partitions: {incomplete}" if incomplete else "")
        )
    if labels[lab.join_key].dtype != feats[lab.join_key].dtype:
        try:
            labels[lab.join_key] = labels[lab.join_key].astype(feats[lab.join_key].dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"model {cfg.name!r}: join key {lab.join_key!r} is {labels[lab.join_key].dtype} in {labels_uri} "
                f"but {feats[lab.join_key].dtype} in features/{fs}: {exc}"
            ) from None
    frame = feats.merge(labels, on=lab.join_key, how="inner", validate="many_to_one")
    unlabelled = len(feats) - len(frame)
    if frame.empty:
        raise ValueError(
            f"model {cfg.name!r}: none of the {len(feats)} feature rows of {start}..{end} has a label that arrived "
            f"by {end} in {labels_uri} ({len(labels)} label rows read; labels arrive {lab.delay_days} days late)"
        )
    frame = sort_frame(frame, cfg)

    positive_share = None
    if cfg.task == "classification":
        mean = frame[lab.column].mean()
        positive_share = float(mean) if pd.notna(mean) else None
    manifest: dict[str, Any] = {
        "model": cfg.name,
        "feature_set": fs,
        "window": [start.isoformat(), end.isoformat()],
        "partitions": partitions,
        "missing_days": missing_days,
        "labels": label_files,
        "labels_incomplete": incomplete,
        "rows": int(len(frame)),
        "unlabelled_rows": int(unlabelled),
        "positive_share": positive_share,
        # No config hash: the manifest describes data only (the config hash is its own lineage tag), so
        # two configs trained on the same data share a snapshot and are compared on the same test rows.
    }
    digest = manifest_digest(manifest)
    log.info(
        "snapshot %s %s..%s: %s rows from %s partitions (%s days missing), %s unlabelled rows dropped, sha256 %s",
        cfg.name,
        start,
        end,
        len(frame),
        len(partitions),
        len(missing_days),
        unlabelled,
        digest[:12],
    )
    return Snapshot(frame=frame, manifest=manifest, manifest_sha256=digest)


def snapshot_key(cfg: ModelConfig, manifest_sha256: str) -> str:
    return f"reports/{cfg.name}/snapshots/{manifest_sha256}.json"


def write_manifest(lake: Lake, cfg: ModelConfig, snapshot: Snapshot) -> str:
    """Store the manifest at ``reports/<model>/snapshots/<sha>.json`` (its bytes hash to the name); idempotent."""
    key = snapshot_key(cfg, snapshot.manifest_sha256)
    data = _manifest_bytes(snapshot.manifest)
    if sha256(data) != snapshot.manifest_sha256:
        raise ValueError(f"snapshot manifest does not hash to {snapshot.manifest_sha256}; was it modified?")
    if not lake.storage.exists(key):
        prefix, _, name = key.rpartition("/")
        lake.put_files(prefix, {name: data})
    return key


def read_manifest(lake: Lake, cfg: ModelConfig, manifest_sha256: str) -> dict[str, Any]:
    """A stored snapshot manifest, checked against its content address."""
    key = snapshot_key(cfg, manifest_sha256)
    data = lake.read(key)
    if sha256(data) != manifest_sha256:
        raise ValueError(f"{lake.uri(key)}: content does not match its sha256 name")
    manifest: dict[str, Any] = json.loads(data)
    return manifest


def time_split(frame: pd.DataFrame, cfg: ModelConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) by time: the oldest rows train, the newest ``split.test`` share tests.

    Rows are ordered by the timestamp column, then the id column; sizes are rounded, and each part must be
    non-empty.
    """
    ts = cfg.dataset.timestamp_column
    if ts not in frame.columns:
        raise ValueError(f"model {cfg.name!r}: time split needs timestamp column {ts!r}; add it to passthrough")
    ordered = sort_frame(frame, cfg)
    n = len(ordered)
    n_test = round(n * cfg.training.split.test)
    n_val = round(n * cfg.training.split.validation)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(
            f"model {cfg.name!r}: {n} rows are too few for a time split "
            f"(train {n_train}, validation {n_val}, test {n_test})"
        )
    train = ordered.iloc[:n_train].reset_index(drop=True)
    val = ordered.iloc[n_train : n_train + n_val].reset_index(drop=True)
    test = ordered.iloc[n_train + n_val :].reset_index(drop=True)
    return train, val, test
