"""The bad-input corpus: every kind of broken landing file ends quarantined with a named reason.

Never a crash and never a pass; the raw landing files are byte-identical afterwards, and the quarantine
record holds an exact copy of them with the GX evidence.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.datagen.corrupt import CORRUPTIONS, DISTRIBUTION_CORRUPTIONS, corrupt, render
from sluice.features.job import check_landing, quarantine_records
from sluice.lake import Lake, LocalStorage, sha256

DS = dt.date(2025, 1, 8)

#: kind -> a check (GX expectation type or read check) that must be among the failures
EXPECTED = {
    "empty_file": "file_not_empty",
    "header_only": "expect_table_row_count_to_be_between",
    "missing_column": "expect_table_columns_to_match_set",
    "extra_column": "expect_table_columns_to_match_set",
    "renamed_column": "expect_table_columns_to_match_set",
    "numbers_as_strings": "expect_column_type_to_be",
    "decimal_commas": "expect_column_type_to_be",
    "null_burst": "expect_column_values_to_not_be_null",
    "out_of_range": "expect_column_values_to_be_between",
    "nan_inf": "expect_column_values_to_be_between",
    "duplicate_ids": "expect_column_values_to_be_unique",
    "unseen_categories": "expect_column_values_to_be_in_set",
    "timestamps_outside_interval": "expect_column_values_to_be_between",
    "utf16_encoding": {"csv": "file_is_utf8", "parquet": "file_is_readable_parquet"},
    "invalid_utf8": {"csv": "file_is_utf8", "parquet": "file_is_readable_parquet"},
    "truncated_parquet": {"csv": "expect_", "parquet": "file_is_readable_parquet"},
    "row_count_spike": "expect_table_row_count_to_be_between",
}

#: kind -> keyword parameters for the corruption where its default costs time without proving more. A spike
#: of 3x the day's rows (about 6600) is already outside the suite's band (at most twice the largest known-good
#: partition, 4716 rows) and a nearer miss than the default 20x; at 20x every resampled row also fails the
#: suite's compound-uniqueness check, and GX's failure detail spends 30-80 s collecting 40 000 rows' ids
ARGS: dict[str, dict[str, object]] = {"row_count_spike": {"factor": 3}}

#: distribution corruption -> (the expectation that must fail, on this column): a well-formed file whose
#: values moved; only the suite's distribution checks (sluice.validation.schema) stand between it and features
EXPECTED_DISTRIBUTION = {
    "category_share_shift": ("expect_column_values_to_not_be_in_set", "purpose"),
    "constant_column": ("expect_column_stdev_to_be_between", "annual_income"),
    "duplicated_rows": ("expect_column_values_to_be_unique", "application_id"),
    "string_format_change": ("expect_column_values_to_match_regex", "application_id"),
    "unit_change": ("expect_column_mean_to_be_between", "annual_income"),
}


def test_the_corpus_covers_every_corruption_kind() -> None:
    assert set(EXPECTED) == set(CORRUPTIONS)
    assert len(CORRUPTIONS) >= 15


def config_for(fmt: str):
    cfg = get_model_config("loans")
    return cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"format": fmt})})


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_clean_day_passes(tmp_path, fmt) -> None:
    lake = Lake(LocalStorage(tmp_path))
    lake.put_landing("landing", "loans", DS, {f"part-00000.{fmt}": render(loans.generate_events(DS, seed=3), fmt)})
    result = check_landing(config_for(fmt), lake, DS)
    assert result.success, result.failures
    assert lake.list("quarantine") == []


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corruption_is_quarantined_with_a_named_reason(tmp_path, kind, fmt) -> None:
    lake = Lake(LocalStorage(tmp_path))
    events = loans.generate_events(DS, seed=3)
    bad = corrupt(kind, events, fmt, np.random.default_rng(11), **ARGS.get(kind, {}))
    lake.put_landing("landing", "loans", DS, {f"part-00000.{fmt}": bad})
    before = {k: sha256(lake.read(k)) for k in lake.list("landing")}

    result = check_landing(config_for(fmt), lake, DS, links={"Airflow task log": "http://log"})

    assert not result.success, f"{kind}/{fmt} passed validation"
    expected = EXPECTED[kind] if isinstance(EXPECTED[kind], str) else EXPECTED[kind][fmt]
    checks = [f.get("expectation") or f.get("check") for f in result.failures]
    assert any(c.startswith(expected) for c in checks), f"{kind}/{fmt}: {expected} not in {checks}"
    for f in result.failures:  # every failure names a column, a file, or is a table-level expectation
        assert f.get("column") or f.get("file") or f.get("expectation", "").startswith("expect_table"), f
    assert {k: sha256(lake.read(k)) for k in lake.list("landing")} == before, "raw landing files changed"
    records = quarantine_records(lake, "loans", DS)
    assert len(records) == 1 and records[0]["reason"] == result.reason
    prefix = result.quarantine_uri.removeprefix(lake.root + "/")
    assert lake.read(f"{prefix}/raw/part-00000.{fmt}") == bad
    evidence = json.loads(lake.read(f"{prefix}/validation_result.json"))
    assert evidence["record"]["failures"]
    assert b"<html" in lake.read(f"{prefix}/data_docs.html").lower()


def test_the_distribution_corpus_covers_every_held_out_kind() -> None:
    assert set(EXPECTED_DISTRIBUTION) == set(DISTRIBUTION_CORRUPTIONS)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("kind", sorted(DISTRIBUTION_CORRUPTIONS))
def test_distribution_corruption_is_quarantined_on_the_moved_column(tmp_path, kind, fmt) -> None:
    lake = Lake(LocalStorage(tmp_path))
    bad = corrupt(kind, loans.generate_events(DS, seed=3), fmt, np.random.default_rng(11))
    lake.put_landing("landing", "loans", DS, {f"part-00000.{fmt}": bad})
    before = {k: sha256(lake.read(k)) for k in lake.list("landing")}

    result = check_landing(config_for(fmt), lake, DS)

    assert not result.success, f"{kind}/{fmt} passed validation"
    expectation, column = EXPECTED_DISTRIBUTION[kind]
    failed = {(f.get("expectation"), f.get("column")) for f in result.failures}
    assert (expectation, column) in failed, f"{kind}/{fmt}: {expectation} on {column} not in {failed}"
    assert {k: sha256(lake.read(k)) for k in lake.list("landing")} == before, "raw landing files changed"
    assert len(quarantine_records(lake, "loans", DS)) == 1


def test_requarantine_is_idempotent_and_a_fix_keeps_history(tmp_path) -> None:
    lake = Lake(LocalStorage(tmp_path))
    events = loans.generate_events(DS, seed=3)
    lake.put_landing(
        "landing",
        "loans",
        DS,
        {"part-00000.parquet": corrupt("null_burst", events, "parquet", np.random.default_rng(1))},
    )
    cfg = config_for("parquet")
    first = check_landing(cfg, lake, DS)
    files = lake.list("quarantine")
    second = check_landing(cfg, lake, DS)
    assert first.quarantine_uri == second.quarantine_uri and lake.list("quarantine") == files
    lake.put_landing("landing", "loans", DS, {"part-00000.parquet": render(events, "parquet")})
    assert check_landing(cfg, lake, DS).success
    assert len(quarantine_records(lake, "loans", DS)) == 1, "the quarantine record is history and stays"
