"""The backfill guard's decision: inside the DAG's dates and under the cap, or a 422 message that says why."""

from __future__ import annotations

import datetime as dt

from sluice.airflow.backfill_guard import check

UTC = dt.UTC
START, END = dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 3, 31, tzinfo=UTC)


def daily(lo: dt.datetime, hi: dt.datetime, limit: int) -> int:
    return min((hi - lo).days + 1, limit)


def test_inside_the_dates_and_under_the_cap_passes() -> None:
    assert check("loans_features", START, END, START, START + dt.timedelta(days=29), daily, 500) is None


def test_before_the_start_date_names_the_dag_the_range_and_the_ask() -> None:
    why = check("loans_features", START, END, dt.datetime(2016, 1, 1, tzinfo=UTC), END, daily, 500)
    assert why and "loans_features" in why and "start_date" in why
    assert "2025-01-01" in why and "2025-03-31" in why and "2016-01-01" in why


def test_after_the_end_date_is_refused() -> None:
    why = check("loans_features", START, END, START, dt.datetime(2025, 4, 2, tzinfo=UTC), daily, 500)
    assert why and "end_date" in why and "2025-04-02" in why


def test_an_open_ended_dag_is_still_capped() -> None:
    ten_years = dt.datetime(2035, 1, 1, tzinfo=UTC)
    why = check("open_dag", START, None, START, ten_years, daily, 500)
    assert why and "more than 500 runs" in why and "open" in why
    assert check("open_dag", START, None, START, START + dt.timedelta(days=499), daily, 500) is None


def test_reversed_range_is_refused() -> None:
    assert "after to_date" in (check("d", START, END, END, START, daily, 500) or "")
