"""The training-set suite: a Great Expectations gate on the snapshot, run before any training.

Generated from the config rather than inferred from data, so its bounds are the ones the model owner set:
enough rows (``training.min_rows``), a label on every row, every feature column present, and for
classification labels in {0, 1} with a positive share inside ``training.positive_share``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sluice.config import ModelConfig
from sluice.validation.gx import ValidationOutcome, validate


def _e(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


def training_set_suite(cfg: ModelConfig) -> dict[str, Any]:
    """GX suite JSON (``{"name", "expectations": [{"type", "kwargs"}], "meta"}``) for the training set."""
    t, label = cfg.training, cfg.labels.column
    expectations = [
        _e("expect_table_row_count_to_be_between", min_value=t.min_rows, max_value=None),
        _e("expect_column_to_exist", column=label),
        _e("expect_column_values_to_not_be_null", column=label),
    ]
    if cfg.task == "classification":
        low, high = t.positive_share
        expectations += [
            _e("expect_column_values_to_be_in_set", column=label, value_set=[0, 1]),
            _e("expect_column_mean_to_be_between", column=label, min_value=low, max_value=high),
        ]
    expectations += [_e("expect_column_to_exist", column=c) for c in (*cfg.features.numeric, *cfg.features.categorical)]
    return {
        "name": f"{cfg.name}_training_set",
        "expectations": expectations,
        "meta": {"model": cfg.name, "config_hash": cfg.config_hash, "source": "sluice.training.suite"},
    }


def check_training_set(frame: pd.DataFrame, cfg: ModelConfig) -> ValidationOutcome:
    """Run the training-set suite on ``frame``; failures name the expectation and the column."""
    return validate(frame, training_set_suite(cfg), params={})
