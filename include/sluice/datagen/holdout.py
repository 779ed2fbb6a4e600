"""Held-out judgment of suite inference: does a suite inferred from known-good days generalise?

On a public replay (:mod:`sluice.datagen.public`): infer the suite from the first ``fit`` days, validate the
next ``test`` ordinary days (each should pass), then corrupt the first ordinary day that passed in every way that only a
distribution check catches (:data:`sluice.datagen.corrupt.DISTRIBUTION_CORRUPTIONS`, plus a 30% null burst)
on every column it applies to (each should be quarantined, with a failure naming that column). Every
partition goes the way the features DAG takes it: rendered to parquet, read by
:func:`sluice.validation.reader.read_partition`, validated by :func:`sluice.validation.gx.validate` with the
partition's interval. A corruption of one column is judged by the expectations that can see it
(:func:`restrict`): the day passed every other one unchanged.

    python -m sluice.datagen.holdout loans_full_schema lending_club   # prints the tables (docs/validation.md)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sluice.datagen import public
from sluice.datagen.corrupt import corrupt, corruption_params, render
from sluice.features.job import interval_params
from sluice.validation.gx import validate
from sluice.validation.reader import read_partition
from sluice.validation.schema import CONSTANT_CHANCE, SuiteSpec, category_like, infer

#: A suite from (partitions, their days, id column, timestamp column).
Inference = Callable[[Sequence[pd.DataFrame], Sequence[dt.date], str, str], SuiteSpec]


def default_inference(frames: Sequence[pd.DataFrame], days: Sequence[dt.date], id_col: str, ts_col: str) -> SuiteSpec:
    return infer(
        frames,
        days,
        id_column=id_col,
        timestamp_column=ts_col,
        suite="holdout",
        dataset="holdout",
        generated_by="python -m sluice.datagen.holdout",
    )


@dataclass(frozen=True)
class Case:
    """One corruption of the ordinary day: its kind, the column it hits and its parameters."""

    kind: str
    column: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.kind}({extra})" if extra else self.kind


@dataclass
class Outcome:
    """What validation said about one partition."""

    label: str
    column: str | None
    quarantined: bool
    columns: list[str]
    checks: list[str]
    seconds: float

    @property
    def named(self) -> bool:
        """Quarantined with a failure naming the corrupted column (for ordinary days: quarantined at all)."""
        return self.quarantined and (self.column is None or self.column in self.columns)


@dataclass
class Report:
    dataset: str
    fit_days: list[dt.date]
    test_days: list[dt.date]
    base_day: dt.date | None
    ordinary: list[Outcome] = field(default_factory=list)
    corrupted: list[Outcome] = field(default_factory=list)
    expectations: int = 0
    #: numeric columns left out of constant_column: one value on every row is ordinary for them
    not_constant_cases: list[str] = field(default_factory=list)

    @property
    def false_alarms(self) -> int:
        return sum(o.quarantined for o in self.ordinary)

    @property
    def caught(self) -> int:
        return sum(o.named for o in self.corrupted)


def _read(data: bytes, ts_col: str) -> pd.DataFrame:
    result = read_partition({"part-00000.parquet": data}, "parquet", ts_col)
    if result.frame is None:  # the held-out corruptions keep the file readable
        raise ValueError(f"held-out partition unreadable: {result.problems}")
    return result.frame


def _judge(frame: pd.DataFrame, suite: SuiteSpec, ds: dt.date, id_col: str, label: str, col: str | None) -> Outcome:
    started = time.monotonic()
    out = validate(frame, suite, interval_params(ds), id_column=id_col)
    seconds = time.monotonic() - started
    columns = sorted({str(c) for f in out.failures for c in (f.get("columns") or [f.get("column")]) if c})
    checks = sorted({f"{f['expectation'].removeprefix('expect_')}({f.get('column') or ''})" for f in out.failures})
    return Outcome(label, col, not out.success, columns, checks, seconds)


#: Corruptions that change more than one column (every column's statistics): judged by the whole suite.
WHOLE_SUITE = frozenset({"duplicated_rows"})


def restrict(suite: SuiteSpec, column: str) -> SuiteSpec:
    """The table-level expectations and those on ``column``: all that can fail when only ``column`` changed
    on a day that passed the whole suite (the other columns' checks see the values they passed on)."""
    keep = [
        e
        for e in suite["expectations"]
        if column in (e["kwargs"].get("column_list") or [e["kwargs"].get("column", column)])
    ]
    return {"name": suite["name"], "expectations": keep, "meta": suite["meta"]}


def ordinary_constants(fit: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    """Numeric columns for which one value on every row is no corruption: constant in the fit data, or so
    often one value that a day of only that value is plausible (a count that is 0 on 99.5% of rows is all
    zero on many ordinary days; the suite's rule, CONSTANT_CHANCE)."""
    numeric = [c for c in base.columns if pd.api.types.is_numeric_dtype(base[c]) and c in fit.columns]
    return [
        c
        for c in numeric
        if fit[c].nunique() <= 1 or fit[c].value_counts(normalize=True).iloc[0] ** len(base) >= CONSTANT_CHANCE
    ]


def cases(fit: pd.DataFrame, base: pd.DataFrame, id_col: str, ts_col: str) -> list[Case]:
    """Every corruption on every column it applies to, judged against the fit data's columns."""
    features = [c for c in base.columns if c not in (id_col, ts_col)]
    numeric = [
        c for c in features if pd.api.types.is_numeric_dtype(base[c]) and not pd.api.types.is_bool_dtype(base[c])
    ]
    categorical = [c for c in features if category_like(fit[c]) and base[c].nunique() >= 2]
    null_rate = fit[features].isna().mean()
    out = [Case("constant_column", c) for c in numeric if c not in ordinary_constants(fit, base)]
    out += [Case("unit_change", c) for c in numeric if fit[c].nunique() > 1]
    # the "30% nulls in a 2%-null column": every column at most 10% null, never-null ones included
    out += [Case("null_burst", c) for c in features if null_rate[c] <= 0.10]
    for c in [id_col, *categorical]:
        lower = base[c].dropna().astype("str")
        how = "lower" if (lower != lower.str.lower()).any() else "upper"
        out += [Case("string_format_change", c, (("how", "space"),)), Case("string_format_change", c, (("how", how),))]
    out += [Case("category_share_shift", c) for c in categorical]
    out.append(Case("duplicated_rows", id_col))
    return out


def run(
    name: str,
    fit: int = 14,
    test: int = 25,
    *,
    every: int = 1,
    inference: Inference = default_inference,
    only: Callable[[Case], bool] | None = None,
) -> Report:
    """Fit on ``name``'s first ``fit`` days, validate the next ``test`` and each corruption of an ordinary day.

    A slice for a fast test: ``every`` validates every k-th of the ``test`` days only, ``only`` keeps the
    corruption cases it accepts.
    """
    src = public.source(name)
    id_col, ts_col = src.id_column, src.timestamp_column
    all_days = public.days(name)
    fit_days, test_days = all_days[:fit], all_days[fit : fit + test]
    if len(fit_days) < fit or len(test_days) < test:
        raise ValueError(f"{name} has {len(all_days)} days: cannot fit on {fit} and test on {test}")
    test_days = test_days[::every]
    frames = [_read(render(public.events_for(name, d), "parquet"), ts_col) for d in fit_days]
    suite = inference(frames, fit_days, id_col, ts_col)
    report = Report(name, fit_days, test_days, None, expectations=len(suite["expectations"]))
    test_frames = {d: _read(render(public.events_for(name, d), "parquet"), ts_col) for d in test_days}
    for d, frame in test_frames.items():
        report.ordinary.append(_judge(frame, suite, d, id_col, d.isoformat(), None))
    passed = [o for o in report.ordinary if not o.quarantined]
    base_day = dt.date.fromisoformat(passed[0].label) if passed else test_days[0]
    report.base_day = base_day
    events = public.events_for(name, base_day)
    fitted = pd.concat(frames, ignore_index=True)
    report.not_constant_cases = [c for c in ordinary_constants(fitted, test_frames[base_day]) if c != ts_col]
    for case in cases(fitted, test_frames[base_day], id_col, ts_col):
        if only is not None and not only(case):
            continue
        rng = np.random.default_rng(13)
        params = dict(case.params) | ({"column": case.column} if "column" in corruption_params(case.kind) else {})
        data = corrupt(case.kind, events, "parquet", rng, **params)
        judged = suite if case.kind in WHOLE_SUITE else restrict(suite, case.column)
        report.corrupted.append(_judge(_read(data, ts_col), judged, base_day, id_col, case.label, case.column))
    return report


def summary_table(reports: Sequence[Report]) -> str:
    lines = [
        "| dataset | fit days | ordinary days quarantined | corruptions caught, column named | expectations |",
        "|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r.dataset} | {r.fit_days[0]}..{r.fit_days[-1]} ({len(r.fit_days)}) | "
            f"{r.false_alarms} of {len(r.ordinary)} | {r.caught} of {len(r.corrupted)} | {r.expectations} |"
        )
    return "\n".join(lines)


def corruption_table(reports: Sequence[Report]) -> str:
    """Per corruption kind: cases caught with the column named, and the columns missed."""
    lines = ["| dataset | corruption | caught, column named | missed (column: failing checks) |", "|---|---|---|---|"]
    for r in reports:
        kinds: dict[str, list[Outcome]] = {}
        for o in r.corrupted:
            kinds.setdefault(o.label, []).append(o)
        for kind, outs in kinds.items():
            missed = "; ".join(f"{o.column}: {', '.join(o.checks) or 'passed'}" for o in outs if not o.named)
            lines.append(f"| {r.dataset} | {kind} | {sum(o.named for o in outs)} of {len(outs)} | {missed or '-'} |")
        if r.not_constant_cases:
            lines.append(
                f"| {r.dataset} | constant_column not applied (one value is ordinary) | "
                f"{', '.join(r.not_constant_cases)} | - |"
            )
    return "\n".join(lines)


def false_alarm_table(reports: Sequence[Report]) -> str:
    lines = ["| dataset | quarantined ordinary day | failing checks |", "|---|---|---|"]
    for r in reports:
        lines += [f"| {r.dataset} | {o.label} | {', '.join(o.checks)} |" for o in r.ordinary if o.quarantined]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sluice.datagen.holdout",
        description="Infer a suite from the first days of a public replay, validate the following ordinary days "
        "and every distribution corruption of one of them, and print the tables.",
        epilog="example: python -m sluice.datagen.holdout loans_full_schema lending_club --fit 14 --test 25",
    )
    parser.add_argument("datasets", nargs="+", choices=sorted(public.SOURCES), help="public replays to judge on")
    parser.add_argument("--fit", type=int, default=14, help="known-good days the suite is inferred from (default 14)")
    parser.add_argument("--test", type=int, default=25, help="ordinary days validated after them (default 25)")
    args = parser.parse_args(argv)
    reports = [run(name, args.fit, args.test) for name in args.datasets]
    print(summary_table(reports), corruption_table(reports), false_alarm_table(reports), sep="\n\n")
    ok = all(r.false_alarms <= 1 and r.caught == len(r.corrupted) for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover - exercised by hand and in docs/validation.md
    sys.exit(main())
