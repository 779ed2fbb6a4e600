"""Synthetic loan applications with a delayed default label: the demo's controllable data source.

Every day is a pure function of ``(seed, ds, scenario)``: day D generated alone or inside a backfill gives
identical rows, so reruns and backfills are reproducible. A :class:`Scenario` injects the things a
monitoring stack must detect -- covariate shift, concept shift and corrupted landing files -- on known days.

Random streams are separate so that one kind of change never perturbs another:
``[seed, ordinal]`` draws the base features, ``[seed, ordinal, 1]`` applies covariate shifts,
``[seed, ordinal, 2]`` draws label noise, ``[seed, ordinal, 3]`` drives corruptions. Hence a concept
shift changes labels but not a single feature value, and a covariate shift on one column changes
only that column.

Timestamps (``applied_at``, ``label_ts``) are naive UTC ``datetime64[us]``: parquet and CSV round-trip them
without timezone surprises, and the lake partitions by UTC day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from sluice.datagen.corrupt import CORRUPTIONS, FORMATS, corrupt, corruption_params, render

_T = TypeVar("_T")

__all__ = [
    "CATEGORICAL_COLUMNS",
    "COLUMNS",
    "DEFAULT_LABEL_DELAY_DAYS",
    "FEATURE_COLUMNS",
    "NUMERIC_COLUMNS",
    "CategoryShift",
    "ConceptShift",
    "CorruptionSpec",
    "NumericShift",
    "Scenario",
    "ScenarioError",
    "generate_events",
    "generate_labels_for",
    "label_partition",
    "landing_file_bytes",
    "render",
]

ID_COLUMN = "application_id"
TIMESTAMP_COLUMN = "applied_at"
LABEL_COLUMN = "defaulted"
DEFAULT_ROWS_PER_DAY = 2000
DEFAULT_LABEL_DELAY_DAYS = 3

#: numeric feature -> dtype. ``interest_rate`` is in percent, ``debt_to_income`` a ratio.
NUMERIC_COLUMNS: dict[str, str] = {
    "age": "int64",
    "annual_income": "float64",
    "employment_years": "float64",
    "credit_score": "int64",
    "num_open_accounts": "int64",
    "num_delinquencies": "int64",
    "debt_to_income": "float64",
    "loan_amount": "float64",
    "term_months": "int64",
    "interest_rate": "float64",
}
#: categorical feature -> the categories the clean generator produces (pandas ``str`` dtype).
CATEGORICAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "home_ownership": ("RENT", "OWN", "MORTGAGE", "OTHER"),
    "purpose": (
        "debt_consolidation",
        "credit_card",
        "home_improvement",
        "car",
        "medical",
        "small_business",
        "other",
    ),
    "region": ("NE", "SE", "MW", "SW", "W"),
    "channel": ("web", "branch", "broker", "mobile"),
}
FEATURE_COLUMNS: tuple[str, ...] = (
    "age",
    "annual_income",
    "employment_years",
    "home_ownership",
    "credit_score",
    "num_open_accounts",
    "num_delinquencies",
    "debt_to_income",
    "loan_amount",
    "term_months",
    "interest_rate",
    "purpose",
    "region",
    "channel",
)
COLUMNS: tuple[str, ...] = (ID_COLUMN, TIMESTAMP_COLUMN, *FEATURE_COLUMNS)
TERMS: tuple[int, ...] = (12, 24, 36, 48, 60)

#: Standard deviation of each clean numeric column (10 seeds x 20k rows): the unit of ``shift_sd``.
#: Fixed constants rather than per-day estimates so that a shift means the same thing every day.
REFERENCE_SD: dict[str, float] = {
    "age": 11.7,
    "annual_income": 30_200.0,
    "employment_years": 4.04,
    "credit_score": 58.6,
    "num_open_accounts": 2.71,
    "num_delinquencies": 0.75,
    "debt_to_income": 0.133,
    "loan_amount": 8_500.0,
    "interest_rate": 3.23,
}
#: Valid range of each shiftable column; shifted values are clipped back into it.
_BOUNDS: dict[str, tuple[float, float]] = {
    "age": (18, 85),
    "annual_income": (8_000, 2_000_000),
    "employment_years": (0, 67),
    "credit_score": (300, 850),
    "num_open_accounts": (0, 60),
    "num_delinquencies": (0, 20),
    "debt_to_income": (0.0, 0.95),
    "loan_amount": (1_000, 40_000),
    "interest_rate": (4.0, 35.99),
}
_DECIMALS: dict[str, int] = {
    "annual_income": 0,
    "employment_years": 1,
    "debt_to_income": 4,
    "loan_amount": 0,
    "interest_rate": 2,
}
# Mon..Sun volume factors (mean 1): applications peak early in the week.
_WEEKDAY_FACTORS = (1.10, 1.12, 1.08, 1.04, 0.98, 0.88, 0.80)
# UTC hour-of-day weights: US business hours are ~13:00-03:00 UTC.
_HOUR_WEIGHTS = np.array([6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 9, 9, 8, 8, 8, 8, 7, 7], dtype=float)


class ScenarioError(ValueError):
    """An invalid scenario; ``field`` is the dotted path of the offending key, ``value`` its value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value!r}: {reason}")

    def under(self, prefix: str) -> ScenarioError:
        return ScenarioError(f"{prefix}.{self.field}", self.value, self.reason)


