"""A corpus of bad landing files, so every data check in the pipeline has something real to catch.

Each corruption is ``fn(df, fmt, rng, **params) -> bytes``: it takes the clean events of one day and returns
the bytes a misbehaving upstream would have delivered instead. Columns default to the loans domain when
present (``annual_income``, ``purpose``...) and otherwise are inferred from dtypes, so the same corpus works
on any frame with an ``*_id`` column and a timestamp column. Functions are pure and deterministic given
``rng``; they never modify ``df``.
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS: tuple[str, ...] = ("parquet", "csv")

Corruption = Callable[..., bytes]


def render(df: pd.DataFrame, fmt: str) -> bytes:
    """Serialise a frame as a clean landing file; same frame gives byte-identical output."""
    _check_fmt(fmt)
    if fmt == "csv":
        return df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return _parquet_bytes(pa.Table.from_pandas(df, preserve_index=False))


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: expected one of {FORMATS}")


# -- column inference -------------------------------------------------------------------------------------


def _id_column(df: pd.DataFrame) -> str:
    return next((c for c in df.columns if str(c).endswith("_id")), str(df.columns[0]))


def _ts_column(df: pd.DataFrame) -> str:
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            return str(c)
    raise ValueError("frame has no datetime column to corrupt")


def _numeric_columns(df: pd.DataFrame) -> list[str]:
    return [
        str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    ]


def _string_columns(df: pd.DataFrame) -> list[str]:
    idc = _id_column(df)
    return [str(c) for c in df.columns if pd.api.types.is_string_dtype(df[c]) and c != idc]


def _pick(
    df: pd.DataFrame, column: str | None, preferred: str, candidates: Sequence[str], rng: np.random.Generator
) -> str:
    """The explicit column, else the domain default, else a seeded choice among the candidates."""
    if column is not None:
        if column not in df.columns:
            raise ValueError(f"column={column!r}: not in frame columns {list(df.columns)}")
        return column
    if preferred in df.columns:
        return preferred
    if not candidates:
        raise ValueError("frame has no suitable column for this corruption")
    return str(candidates[int(rng.integers(len(candidates)))])


def _rows(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``round(fraction * n)`` distinct rows (at least one)."""
    k = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=k, replace=False))


def _features(df: pd.DataFrame) -> list[str]:
    idc, ts = _id_column(df), _ts_column(df)
    return [str(c) for c in df.columns if c not in (idc, ts)]


# -- the corpus -------------------------------------------------------------------------------------------


def empty_file(df: pd.DataFrame, fmt: str, rng: np.random.Generator) -> bytes:
    """A zero-byte file (an upload that created the object but wrote nothing).

    Caught by: the landing sensor / reader (not a parseable file) before any expectation runs.
    """
    _check_fmt(fmt)
    return b""


def header_only(df: pd.DataFrame, fmt: str, rng: np.random.Generator) -> bytes:
    """A well-formed file with the right schema and zero rows.

    Caught by: the row-count (volume) expectation; schema checks pass.
    """
    return render(df.iloc[0:0], fmt)


def missing_column(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, column: str | None = None) -> bytes:
    """One feature column is dropped (default ``credit_score``).

    Caught by: the schema check (expected column set).
    """
    col = _pick(df, column, "credit_score", _features(df), rng)
    return render(df.drop(columns=[col]), fmt)


def extra_column(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, name: str = "internal_score") -> bytes:
    """An unannounced column appears (upstream added a field).

    Caught by: the schema check (exact column set); harmless for models that select columns by name.
    """
    if name in df.columns:
        raise ValueError(f"name={name!r}: column already exists")
    return render(df.assign(**{name: np.round(rng.normal(0.0, 1.0, len(df)), 4)}), fmt)


def renamed_column(
    df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, column: str | None = None, new_name: str = ""
) -> bytes:
    """A column is renamed upstream (default ``annual_income`` -> ``annual_income_usd``).

    Caught by: the schema check (one expected column missing, one unexpected column present).
    """
    col = _pick(df, column, "annual_income", _features(df), rng)
    return render(df.rename(columns={col: new_name or f"{col}_usd"}), fmt)


