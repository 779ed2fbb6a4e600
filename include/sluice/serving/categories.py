"""Categories a fitted model never saw: accepted (the encoder maps them to no or the infrequent column) but
counted, per column, so that a client, the server's metrics and the batch manifest all show how often it
happens.

The known categories are the fitted one-hot encoder's ``categories_`` (every value seen in training, the
infrequent ones included, and the imputed missing marker); a missing value is never "unknown". A model
without that encoder (not a Sluice pipeline) has no known categories, and nothing is counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import pandas as pd


def known_categories(model: Any) -> dict[str, frozenset[str]]:
    """Per categorical input column, the values the fitted pipeline's one-hot encoder learned (as strings)."""
    try:
        preprocess = model.named_steps["preprocess"]
        for name, transformer, columns in preprocess.transformers_:
            if name == "categorical":
                encoder = transformer.named_steps["onehot"]
                return {
                    str(col): frozenset(str(v) for v in cats)
                    for col, cats in zip(columns, encoder.categories_, strict=True)
                }
    except (AttributeError, KeyError, TypeError, ValueError):
        return {}
    return {}


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def unknown_counts(frame: pd.DataFrame, known: Mapping[str, frozenset[str]]) -> dict[str, int]:
    """How many non-missing values of each known column are not among its categories (columns with none left out)."""
    counts: dict[str, int] = {}
    for column, categories in known.items():
        if column in frame.columns:
            n = sum(1 for v in frame[column].tolist() if not _missing(v) and str(v) not in categories)
            if n:
                counts[column] = n
    return counts


def header_value(counts: Mapping[str, int]) -> str:
    """``col=n,col=n`` sorted by column; a column name is percent-encoded (a header is ASCII, one line)."""
    return ",".join(f"{quote(column, safe='')}={n}" for column, n in sorted(counts.items()))