def _date(value: object, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ScenarioError(field, value, "expected a date (YYYY-MM-DD)")


def _check_window(start: dt.date, end: dt.date | None) -> None:
    if not isinstance(start, dt.date):
        raise ScenarioError("start", start, "expected a date")
    if end is not None and end < start:
        raise ScenarioError("end", end, f"is before start {start.isoformat()}")


def _active(start: dt.date, end: dt.date | None, ds: dt.date) -> bool:
    """Windows are inclusive at both ends; ``end=None`` means open-ended."""
    return start <= ds and (end is None or ds <= end)


@dataclasses.dataclass(frozen=True)
class NumericShift:
    """Move ``column``'s mean by ``shift_sd`` reference standard deviations on days in [start, end]."""

    start: dt.date
    column: str
    shift_sd: float
    end: dt.date | None = None

    def __post_init__(self) -> None:
        _check_window(self.start, self.end)
        if self.column not in REFERENCE_SD:
            raise ScenarioError("column", self.column, f"not a shiftable numeric column {sorted(REFERENCE_SD)}")
        if not math.isfinite(self.shift_sd) or self.shift_sd == 0:
            raise ScenarioError("shift_sd", self.shift_sd, "must be a finite, non-zero number")

    def active(self, ds: dt.date) -> bool:
        return _active(self.start, self.end, ds)


@dataclasses.dataclass(frozen=True)
class CategoryShift:
    """Make ``category`` (possibly unseen) take ``share`` of ``column``'s rows on days in [start, end]."""

    start: dt.date
    column: str
    category: str
    share: float
    end: dt.date | None = None

    def __post_init__(self) -> None:
        _check_window(self.start, self.end)
        if self.column not in CATEGORICAL_COLUMNS:
            raise ScenarioError("column", self.column, f"not a categorical column {sorted(CATEGORICAL_COLUMNS)}")
        if not isinstance(self.category, str) or not self.category:
            raise ScenarioError("category", self.category, "must be a non-empty string")
        if not 0 < self.share <= 1:
            raise ScenarioError("share", self.share, "must be in (0, 1]")

    def active(self, ds: dt.date) -> bool:
        return _active(self.start, self.end, ds)


@dataclasses.dataclass(frozen=True)
class ConceptShift:
    """Change P(default | features) on days in [start, end] without touching the features.

    ``column``'s contribution to the logit is multiplied by ``weight_multiplier`` (-1 flips its sign);
    ``intercept_shift`` moves the base rate. ``column=None`` shifts only the intercept.
    """

    start: dt.date
    column: str | None = None
    weight_multiplier: float = -1.0
    intercept_shift: float = 0.0
    end: dt.date | None = None

    def __post_init__(self) -> None:
        _check_window(self.start, self.end)
        if self.column is not None and self.column not in FEATURE_COLUMNS:
            raise ScenarioError("column", self.column, f"not a feature column {list(FEATURE_COLUMNS)}")
        if not (math.isfinite(self.weight_multiplier) and math.isfinite(self.intercept_shift)):
            raise ScenarioError("weight_multiplier", self.weight_multiplier, "must be finite")
        if self.column is None and self.intercept_shift == 0:
            raise ScenarioError("column", None, "give a column or a non-zero intercept_shift")
        if self.column is not None and self.weight_multiplier == 1 and self.intercept_shift == 0:
            raise ScenarioError("weight_multiplier", 1.0, "a multiplier of 1 changes nothing")

    def active(self, ds: dt.date) -> bool:
        return _active(self.start, self.end, ds)


@dataclasses.dataclass(frozen=True)
class CorruptionSpec:
    """Replace the landing file of day ``ds`` by ``corrupt.CORRUPTIONS[kind](..., **params)``."""

    ds: dt.date
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.ds, dt.date):
            raise ScenarioError("ds", self.ds, "expected a date")
        if self.kind not in CORRUPTIONS:
            raise ScenarioError("kind", self.kind, f"unknown corruption kind; known: {sorted(CORRUPTIONS)}")
        allowed = corruption_params(self.kind)
        for key, _ in self.params:
            if key not in allowed:
                raise ScenarioError(key, dict(self.params)[key], f"not a parameter of {self.kind} {sorted(allowed)}")


