"""Turn the raw bytes of a landing partition into a DataFrame, or into a named reason why not.

Nothing here raises on bad input: an unreadable file (empty, wrong encoding, truncated parquet) is a
validation failure with evidence, so it ends quarantined like any other bad partition.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class ReadResult:
    frame: pd.DataFrame | None
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.frame is not None and not self.problems


def _problem(fname: str, check: str, detail: str) -> dict[str, str]:
    return {"file": fname, "check": check, "detail": detail}


def read_one(fname: str, data: bytes, fmt: str) -> tuple[pd.DataFrame | None, dict[str, str] | None]:
    if not data:
        return None, _problem(fname, "file_not_empty", "file is empty (0 bytes)")
    if fmt == "csv":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            hint = (
                " (looks like UTF-16: starts with a byte-order mark)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            )
            return None, _problem(
                fname, "file_is_utf8", f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}{hint}"
            )
        try:
            return pd.read_csv(io.StringIO(text)), None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            return None, _problem(fname, "file_is_parseable_csv", f"CSV parse error: {exc}")
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        table.validate(full=True)  # invalid UTF-8 in a string column only shows up here, not at read
        return table.to_pandas(), None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        return None, _problem(fname, "file_is_readable_parquet", f"not a readable parquet file: {exc}")


def read_partition(files: Mapping[str, bytes], fmt: str, timestamp_column: str | None = None) -> ReadResult:
    """Concatenate every data file; normalise the timestamp column so CSV and parquet compare equal."""
    if not files:
        return ReadResult(None, [_problem("(none)", "partition_has_files", "landing partition holds no data files")])
    frames: list[pd.DataFrame] = []
    problems: list[dict[str, str]] = []
    for fname in sorted(files):
        frame, problem = read_one(fname, files[fname], fmt)
        if problem:
            problems.append(problem)
        elif frame is not None:  # read_one returns a frame or a problem, never neither
            frames.append(frame)
    if problems:
        return ReadResult(None, problems)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if timestamp_column and timestamp_column in df.columns:
        col = df[timestamp_column]
        if not pd.api.types.is_datetime64_any_dtype(col):
            # Unparseable values become NaT, which the suite's not-null expectation then reports.
            col = pd.to_datetime(col, errors="coerce", utc=True).dt.tz_localize(None)
        elif getattr(col.dt, "tz", None) is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        df[timestamp_column] = col.astype("datetime64[us]")
    return ReadResult(df)
