"""Held-out targets of suite inference on both public replays, on slices (docs/validation.md has the full table).

Fit on days 1-14; of the 25 following ordinary days (every 6th here) at most one is quarantined; each
distribution corruption of an ordinary day (one column per kind here) is quarantined by a failure naming
the corrupted column.
"""

from __future__ import annotations

import pytest

from sluice.datagen import holdout

pytestmark = pytest.mark.unit

#: One column per kind and dataset: a heavy-tailed amount, a count, the id and a category.
SLICE = {
    "loans_full_schema": {"annual_income", "total_credit_lines", "num_accounts_120d_past_due", "loan_id", "state"},
    "lending_club": {"annual_inc", "revol_util", "application_id", "term", "addr_state"},
}


@pytest.fixture(scope="module", params=sorted(SLICE))
def report(request: pytest.FixtureRequest) -> holdout.Report:
    name = request.param
    return holdout.run(name, 14, 25, every=6, only=lambda case: case.column in SLICE[name])


def test_ordinary_days_after_the_fit_pass(report: holdout.Report) -> None:
    assert len(report.ordinary) == 5 and report.ordinary[-1].label > report.fit_days[-1].isoformat()
    assert report.false_alarms <= 1, holdout.false_alarm_table([report])


def test_every_distribution_corruption_is_quarantined_naming_its_column(report: holdout.Report) -> None:
    kinds = {o.label.split("(")[0] for o in report.corrupted}
    assert kinds == {
        "constant_column",
        "unit_change",
        "null_burst",
        "string_format_change",
        "category_share_shift",
        "duplicated_rows",
    }
    missed = [(o.label, o.column, o.checks) for o in report.corrupted if not o.named]
    assert missed == [], holdout.corruption_table([report])


def test_row_checks_alone_miss_them() -> None:
    """The harness can fail: the same suite without its distribution checks passes a constant column."""
    row_level = {
        "expect_table_columns_to_match_set",
        "expect_column_type_to_be",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_unique",
    }

    def rows_only(frames, days, id_col, ts_col):  # type: ignore[no-untyped-def]
        suite = holdout.default_inference(frames, days, id_col, ts_col)
        suite["expectations"] = [e for e in suite["expectations"] if e["type"] in row_level]
        return suite

    constant = lambda c: c.kind == "constant_column"  # noqa: E731
    weak = holdout.run("lending_club", 14, 25, every=25, inference=rows_only, only=constant)
    assert len(weak.corrupted) >= 10 and weak.caught == 0