Shift = NumericShift | CategoryShift


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What happens to the data over time. The empty scenario is clean, stationary data."""

    name: str = "baseline"
    covariate_shifts: tuple[Shift, ...] = ()
    concept_shifts: tuple[ConceptShift, ...] = ()
    corruptions: tuple[CorruptionSpec, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        seen: dict[dt.date, int] = {}
        for i, c in enumerate(self.corruptions):
            if c.ds in seen:
                raise ScenarioError(f"corruptions[{i}].ds", c.ds, f"already corrupted by corruptions[{seen[c.ds]}]")
            seen[c.ds] = i

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Scenario:
        """Build from plain data (e.g. ``yaml.safe_load``); errors name the offending field and value."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ScenarioError(key, data[key], f"unknown scenario key; known: {sorted(known)}")
        shifts = tuple(_parse(_shift, "covariate_shifts", i, d) for i, d in enumerate(_list(data, "covariate_shifts")))
        concepts = tuple(_parse(_concept, "concept_shifts", i, d) for i, d in enumerate(_list(data, "concept_shifts")))
        corruptions = tuple(_parse(_corruption, "corruptions", i, d) for i, d in enumerate(_list(data, "corruptions")))
        return cls(
            name=str(data.get("name", "baseline")),
            covariate_shifts=shifts,
            concept_shifts=concepts,
            corruptions=corruptions,
            description=str(data.get("description", "")),
        )

    def corruption_for(self, ds: dt.date) -> CorruptionSpec | None:
        return next((c for c in self.corruptions if c.ds == ds), None)


