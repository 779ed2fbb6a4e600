"""Batch scoring: a published feature partition in, a published predictions partition out, in bounded memory.

``score_partition`` reads ``features/<feature_set>/ds=D`` as the lake's manifest lists it, every file checked
against its sha256 first, and streams it in record batches of ``batch_rows`` rows with only the columns it
needs (the id, the timestamp when present, the model's inputs). Each batch is scored with
:func:`sluice.training.model.predict_scores` and appended to a parquet file in memory, which is published as
``predictions/<model>/ds=D`` with the lake's manifest commit. Memory is bounded by a batch and the output
file, not by the partition.

Every output row carries ``score`` (float64), ``model_version`` and ``model_run_id``, next to the id and
timestamp it was scored for. The manifest's meta ``unknown_categories`` counts, per categorical input, the
values the model never saw (``sluice.serving.categories``; ``{}`` when there were none), counted in the
calling thread while the workers score. The output is deterministic: the same partition and model give the same bytes,
so a rerun writes the same keys and the same ``content_sha256``. Row groups are cut at a fixed
``ROW_GROUP_ROWS`` whatever ``batch_rows`` is, so the batch size changes memory and speed, not the file;
the parquet footer holds the schema and the writer's version, never a time.

Each batch is split into ``workers`` contiguous slices scored by single-threaded workers (the model's own
thread pools held to one thread) and joined once per batch, while the next batch is decoded. A model that
parallelises inside ``predict`` synchronises its threads far more often: HistGradientBoosting runs one
OpenMP loop per tree, some 1,300 barriers for a million rows in 65,536-row batches, and on a busy machine
each waits for a descheduled thread -- that halved throughput. Memory stays that of one batch whatever
``workers`` is; ``workers=1`` scores in the calling thread with the model's default threads.

Local files are hashed and parsed through one open handle: the lake replaces files by rename and never
rewrites one in place, so the bytes parsed are the bytes checked even if the partition is republished
meanwhile. S3 objects are read whole (a feature partition is tens of MB) and checked before parsing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import ThreadpoolController

from sluice.config import ModelConfig
from sluice.lake import Lake, ds_str, sha256
from sluice.serving.categories import known_categories, unknown_counts
from sluice.training.model import feature_columns, predict_scores

log = logging.getLogger(__name__)

ZONE = "predictions"
SCORE, MODEL_VERSION, MODEL_RUN_ID = "score", "model_version", "model_run_id"
#: Rows per output row group, independent of ``batch_rows`` so that the batch size never changes the bytes.
ROW_GROUP_ROWS = 1 << 17
#: Block size for hashing a local feature file without reading it whole.
HASH_BLOCK_BYTES = 1 << 20
#: Scoring threads when the caller does not say: the CPUs this process may use, at most this many.
MAX_DEFAULT_WORKERS = 4
#: A progress line every this many batches (16 batches of 65,536 rows: about every million rows).
LOG_EVERY_BATCHES = 16


def _model_inputs(cfg: ModelConfig, model: Any) -> list[str]:
    """The columns the model was fitted on (what ``predict_scores`` takes); the config's if it does not say."""
    names = getattr(model, "feature_names_in_", None)
    return [str(c) for c in names] if names is not None else feature_columns(cfg)


