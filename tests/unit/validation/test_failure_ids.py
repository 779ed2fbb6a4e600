"""A failure's sampled rows are named by their id, also when the frame was put together from several files
(a repeated index) and when every row of a large duplicated load fails: the sample is looked up, not the
whole failing set."""

from __future__ import annotations

import pandas as pd

from sluice.validation.gx import render_data_docs, validate

SUITE = {
    "name": "s",
    "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "grade", "value_set": ["A", "B"]}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["grade", "amount"]}},
    ],
}


def test_sampled_failures_name_their_rows_by_id_across_files() -> None:
    first = pd.DataFrame(
        {"loan_id": [f"L{i}" for i in range(4)], "grade": ["A", "B", "A", "B"], "amount": [1, 2, 3, 4]}
    )
    second = pd.DataFrame(
        {"loan_id": [f"M{i}" for i in range(4)], "grade": ["A", "Z", "B", "Q"], "amount": [5, 6, 7, 8]}
    )
    df = pd.concat([first, second])  # two files: the index repeats 0..3
    out = validate(df, SUITE, sample_rows=20, id_column="loan_id")
    assert not out.success
    (grade,) = [f for f in out.failures if f["expectation"] == "expect_column_values_to_be_in_set"]
    assert grade["id_column"] == "loan_id"
    assert dict(zip(grade["sample_ids"], grade["sample"], strict=True)) == {"M1": "Z", "M3": "Q"}
    page = render_data_docs(out.result, "grades", "loan_id")
    assert page is not None and "loan_id=M1: Z, loan_id=M3: Q" in page


def test_a_duplicated_load_samples_ids_without_walking_every_failing_row() -> None:
    day = pd.DataFrame({"loan_id": [f"L{i}" for i in range(500)], "grade": ["A"] * 500, "amount": range(500)})
    df = pd.concat([day] * 40, ignore_index=True)  # 20 000 rows, every one a duplicate of 39 others
    out = validate(df, SUITE, sample_rows=5, id_column="loan_id")
    (dup,) = [f for f in out.failures if f["expectation"] == "expect_compound_columns_to_be_unique"]
    assert dup["unexpected_count"] == 20_000 and len(dup["sample"]) == 5
    assert dup["sample_ids"] == ["L0", "L1", "L2", "L3", "L4"]
    assert [s["amount"] for s in dup["sample"]] == [0, 1, 2, 3, 4], "each id belongs to its sampled row"