def _list(data: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = data.get(key) or []
    if not isinstance(value, list | tuple):
        raise ScenarioError(key, value, "expected a list")
    return value


def _parse(fn: Callable[[dict[str, Any]], _T], key: str, i: int, item: object) -> _T:
    path = f"{key}[{i}]"
    if not isinstance(item, Mapping):
        raise ScenarioError(path, item, "expected a mapping")
    try:
        return fn(dict(item))
    except ScenarioError as e:
        raise e.under(path) from None


def _keys(d: dict[str, Any], required: set[str], optional: set[str]) -> None:
    for k, v in d.items():
        if k not in required | optional:
            raise ScenarioError(k, v, f"unknown key; expected {sorted(required | optional)}")
    for k in sorted(required):
        if k not in d:
            raise ScenarioError(k, None, "is required")


def _number(d: dict[str, Any], key: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(key, value, "expected a number")
    return float(value)


class _Window(TypedDict):
    start: dt.date
    end: dt.date | None


def _window(d: dict[str, Any]) -> _Window:
    end = d.get("end")
    return {"start": _date(d["start"], "start"), "end": None if end is None else _date(end, "end")}


def _shift(d: dict[str, Any]) -> Shift:
    if "category" in d or "share" in d:
        _keys(d, {"start", "column", "category", "share"}, {"end"})
        return CategoryShift(column=d["column"], category=d["category"], share=_number(d, "share"), **_window(d))
    _keys(d, {"start", "column", "shift_sd"}, {"end"})
    if d["column"] in CATEGORICAL_COLUMNS:
        raise ScenarioError("column", d["column"], "is categorical: give category and share, not shift_sd")
    return NumericShift(column=d["column"], shift_sd=_number(d, "shift_sd"), **_window(d))


def _concept(d: dict[str, Any]) -> ConceptShift:
    _keys(d, {"start"}, {"end", "column", "weight_multiplier", "intercept_shift"})
    return ConceptShift(
        column=d.get("column"),
        weight_multiplier=_number(d, "weight_multiplier", -1.0),
        intercept_shift=_number(d, "intercept_shift", 0.0),
        **_window(d),
    )


def _corruption(d: dict[str, Any]) -> CorruptionSpec:
    _keys(d, {"ds", "kind"}, set(d) - {"ds", "kind"})  # extra keys are the corruption's parameters
    params = tuple(sorted((k, v) for k, v in d.items() if k not in ("ds", "kind")))
    return CorruptionSpec(ds=_date(d["ds"], "ds"), kind=d["kind"], params=params)


# -- generation -------------------------------------------------------------------------------------------


def _rng(seed: int, ds: dt.date, stream: int | None = None) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative int")
    key = [int(seed), ds.toordinal()] if stream is None else [int(seed), ds.toordinal(), stream]
    return np.random.default_rng(key)


def _categorical(rng: np.random.Generator, logits: np.ndarray, categories: Sequence[Any]) -> np.ndarray:
    """One draw per row from softmax(logits) (rows x categories) by inverse CDF: one uniform per row."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    idx = np.minimum((cdf < rng.random(len(p))[:, None]).sum(axis=1), len(categories) - 1)
    drawn: np.ndarray = np.asarray(categories, dtype=object)[idx]
    return drawn


def _row_count(rng: np.random.Generator, ds: dt.date, rows_per_day: int) -> int:
    noise = 1.0 + 0.03 * float(np.clip(rng.standard_normal(), -3, 3))
    return max(1, round(rows_per_day * _WEEKDAY_FACTORS[ds.weekday()] * noise))


def _base_events(ds: dt.date, seed: int, rows_per_day: int) -> pd.DataFrame:
    """The clean day: correlated features drawn from the ``[seed, ordinal]`` stream."""
    rng = _rng(seed, ds)
    n = _row_count(rng, ds, rows_per_day)

    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    micros = np.sort(hours * 3_600_000_000 + rng.integers(0, 3_600_000_000, n))
    applied_at = np.datetime64(ds, "us") + micros.astype("timedelta64[us]")

    age = np.clip(np.rint(rng.normal(41, 12, n)), 18, 85).astype(np.int64)
    a = (age - 41) / 12
    employment_years = np.round(np.minimum(rng.gamma(2.0, 3.0, n), age - 18), 1)
    z_inc = rng.standard_normal(n)
    log_income = np.log(52_000) + 0.15 * a + 0.025 * (employment_years - 6) + 0.45 * z_inc
    annual_income = np.round(np.clip(np.exp(log_income), 8_000, 2_000_000), 0)
    credit = 690 + 22 * z_inc + 14 * a + 7 * (employment_years - 6) / 4.4 + rng.normal(0, 52, n)
    credit_score = np.clip(np.rint(credit), 300, 850).astype(np.int64)

    cats = CATEGORICAL_COLUMNS
    home = _categorical(
        rng,
        np.column_stack([np.zeros(n), -1.3 + 0.7 * a, -0.3 + 0.5 * a + 0.8 * z_inc, np.full(n, -3.2)]),
        cats["home_ownership"],
    )
    purpose = _categorical(rng, np.tile(np.log([0.42, 0.20, 0.10, 0.08, 0.05, 0.05, 0.10]), (n, 1)), cats["purpose"])
    region = _categorical(rng, np.tile(np.log([0.20, 0.24, 0.20, 0.14, 0.22]), (n, 1)), cats["region"])
    channel = _categorical(
        rng, np.column_stack([np.zeros(n), -0.7 + 0.4 * a, np.full(n, -1.0), -0.5 - 0.5 * a]), cats["channel"]
    )

    purpose_size = (
        pd.Series(purpose)
        .map({"small_business": 0.4, "home_improvement": 0.2, "medical": -0.4, "credit_card": -0.2})
        .fillna(0.0)
        .to_numpy()
    )
    log_loan = np.log(0.2 * annual_income) + purpose_size + rng.normal(0, 0.45, n)
    loan_amount = np.clip(np.round(np.exp(log_loan) / 25) * 25, 1_000, 40_000)
    z_loan = (np.log(loan_amount) - 9.2) / 0.6
    term_idx = (np.array(TERMS) - 36) / 12
    term_logits = np.log([0.08, 0.17, 0.45, 0.12, 0.18]) + 0.5 * z_loan[:, None] * term_idx[None, :]
    term_months = _categorical(rng, term_logits, TERMS).astype(np.int64)

    payment_ratio = 12 * loan_amount / term_months / annual_income
    debt_to_income = np.round(np.clip(rng.beta(2.2, 8.0, n) + payment_ratio, 0, 0.95), 4)
    num_open_accounts = rng.poisson(np.exp(np.log(6) + 0.15 * z_inc + 0.1 * a)).astype(np.int64)
    num_delinquencies = np.minimum(rng.poisson(np.exp(-1.9 - 1.2 * (credit_score - 690) / 60)), 20).astype(np.int64)
    interest = (
        13.0
        - 0.05 * (credit_score - 690)
        + 0.06 * (term_months - 36)
        + 4.0 * (debt_to_income - 0.3)
        + rng.normal(0, 1.3, n)
    )
    interest_rate = np.round(np.clip(interest, 4.0, 35.99), 2)

    ids = [f"{ds:%Y%m%d}-{i:07d}" for i in range(n)]
    columns: dict[str, Any] = {
        ID_COLUMN: pd.array(ids, dtype="str"),
        TIMESTAMP_COLUMN: applied_at,
        "age": age,
        "annual_income": annual_income.astype(np.float64),
        "employment_years": employment_years.astype(np.float64),
        "home_ownership": pd.array(home, dtype="str"),
        "credit_score": credit_score,
        "num_open_accounts": num_open_accounts,
        "num_delinquencies": num_delinquencies,
        "debt_to_income": debt_to_income,
        "loan_amount": loan_amount.astype(np.float64),
        "term_months": term_months,
        "interest_rate": interest_rate,
        "purpose": pd.array(purpose, dtype="str"),
        "region": pd.array(region, dtype="str"),
        "channel": pd.array(channel, dtype="str"),
    }
    return pd.DataFrame(columns, columns=list(COLUMNS))


def _apply_numeric_shift(df: pd.DataFrame, shift: NumericShift, rng: np.random.Generator) -> None:
    col = shift.column
    lo, hi = _BOUNDS[col]
    moved = df[col].to_numpy(dtype=np.float64) + shift.shift_sd * REFERENCE_SD[col]
    if NUMERIC_COLUMNS[col] == "int64":
        # Stochastic rounding keeps the expected shift exact even when it is below one unit.
        moved = np.floor(moved + rng.random(len(df)))
        df[col] = np.clip(moved, lo, hi).astype(np.int64)
    else:
        df[col] = np.round(np.clip(moved, lo, hi), _DECIMALS[col])


def _apply_category_shift(df: pd.DataFrame, shift: CategoryShift, rng: np.random.Generator) -> None:
    """Reassign exactly enough rows so that ``category`` holds ``round(share * n)`` of them."""
    values = df[shift.column].to_numpy(dtype=object).copy()
    target = round(shift.share * len(values))
    is_cat = values == shift.category
    have = int(is_cat.sum())
    if target > have:
        values[rng.choice(np.flatnonzero(~is_cat), size=target - have, replace=False)] = shift.category
    elif target < have and (~is_cat).any():
        drop = rng.choice(np.flatnonzero(is_cat), size=have - target, replace=False)
        values[drop] = rng.choice(values[~is_cat], size=len(drop))
    df[shift.column] = pd.array(values, dtype="str")


def generate_events(
    ds: dt.date, *, seed: int, rows_per_day: int = DEFAULT_ROWS_PER_DAY, scenario: Scenario | None = None
) -> pd.DataFrame:
    """The application events of UTC day ``ds`` (no label): id, ``applied_at`` and 14 features."""
    if rows_per_day < 1:
        raise ValueError(f"rows_per_day={rows_per_day!r}: must be >= 1")
    df = _base_events(ds, seed, rows_per_day)
    active = [s for s in (scenario or Scenario()).covariate_shifts if s.active(ds)]
    if active:
        rng = _rng(seed, ds, 1)
        for s in active:
            if isinstance(s, NumericShift):
                _apply_numeric_shift(df, s, rng)
            else:
                _apply_category_shift(df, s, rng)
    return df


# Logit of P(default): each feature contributes one additive term, so a concept shift can scale one.
_CATEGORY_EFFECTS: dict[str, dict[str, float]] = {
    "home_ownership": {"RENT": 0.25, "OWN": -0.2, "MORTGAGE": -0.15, "OTHER": 0.4},
    "purpose": {
        "debt_consolidation": 0.1,
        "credit_card": 0.0,
        "home_improvement": -0.15,
        "car": -0.25,
        "medical": 0.35,
        "small_business": 0.7,
        "other": 0.2,
    },
    "region": {"NE": -0.05, "SE": 0.1, "MW": -0.1, "SW": 0.1, "W": 0.0},
    "channel": {"web": 0.0, "branch": -0.25, "broker": 0.35, "mobile": 0.1},
}
_INTERCEPT = -2.6  # ~15% default rate; Bayes AUC ~0.83


def _logit_terms(df: pd.DataFrame) -> dict[str, np.ndarray]:
    def num(c: str) -> np.ndarray:
        return df[c].to_numpy(dtype=np.float64)

    income = np.maximum(num("annual_income"), 1.0)
    terms = {
        "credit_score": -0.7 * (num("credit_score") - 690) / 60,
        "interest_rate": 0.3 * (num("interest_rate") - 13) / 3,
        "debt_to_income": 0.4 * (num("debt_to_income") - 0.3) / 0.13,
        "loan_amount": 0.35 * (np.log(np.maximum(num("loan_amount"), 1.0) / income) - np.log(0.2)) / 0.5,
        "annual_income": -0.2 * (np.log(income) - np.log(52_000)) / 0.5,
        "num_delinquencies": 0.25 * np.minimum(num("num_delinquencies"), 5),
        "employment_years": -0.25 * (np.minimum(num("employment_years"), 20) - 6) / 4.4,
        "term_months": 0.15 * (num("term_months") - 36) / 12,
        "num_open_accounts": 0.05 * (num("num_open_accounts") - 6) / 2.6,
        "age": -0.1 * (num("age") - 41) / 12,
    }
    for col, effects in _CATEGORY_EFFECTS.items():
        # Unseen categories contribute nothing: the true risk model does not know them either.
        terms[col] = df[col].map(effects).astype("float64").fillna(0.0).to_numpy()
    return terms


def _default_probability(df: pd.DataFrame, ds: dt.date, scenario: Scenario | None) -> np.ndarray:
    """True P(default | features) on event day ``ds``, after any active concept shifts."""
    terms = _logit_terms(df)
    intercept = _INTERCEPT
    for shift in (scenario or Scenario()).concept_shifts:
        if shift.active(ds):
            intercept += shift.intercept_shift
            if shift.column is not None:
                terms[shift.column] = terms[shift.column] * shift.weight_multiplier
    logit: npt.NDArray[np.float64] = intercept + np.sum(list(terms.values()), axis=0)
    return 1.0 / (1.0 + np.exp(-logit))


def generate_labels_for(
    event_ds: dt.date,
    *,
    seed: int,
    rows_per_day: int = DEFAULT_ROWS_PER_DAY,
    scenario: Scenario | None = None,
    delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
) -> pd.DataFrame:
    """Ground truth for the events of ``event_ds``: application_id, defaulted, event_ds, label_ts.

    ``label_ts`` = ``applied_at + delay_days``: when the outcome becomes known. ``event_ds`` holds
    ``datetime.date`` objects (object dtype; parquet ``date32``).
    """
    if delay_days < 0:
        raise ValueError(f"delay_days={delay_days!r}: must be >= 0")
    events = generate_events(event_ds, seed=seed, rows_per_day=rows_per_day, scenario=scenario)
    p = _default_probability(events, event_ds, scenario)
    u = _rng(seed, event_ds, 2).random(len(events))
    return pd.DataFrame(
        {
            ID_COLUMN: events[ID_COLUMN],
            LABEL_COLUMN: (u < p).astype(np.int64),
            "event_ds": pd.Series([event_ds] * len(events), dtype=object),
            "label_ts": events[TIMESTAMP_COLUMN] + pd.Timedelta(days=delay_days),
        }
    )


def label_partition(
    arrival_ds: dt.date,
    delay_days: int,
    *,
    seed: int,
    rows_per_day: int = DEFAULT_ROWS_PER_DAY,
    scenario: Scenario | None = None,
) -> pd.DataFrame:
    """The labels that arrive on ``arrival_ds``: those of event day ``arrival_ds - delay_days``."""
    return generate_labels_for(
        arrival_ds - dt.timedelta(days=delay_days),
        seed=seed,
        rows_per_day=rows_per_day,
        scenario=scenario,
        delay_days=delay_days,
    )


def landing_file_bytes(
    ds: dt.date,
    fmt: str,
    *,
    seed: int,
    rows_per_day: int = DEFAULT_ROWS_PER_DAY,
    scenario: Scenario | None = None,
) -> bytes:
    """The bytes upstream delivers for day ``ds``: clean events, or the scenario's corruption of them."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: expected one of {FORMATS}")
    events = generate_events(ds, seed=seed, rows_per_day=rows_per_day, scenario=scenario)
    spec = (scenario or Scenario()).corruption_for(ds)
    if spec is None:
        return render(events, fmt)
    return corrupt(spec.kind, events, fmt, _rng(seed, ds, 3), **dict(spec.params))