def numbers_as_strings(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, column: str | None = None) -> bytes:
    """A numeric column is written as text: mostly ``"54321.0"``, some ``"54.3k"``, some ``"n/a"``.

    In parquet the column's physical type becomes string; in CSV it no longer parses as a number.
    Caught by: the column-type expectation (and the numeric range checks, which cannot run).
    """
    col = _pick(df, column, "annual_income", _numeric_columns(df), rng)
    values = df[col].astype("float64").to_numpy()
    kind = rng.random(len(df))
    text = [
        "n/a" if k < 0.03 else f"{v / 1000:.1f}k" if k < 0.25 else repr(float(v))
        for k, v in zip(kind, values, strict=True)
    ]
    return render(df.assign(**{col: pd.Series(text, index=df.index, dtype="str")}), fmt)


def decimal_commas(df: pd.DataFrame, fmt: str, rng: np.random.Generator) -> bytes:
    """Float columns use a decimal comma (``"1234,56"``), as a European-locale export would.

    CSV: pandas quotes the fields, so a default reader sees strings. Parquet: the columns become strings.
    A frame without float columns gets its integer features written as ``"1502,0"``.
    Caught by: the column-type expectation.
    """
    _check_fmt(fmt)
    cols = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    cols = cols or [c for c in _numeric_columns(df) if c in _features(df)]
    if not cols:
        raise ValueError("frame has no numeric column to write with decimal commas")
    out = df.astype({c: "float64" for c in cols})
    if fmt == "csv":
        return out.to_csv(index=False, lineterminator="\n", decimal=",").encode("utf-8")
    text = {c: [repr(float(v)).replace(".", ",") for v in out[c]] for c in cols}
    return render(out.assign(**{c: pd.Series(v, index=df.index, dtype="str") for c, v in text.items()}), fmt)


def null_burst(
    df: pd.DataFrame,
    fmt: str,
    rng: np.random.Generator,
    *,
    column: str | None = None,
    fraction: float = 0.3,
) -> bytes:
    """30% nulls in a column that is never null (default ``annual_income``); the dtype is kept.

    Caught by: the not-null (or mostly-not-null) expectation on that column.
    """
    col = _pick(df, column, "annual_income", _features(df), rng)
    out = df.copy()
    if pd.api.types.is_integer_dtype(out[col]):
        out[col] = out[col].astype("Int64")
    out.loc[out.index[_rows(len(out), fraction, rng)], col] = None
    return render(out, fmt)


def out_of_range(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, fraction: float = 0.03) -> bytes:
    """Impossible values: ``age`` 250 and negative ``annual_income`` on a few percent of rows.

    Without those columns, a seeded numeric feature gets ``-999999``. Types and nulls stay valid.
    Caught by: the value-range (between) expectations.
    """
    out = df.copy()
    n = len(out)
    touched = False
    if "age" in out.columns:
        out.loc[out.index[_rows(n, fraction, rng)], "age"] = 250
        touched = True
    if "annual_income" in out.columns:
        rows = out.index[_rows(n, fraction, rng)]
        out.loc[rows, "annual_income"] = -out.loc[rows, "annual_income"].abs() - 1.0
        touched = True
    if not touched:
        col = _pick(out, None, "", [c for c in _numeric_columns(out) if c in _features(out)], rng)
        out.loc[out.index[_rows(n, fraction, rng)], col] = -999999
    return render(out, fmt)


def nan_inf(
    df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, column: str | None = None, fraction: float = 0.06
) -> bytes:
    """NaN, +inf and -inf (a third each) in a numeric column (default ``debt_to_income``).

    Parquet keeps inf as IEEE values and NaN as null; CSV writes ``inf``/``-inf``/empty.
    Caught by: not-null and range expectations (inf passes type checks, fails ``between``).
    """
    col = _pick(df, column, "debt_to_income", _numeric_columns(df), rng)
    out = df.copy()
    out[col] = out[col].astype("float64")
    rows = _rows(len(out), fraction, rng)
    out.loc[out.index[rows], col] = np.resize(np.array([np.nan, np.inf, -np.inf]), len(rows))
    return render(out, fmt)


