"""Failed checks as rows of plain text, the same words in the quarantine page and in the alert email.

A failure is one record of a failed check: a GX expectation (``expectation``, ``column``, counts, ``sample``
with ``sample_ids``) or a file-level problem from the reader (``check``, ``file``, ``detail``). Both the
validation layer and the alerts render them, so the wording lives here, below both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: column names of :func:`failure_rows`
FAILURE_HEADER = ("check", "column / file", "unexpected rows", "observed", "sample")

FailureRow = tuple[str, str, str, str, str]


def fmt_value(v: object) -> str:
    """A value as short text: floats with 4 significant digits, ``None`` as empty."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def sample_text(values: Sequence[object], ids: Sequence[object], id_column: str | None, n: int) -> str:
    """``id=123: value, ...`` when the ids are known, else the values alone."""
    if id_column and ids and len(ids) >= min(len(values), n):
        return ", ".join(
            f"{id_column}={fmt_value(i)}: {fmt_value(v)}" for i, v in zip(ids[:n], values[:n], strict=False)
        )
    return ", ".join(fmt_value(v) for v in values[:n])


def failure_rows(failures: Sequence[Mapping[str, Any]], sample: int = 10) -> list[FailureRow]:
    """One row of text per failed check: what, where, how many rows, what was observed, sample values.

    Shared by the alert email and the quarantine summary page so both say the same thing.
    """
    rows = []
    for f in failures:
        n, pct = f.get("unexpected_count"), f.get("unexpected_percent")
        count = f"{n} ({pct:.2f}%)" if isinstance(n, int) and isinstance(pct, float) else fmt_value(n)
        observed = f.get("observed_value") if f.get("observed_value") is not None else f.get("detail")
        if f.get("details"):
            observed = f"{fmt_value(observed)} {f['details']}".strip()
        if f.get("exception"):
            observed = f"{fmt_value(observed)} error: {f['exception']}".strip()
        rows.append(
            (
                str(f.get("expectation") or f.get("check")),
                str(f.get("column") or f.get("file") or "(table)"),
                count,
                fmt_value(observed)[:300],
                sample_text(f.get("sample") or [], f.get("sample_ids") or [], f.get("id_column"), sample)[:300],
            )
        )
    return rows
