"""Raw partition -> feature partition, deterministically, for the offline feature store.

Determinism is what makes reruns and backfills safe: the same raw bytes and config give the same
parquet bytes (rows sorted by id, columns in config order, fixed writer options), so the content hash in
the manifest only changes when the data or the transforms do.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.config import ModelConfig, resolve

LoadReference = Callable[[str], pd.DataFrame]


def published_columns(cfg: ModelConfig) -> list[str]:
    """The columns of a published feature partition: the passthrough (id, timestamp, label, slices) then the
    model's inputs (``sluice.training.model.feature_columns``), each once."""
    f = cfg.features
    cols = [*f.passthrough, *f.numeric, *f.categorical]
    return list(dict.fromkeys(cols))


def apply_transforms(df: pd.DataFrame, cfg: ModelConfig, load_reference: LoadReference | None = None) -> pd.DataFrame:
    for i, t in enumerate(cfg.features.transforms):
        params: dict[str, Any] = dict(t.params)
        if isinstance(params.get("lookup"), str):
            if load_reference is None:
                raise ValueError(f"features.transforms.{i} ({t.fn}) needs reference table {params['lookup']!r}")
            params["lookup"] = load_reference(params["lookup"])
        df = resolve(t.fn)(df, **params)
    return df


def build_features(df: pd.DataFrame, cfg: ModelConfig, load_reference: LoadReference | None = None) -> pd.DataFrame:
    out = apply_transforms(df, cfg, load_reference)
    cols = published_columns(cfg)
    missing = [c for c in cols if c not in out.columns]
    if missing:
        raise ValueError(
            f"model {cfg.name!r}: feature columns {missing} are neither raw columns nor produced by a transform; "
            f"available: {sorted(out.columns)}"
        )
    out = out[cols].sort_values(cfg.dataset.id_column, kind="stable").reset_index(drop=True)
    for c in cfg.features.categorical:
        out[c] = out[c].astype("str")
    for c in cfg.features.numeric:
        out[c] = out[c].astype("float64")
    return out


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    """Parquet with fixed options (zstd, no pandas index); identical frames give identical bytes."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=True, write_statistics=True)
    return buf.getvalue()


def schema_of(df: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in df.dtypes.items()}


def manifest_meta(df: pd.DataFrame, cfg: ModelConfig, source: Mapping[str, Any]) -> dict[str, Any]:
    """What goes into the partition manifest besides files and hashes; no timestamps, so reruns match."""
    return {
        "feature_set": cfg.features.feature_set,
        "model": cfg.name,
        "rows": int(len(df)),
        "schema": schema_of(df),
        "config_hash": cfg.config_hash,
        "source": dict(source),
    }