def duplicate_ids(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, fraction: float = 0.05) -> bytes:
    """A few percent of rows reuse another row's id (a replayed batch merged upstream); count unchanged.

    Caught by: the id-uniqueness expectation.
    """
    idc = _id_column(df)
    n = len(df)
    if n < 2:
        raise ValueError("need at least two rows to duplicate ids")
    targets = _rows(n - 1, fraction, rng) + 1  # never row 0, so a source always exists
    ids = df[idc].to_numpy(dtype=object).copy()
    ids[targets] = ids[rng.integers(0, targets)]  # each target copies an earlier row's id
    return render(df.assign(**{idc: pd.Series(ids, index=df.index, dtype="str")}), fmt)


def unseen_categories(
    df: pd.DataFrame,
    fmt: str,
    rng: np.random.Generator,
    *,
    column: str | None = None,
    category: str = "crypto",
    share: float = 0.25,
) -> bytes:
    """A never-seen category takes 25% of a categorical column (default ``purpose`` -> ``crypto``).

    Caught by: the value-set expectation; downstream, the drift check on that feature.
    """
    col = _pick(df, column, "purpose", _string_columns(df), rng)
    out = df.copy()
    out.loc[out.index[_rows(len(out), share, rng)], col] = category
    return render(out, fmt)


def timestamps_outside_interval(
    df: pd.DataFrame,
    fmt: str,
    rng: np.random.Generator,
    *,
    fraction: float = 0.1,
    days: int | None = None,
) -> bytes:
    """A tenth of the timestamps are moved by whole days (a timezone / partitioning bug upstream).

    Caught by: the "timestamp within the partition's interval" expectation.
    """
    ts = _ts_column(df)
    out = df.copy()
    rows = _rows(len(out), fraction, rng)
    if days == 0:
        raise ValueError("days=0: would not move any timestamp")
    shift = np.full(len(rows), days) if days is not None else rng.choice([-3, -1, 1, 2, 7], size=len(rows))
    out.loc[out.index[rows], ts] = out[ts].iloc[rows] + pd.to_timedelta(shift, unit="D")
    return render(out, fmt)


def utf16_encoding(df: pd.DataFrame, fmt: str, rng: np.random.Generator) -> bytes:
    """The file is CSV in UTF-16 (with BOM), whatever format was expected: an export-tool default.

    Caught by: the reader (parquet magic bytes missing / UTF-8 decode error) before any expectation.
    """
    _check_fmt(fmt)
    return df.to_csv(index=False, lineterminator="\n").encode("utf-16")


_MARK = "\u2063SLUICE_INVALID_UTF8\u2063"


def invalid_utf8(
    df: pd.DataFrame,
    fmt: str,
    rng: np.random.Generator,
    *,
    column: str | None = None,
    fraction: float = 0.02,
) -> bytes:
    """Raw ``0xff 0xfe`` bytes prefixed to a string field (default ``region``) on a few rows.

    CSV: the file is no longer valid UTF-8. Parquet: a UTF-8-annotated column holds invalid bytes; the file
    opens, and pandas 3 even reads it lazily, but ``tolist``/``value_counts`` then raise.
    Caught by: the reader (CSV decode; parquet ``Table.validate(full=True)``), else the value-set check.
    """
    col = _pick(df, column, "region", _string_columns(df), rng)
    rows = _rows(len(df), fraction, rng)
    if fmt == "csv":
        out = df.copy()
        out.loc[out.index[rows], col] = _MARK + out[col].iloc[rows].astype("str")
        return render(out, fmt).replace(_MARK.encode("utf-8"), b"\xff\xfe")
    _check_fmt(fmt)
    raw = [("" if pd.isna(v) else str(v)).encode("utf-8") for v in df[col]]
    for i in rows:
        raw[i] = b"\xff\xfe" + raw[i]
    binary = pa.array(raw, type=pa.binary())
    bad = pa.Array.from_buffers(pa.string(), len(binary), binary.buffers())  # skips UTF-8 validation
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.set_column(table.schema.get_field_index(col), col, bad)
    return _parquet_bytes(table)