def _open_verified(lake: Lake, key: str, entry: dict[str, Any], stack: contextlib.ExitStack) -> pq.ParquetFile:
    """The manifest's file ``entry`` as a ParquetFile, after its bytes matched the manifest's sha256."""
    fkey = f"{key}/{entry['name']}"
    where = lake.uri(fkey)
    path = lake.storage.local_path(fkey)
    try:
        if path is not None:
            source = stack.enter_context(pa.OSFile(path, "rb"))
            digest = hashlib.sha256()
            while block := source.read(HASH_BLOCK_BYTES):
                digest.update(block)
            actual = digest.hexdigest()
            source.seek(0)
        else:
            data = lake.storage.read_bytes(fkey)
            actual = sha256(data)
            source = pa.BufferReader(data)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{where}: listed in the partition's manifest but missing; the partition was republished or damaged, "
            "rerun the features DAG for this day"
        ) from None
    if actual != entry["sha256"]:
        raise ValueError(f"{where}: sha256 does not match the manifest (the file is corrupt or was replaced)")
    try:
        return pq.ParquetFile(source, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{where}: not a readable parquet file: {exc}") from None


def _output_schema(source: pa.Schema, id_column: str, ts_column: str | None) -> pa.Schema:
    fields = [pa.field(id_column, source.field(id_column).type)]
    if ts_column is not None:
        fields.append(pa.field(ts_column, source.field(ts_column).type))
    fields += [pa.field(SCORE, pa.float64()), pa.field(MODEL_VERSION, pa.string()), pa.field(MODEL_RUN_ID, pa.string())]
    return pa.schema(fields)


class _RowGroupWriter:
    """Buffers scored batches and writes row groups of exactly ``ROW_GROUP_ROWS`` rows (the last one shorter).

    Each row group is written from one contiguous chunk, so page boundaries, and hence the bytes, do not
    depend on how the rows arrived.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.sink = pa.BufferOutputStream()
        self.writer = pq.ParquetWriter(
            self.sink,
            schema,
            compression="zstd",
            use_dictionary=[MODEL_VERSION, MODEL_RUN_ID],
            write_statistics=True,
        )
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.Table.from_batches(self.pending, self.schema)
        while table.num_rows >= ROW_GROUP_ROWS or (final and table.num_rows):
            n = min(ROW_GROUP_ROWS, table.num_rows)
            self.writer.write_table(table.slice(0, n).combine_chunks(), row_group_size=n)
            table = table.slice(n)
        self.pending, self.pending_rows = table.to_batches(), table.num_rows

    def close(self) -> bytes:
        self._flush(final=True)
        self.writer.close()
        return bytes(self.sink.getvalue().to_pybytes())


def default_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


class _Scorer:
    """``predict_scores`` on one batch at a time, split across ``workers`` single-threaded scoring threads.

    ``start(batch)`` returns a function giving the batch's scores in row order; the caller reads the next
    batch meanwhile. One worker scores in the calling thread with the model's default threads.
    """

    def __init__(self, model: Any, inputs: list[str], task: str, workers: int, stack: contextlib.ExitStack) -> None:
        self.model, self.inputs, self.task, self.workers = model, inputs, task, workers
        if workers > 1:
            self.threads = ThreadpoolController()
            # BLAS pools are process-wide: held to one thread while the workers run, restored on exit.
            stack.enter_context(self.threads.limit(limits=1, user_api="blas"))
            self.pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="sluice-score"))

    def _score(self, batch: pa.RecordBatch) -> np.ndarray:
        return predict_scores(self.model, batch.select(self.inputs).to_pandas(), self.task)

    def _score_single_threaded(self, batch: pa.RecordBatch) -> np.ndarray:
        with self.threads.limit(limits=1, user_api="openmp"):  # OpenMP limits are per calling thread
            return self._score(batch)

    def start(self, batch: pa.RecordBatch) -> Callable[[], np.ndarray]:
        n = batch.num_rows
        if self.workers == 1 or n < 2:
            return lambda: self._score(batch)
        bounds = np.linspace(0, n, min(self.workers, n) + 1).astype(int)
        futures = [
            self.pool.submit(self._score_single_threaded, batch.slice(a, b - a))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return lambda: np.concatenate([f.result() for f in futures])


def _column(batch: pa.RecordBatch, name: str, field: pa.Field) -> pa.Array:
    arr = batch.column(name)
    return arr if arr.type == field.type else arr.cast(field.type)


def score_partition(
    cfg: ModelConfig,
    lake: Lake,
    ds: dt.date | str,
    model: Any,
    *,
    model_version: str,
    run_id: str,
    batch_rows: int = 65_536,
    workers: int | None = None,
    zone: str = ZONE,
    name: str | None = None,
) -> dict[str, Any]:
    """Score the published feature partition of ``ds`` with ``model`` and publish ``predictions/<model>/ds=D``
    (or ``<zone>/<name>/ds=D``: shadow scoring writes ``shadow/<model>/v<version>/ds=D`` the same way).

    ``workers`` single-threaded scoring threads (default: the usable CPUs, at most ``MAX_DEFAULT_WORKERS``)
    share each batch; 1 scores in the calling thread. Raises FileNotFoundError when the feature partition is not
    published, ValueError when a file does not match its manifest or lacks columns the model needs. Returns a
    summary: rows, batches, seconds, rows_per_second, key, uri, content_sha256, model_version and the
    manifest's other facts.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows={batch_rows!r}: must be >= 1")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers={workers!r}: must be >= 1")
    t0 = time.perf_counter()
    model_version, run_id = str(model_version), str(run_id)
    out_name = cfg.name if name is None else name
    fs, id_col, ts_col = cfg.features.feature_set, cfg.dataset.id_column, cfg.dataset.timestamp_column
    fkey = lake.partition_key("features", fs, ds)
    features_manifest = lake.manifest("features", fs, ds)
    if features_manifest is None:
        raise FileNotFoundError(
            f"no published feature partition at {lake.uri(fkey)} (lake {lake.root}): "
            f"run the features DAG {cfg.dag_id('features')} for ds={ds_str(ds)} first"
        )
    inputs = _model_inputs(cfg, model)
    known = {c: cats for c, cats in known_categories(model).items() if c in inputs}
    unknown: Counter[str] = Counter()
    out: _RowGroupWriter | None = None
    keep: list[str] = []
    rows = batches = 0
    with contextlib.ExitStack() as stack:
        scorer = _Scorer(model, inputs, cfg.task, workers, stack)

        def emit(batch: pa.RecordBatch, scores: np.ndarray) -> None:
            nonlocal rows, batches
            assert out is not None, "the writer opens before the first batch is scored"
            n = batch.num_rows
            arrays = [_column(batch, c, out.schema.field(c)) for c in keep]
            arrays += [
                pa.array(np.asarray(scores, dtype="float64"), type=pa.float64()),
                pa.repeat(pa.scalar(model_version, pa.string()), n),
                pa.repeat(pa.scalar(run_id, pa.string()), n),
            ]
            out.write(pa.RecordBatch.from_arrays(arrays, schema=out.schema))
            rows, batches = rows + n, batches + 1
            if batches % LOG_EVERY_BATCHES == 0:
                log.info(
                    "scoring %s ds=%s: %s rows in %s batches, %s rows/s",
                    cfg.name,
                    ds_str(ds),
                    rows,
                    batches,
                    round(rows / (time.perf_counter() - t0)),
                )

        for entry in features_manifest["files"]:
            pf = _open_verified(lake, fkey, entry, stack)
            available = set(pf.schema_arrow.names)
            missing = [c for c in dict.fromkeys([id_col, *inputs]) if c not in available]
            if missing:
                raise ValueError(
                    f"{lake.uri(fkey)}/{entry['name']}: lacks columns {missing} that model {cfg.name!r} needs "
                    f"(id column {id_col!r} and the model's inputs); republish the features with the current config"
                )
            if out is None:
                out = _RowGroupWriter(_output_schema(pf.schema_arrow, id_col, ts_col if ts_col in available else None))
                keep = [f.name for f in out.schema if f.name in (id_col, ts_col)]
            columns = list(dict.fromkeys([*keep, *inputs]))
            reader = pf.iter_batches(batch_size=batch_rows, columns=columns, use_threads=True)
            batch = next(reader, None)
            while batch is not None:
                scores = scorer.start(batch)
                following = next(reader, None)  # decoded while the workers score
                if known:
                    unknown.update(unknown_counts(batch.select(list(known)).to_pandas(), known))
                emit(batch, scores())
                batch = following
    if out is None:
        raise ValueError(f"{lake.uri(fkey)}: the manifest lists no files; rerun the features DAG for this day")
    data = out.close()
    meta = {
        "model": cfg.name,
        "model_version": model_version,
        "model_run_id": run_id,
        "rows": rows,
        "feature_set": fs,
        "features_content_sha256": features_manifest["content_sha256"],
        "batch_rows": batch_rows,
        "unknown_categories": dict(sorted(unknown.items())),
    }
    manifest = lake.publish(zone, out_name, ds, {".parquet": data}, meta=meta)
    seconds = time.perf_counter() - t0
    key = lake.partition_key(zone, out_name, ds)
    log.info(
        "published %s/%s/ds=%s: %s rows in %s batches, %.1fs, %s rows/s, model v%s, sha256 %s",
        zone,
        out_name,
        ds_str(ds),
        rows,
        batches,
        seconds,
        round(rows / seconds) if seconds > 0 else rows,
        model_version,
        manifest["content_sha256"][:12],
    )
    return {
        "model": cfg.name,
        "ds": ds_str(ds),
        "rows": rows,
        "batches": batches,
        "batch_rows": batch_rows,
        "workers": workers,
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds > 0 else float(rows),
        "key": key,
        "uri": lake.uri(key),
        "files": [e["name"] for e in manifest["files"]],
        "content_sha256": manifest["content_sha256"],
        "features_content_sha256": features_manifest["content_sha256"],
        "model_version": model_version,
        "model_run_id": run_id,
        "unknown_categories": meta["unknown_categories"],
    }


def read_predictions(cfg: ModelConfig, lake: Lake, ds: dt.date | str) -> pd.DataFrame:
    """The published predictions of ``ds`` (id, timestamp, score, model_version, model_run_id), checked."""
    key = lake.partition_key(ZONE, cfg.name, ds)
    if lake.manifest(ZONE, cfg.name, ds) is None:
        raise FileNotFoundError(
            f"no published predictions at {lake.uri(key)}: score the day first (batch scoring of {cfg.name!r})"
        )
    frames = [pd.read_parquet(io.BytesIO(b)) for b in lake.read_published(ZONE, cfg.name, ds)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
