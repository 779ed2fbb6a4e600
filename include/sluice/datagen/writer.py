"""Play the upstream producer: write generated or replayed days into the lake's landing zone.

Each day becomes ``landing/<dataset>/ds=D/part-00000.<fmt>`` plus ``_SUCCESS``; the labels of day D
arrive ``labels.delay_days`` later in ``labels/<labels.dataset>/ds=D+delay/``. Sources are chosen by the
dataset name; the platform itself never imports this module.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TypedDict

import pandas as pd
import yaml

from sluice.config import ModelConfig
from sluice.datagen import flights, loans
from sluice.datagen.corrupt import render
from sluice.lake import Lake

log = logging.getLogger(__name__)
SOURCES = ("loans", "flights")


def load_scenario(path: str | Path | None) -> loans.Scenario:
    if not path:
        return loans.Scenario()
    data = yaml.safe_load(Path(path).read_text())
    try:
        return loans.Scenario.from_dict(data)
    except loans.ScenarioError as exc:
        raise loans.ScenarioError(exc.field, exc.value, f"in {path}: {exc}") from None


def _day_bytes(cfg: ModelConfig, ds: dt.date, scenario: loans.Scenario, seed: int, rows: int) -> bytes:
    if cfg.dataset.name == "loans":
        return loans.landing_file_bytes(ds, cfg.dataset.format, seed=seed, rows_per_day=rows, scenario=scenario)
    return render(flights.load_flights_day(ds), cfg.dataset.format)


def _labels(cfg: ModelConfig, event_ds: dt.date, scenario: loans.Scenario, seed: int, rows: int) -> pd.DataFrame:
    if cfg.dataset.name == "loans":
        return loans.generate_labels_for(
            event_ds, seed=seed, rows_per_day=rows, scenario=scenario, delay_days=cfg.labels.delay_days
        )
    return flights.load_flights_labels_day(event_ds)


def write_references(cfg: ModelConfig, lake: Lake) -> list[str]:
    """Reference tables for lookup joins (flights: hourly weather, aircraft)."""
    if cfg.dataset.name != "flights":
        return []
    tables = {"flights_weather": flights.weather_table(), "flights_planes": flights.planes_table()}
    return [
        lake.put_files(f"reference/{name}", {"part-00000.parquet": render(df, "parquet")})[0]
        for name, df in tables.items()
    ]


class Landed(TypedDict):
    """What :func:`generate_into_lake` wrote: days landed, label partitions, corrupted days, reference keys."""

    dataset: str
    landed: int
    first: dt.date
    last: dt.date | None
    label_partitions: int
    corrupted: dict[str, str]
    references: list[str]


def generate_into_lake(
    cfg: ModelConfig,
    lake: Lake,
    start: dt.date,
    days: int,
    *,
    scenario_path: str | Path | None = None,
    seed: int = 7,
    rows_per_day: int = loans.DEFAULT_ROWS_PER_DAY,
) -> Landed:
    if cfg.dataset.name not in SOURCES:
        raise ValueError(f"no demo source for dataset {cfg.dataset.name!r}; sources: {SOURCES}")
    scenario = load_scenario(scenario_path)
    refs = write_references(cfg, lake)
    landed, labelled = [], []
    for i in range(days):
        ds = start + dt.timedelta(days=i)
        lake.put_landing(
            "landing",
            cfg.dataset.name,
            ds,
            {f"part-00000.{cfg.dataset.format}": _day_bytes(cfg, ds, scenario, seed, rows_per_day)},
        )
        landed.append(ds)
        event_ds = ds - dt.timedelta(days=cfg.labels.delay_days)
        if event_ds >= start:
            labels = _labels(cfg, event_ds, scenario, seed, rows_per_day)
            lake.put_landing("labels", cfg.labels.dataset, ds, {"part-00000.parquet": render(labels, "parquet")})
            labelled.append(ds)
    corrupted = {
        c.ds.isoformat(): c.kind for c in scenario.corruptions if start <= c.ds < start + dt.timedelta(days=days)
    }
    log.info(
        "landed %s days of %s (%s corrupted), %s label partitions",
        len(landed),
        cfg.dataset.name,
        len(corrupted),
        len(labelled),
    )
    return {
        "dataset": cfg.dataset.name,
        "landed": len(landed),
        "first": start,
        "last": landed[-1] if landed else None,
        "label_partitions": len(labelled),
        "corrupted": corrupted,
        "references": refs,
    }


def seed_feature_store(
    cfg: ModelConfig, lake: Lake, start: dt.date, days: int, *, rows_per_day: int = loans.DEFAULT_ROWS_PER_DAY
) -> list[dt.date]:
    """Generated landing data run through the features job for ``days`` days from ``start``, in this process
    (no Airflow): a feature store to train, deploy and score against. Returns the published days."""
    from sluice.features.job import publish_features

    generate_into_lake(cfg, lake, start, days, rows_per_day=rows_per_day)
    for i in range(days):
        publish_features(cfg, lake, start + dt.timedelta(days=i))
    return lake.partitions("features", cfg.features.feature_set)