def truncated_parquet(df: pd.DataFrame, fmt: str, rng: np.random.Generator) -> bytes:
    """The clean file cut in half (an interrupted upload). Parquet loses its footer; CSV ends mid-row.

    Caught by: the reader for parquet (no footer magic); for CSV, the row-count and not-null checks.
    """
    data = render(df, fmt)
    return data[: len(data) // 2]


def row_count_spike(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, factor: int = 20) -> bytes:
    """The day arrives with ``factor`` x the rows: resampled copies with fresh, well-formed unique ids.

    Only the count is wrong (ids unique, values in range, same distributions).
    Caught by: the volume expectation (row count within the expected band).
    """
    if factor < 2:
        raise ValueError(f"factor={factor!r}: must be >= 2")
    idc = _id_column(df)
    extra = df.sample(len(df) * (factor - 1), replace=True, random_state=rng).reset_index(drop=True)
    extra[idc] = _fresh_ids(df[idc].astype("str").tolist(), len(extra))
    out = pd.concat([df, extra], ignore_index=True)
    return render(out.astype(df.dtypes.to_dict()), fmt)


def _fresh_ids(ids: list[str], count: int) -> list[str]:
    """Continue ``<prefix><digits>`` numbering when all ids share it, else suffix ``~k`` (still unique)."""
    parsed = [re.fullmatch(r"(.*?)(\d+)", i) for i in ids]
    if ids and all(parsed) and len({m.group(1) for m in parsed if m}) == 1:
        prefix = parsed[0].group(1) if parsed[0] else ""
        start = max(int(m.group(2)) for m in parsed if m) + 1
        width = max(len(parsed[0].group(2)) if parsed[0] else 0, len(str(start + count)))
        return [f"{prefix}{k:0{width}d}" for k in range(start, start + count)]
    base = ids or ["row"]
    return [f"{base[k % len(base)]}~{k}" for k in range(count)]


CORRUPTIONS: dict[str, Corruption] = {
    f.__name__: f
    for f in (
        empty_file,
        header_only,
        missing_column,
        extra_column,
        renamed_column,
        numbers_as_strings,
        decimal_commas,
        null_burst,
        out_of_range,
        nan_inf,
        duplicate_ids,
        unseen_categories,
        timestamps_outside_interval,
        utf16_encoding,
        invalid_utf8,
        truncated_parquet,
        row_count_spike,
    )
}


# -- corruptions that only distribution checks catch ------------------------------------------------------
#
# Each of these keeps the file readable, the schema and the types, and (except the share shift and the
# duplicates) every single value inside the range the column had: a row-level suite passes them all. They
# are the held-out test of suite inference (sluice.datagen.holdout); the features DAG's corpus above is
# CORRUPTIONS.


def _categorical_columns(df: pd.DataFrame, max_categories: int = 100) -> list[str]:
    return [c for c in _string_columns(df) if df[c].nunique() <= max_categories]


def constant_column(
    df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, column: str | None = None, value: float | None = None
) -> bytes:
    """Every row of a numeric column holds one value (default: the column's median, inside its range).

    Caught by: the column's standard-deviation expectation (a spread of zero).
    """
    col = _pick(df, column, "annual_income", [c for c in _numeric_columns(df) if c in _features(df)], rng)
    out = df.copy()
    fill = float(out[col].median()) if value is None else float(value)
    if pd.api.types.is_integer_dtype(out[col]) and float(fill).is_integer():
        out[col] = pd.Series(int(fill), index=out.index, dtype=out[col].dtype)
    else:
        out[col] = pd.Series(fill, index=out.index, dtype="float64")
    return render(out, fmt)


def unit_change(
    df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, column: str | None = None, factor: float = 0.001
) -> bytes:
    """A numeric column is delivered in another unit: values times ``factor`` (default 1/1000, so dollars
    become thousands of dollars and every value stays inside the old range of a non-negative column).

    Caught by: the column's standard-deviation and mean expectations.
    """
    if factor <= 0 or factor == 1:
        raise ValueError(f"factor={factor!r}: must be positive and not 1")
    col = _pick(df, column, "annual_income", [c for c in _numeric_columns(df) if c in _features(df)], rng)
    return render(df.assign(**{col: df[col].astype("float64") * factor}), fmt)


def string_format_change(
    df: pd.DataFrame,
    fmt: str,
    rng: np.random.Generator,
    *,
    column: str | None = None,
    how: str = "space",
) -> bytes:
    """Upstream changes how a string column is written: a trailing space (``how="space"``), upper case
    (``"upper"``) or lower case (``"lower"``), on every row (default: the id column).

    Caught by: the id pattern/length expectations, or the category value set.
    """
    changes = {"space": lambda s: s + " ", "upper": lambda s: s.str.upper(), "lower": lambda s: s.str.lower()}
    if how not in changes:
        raise ValueError(f"how={how!r}: expected one of {sorted(changes)}")
    col = _pick(df, column, _id_column(df), [_id_column(df), *_string_columns(df)], rng)
    values = df[col].astype("str")
    changed = changes[how](values).where(df[col].notna())
    return render(df.assign(**{col: changed.astype("str")}), fmt)


def category_share_shift(
    df: pd.DataFrame,
    fmt: str,
    rng: np.random.Generator,
    *,
    column: str | None = None,
    points: float = 0.3,
) -> bytes:
    """A category's share moves by ``points`` (default 30 percentage points), every value still known.

    The most common category gains the share from the others' rows; when it holds more than
    ``1 - points`` already, it gives the share to the second most common instead.
    Caught by: the column's KL-divergence expectation.
    """
    if not 0 < points < 1:
        raise ValueError(f"points={points!r}: must be in (0, 1)")
    col = _pick(df, column, "purpose", _categorical_columns(df), rng)
    counts = df[col].value_counts()
    if len(counts) < 2:
        raise ValueError(f"column={col!r}: needs two categories to move a share between")
    top, second = counts.index[0], counts.index[1]
    values = df[col]
    n_move = round(points * int(values.notna().sum()))
    if counts.iloc[0] / counts.sum() <= 1 - points:
        gain, donors = top, np.flatnonzero(values.notna() & (values != top))
    else:
        gain, donors = second, np.flatnonzero(values == top)
    if len(donors) < n_move:
        raise ValueError(f"column={col!r}: too few rows to move {points:.0%} of the share")
    out = df.copy()
    out.loc[out.index[np.sort(rng.choice(donors, size=n_move, replace=False))], col] = gain
    return render(out, fmt)


def duplicated_rows(df: pd.DataFrame, fmt: str, rng: np.random.Generator, *, fraction: float = 0.5) -> bytes:
    """Half the rows (``fraction``) arrive twice: a replayed batch appended to the day, ids included.

    The row count stays inside its band. Caught by: the id-uniqueness expectation.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r}: must be in (0, 1]")
    again = df.iloc[_rows(len(df), fraction, rng)]
    return render(pd.concat([df, again], ignore_index=True), fmt)


#: What a suite needs DISTRIBUTION checks for (sluice.validation.schema): the held-out corruptions.
DISTRIBUTION_CORRUPTIONS: dict[str, Corruption] = {
    f.__name__: f for f in (constant_column, unit_change, string_format_change, category_share_shift, duplicated_rows)
}


def corruption_params(kind: str) -> frozenset[str]:
    """The optional keyword parameters a corruption kind accepts (for scenario validation)."""
    fn = CORRUPTIONS.get(kind) or DISTRIBUTION_CORRUPTIONS.get(kind)
    if fn is None:
        raise KeyError(kind)
    sig = inspect.signature(fn)
    return frozenset(p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def corrupt(kind: str, df: pd.DataFrame, fmt: str, rng: np.random.Generator, **params: object) -> bytes:
    """Apply one registered corruption by name."""
    fn = CORRUPTIONS.get(kind) or DISTRIBUTION_CORRUPTIONS.get(kind)
    if fn is None:
        known = sorted([*CORRUPTIONS, *DISTRIBUTION_CORRUPTIONS])
        raise ValueError(f"kind={kind!r}: unknown corruption; known: {known}")
    return fn(df, fmt, rng, **params)
