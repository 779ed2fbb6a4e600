"""Metrics: each kernel against sklearn (ties included), the documented conventions, and the errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from sluice.config import METRICS
from sluice.evaluation.metrics import compute_metrics, higher_is_better, slice_metrics


def classification_data(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels with 30% positives and scores rounded to 2 decimals: many ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = np.clip(np.round(0.6 * rng.random(n) + 0.3 * y, 2), 0, 1)
    return y, p


def _pred(p: np.ndarray) -> np.ndarray:
    return (p >= 0.5).astype(int)


SKLEARN_CLASSIFICATION = [
    ("roc_auc", lambda y, p: skm.roc_auc_score(y, p)),
    ("pr_auc", lambda y, p: skm.average_precision_score(y, p)),
    ("f1", lambda y, p: skm.f1_score(y, _pred(p))),
    ("precision", lambda y, p: skm.precision_score(y, _pred(p))),
    ("recall", lambda y, p: skm.recall_score(y, _pred(p))),
    ("accuracy", lambda y, p: skm.accuracy_score(y, _pred(p))),
    ("log_loss", lambda y, p: skm.log_loss(y, p)),
    ("brier", lambda y, p: skm.brier_score_loss(y, p)),
]


@pytest.mark.parametrize(("metric", "reference"), SKLEARN_CLASSIFICATION, ids=[m for m, _ in SKLEARN_CLASSIFICATION])
@pytest.mark.parametrize("seed", [1, 2], ids=["seed1", "seed2"])
def test_classification_metric_matches_sklearn(metric, reference, seed) -> None:
    y, p = classification_data(seed=seed)
    got = compute_metrics("classification", y, p, [metric])[metric]
    assert got == pytest.approx(reference(y, p), rel=1e-10, abs=1e-12)


def test_log_loss_clips_certain_mistakes() -> None:
    y, p = np.array([1, 0, 1, 0]), np.array([0.0, 1.0, 1.0, 0.0])
    got = compute_metrics("classification", y, p, ["log_loss"])["log_loss"]
    assert math.isfinite(got)
    assert got == pytest.approx(skm.log_loss(y, p), rel=1e-9)


SKLEARN_REGRESSION = [
    ("rmse", skm.root_mean_squared_error),
    ("mae", skm.mean_absolute_error),
    ("r2", skm.r2_score),
]


@pytest.mark.parametrize(("metric", "reference"), SKLEARN_REGRESSION, ids=[m for m, _ in SKLEARN_REGRESSION])
def test_regression_metric_matches_sklearn(metric, reference) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, size=1500)
    pred = y + rng.normal(0, 1.5, size=1500)
    got = compute_metrics("regression", y, pred, [metric])[metric]
    assert got == pytest.approx(reference(y, pred), rel=1e-10)


PRECISION_AT_K = [
    # (id, y, scores, k_fraction, expected)
    ("top2_of_10", [1, 0, 1, 0, 0, 0, 0, 0, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05], 0.2, 0.5),
    ("top3_of_10", [1, 0, 1, 0, 0, 0, 0, 0, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05], 0.3, 2 / 3),
    ("row_order_irrelevant", [0, 1, 0, 0, 1], [0.1, 0.9, 0.3, 0.2, 0.8], 0.4, 1.0),
    # k = 2: the 0.9 row, then one slot shared by the two rows tied at 0.5 (one positive): 1.5 / 2
    ("tie_at_the_cut_shares_slots", [1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], 0.5, 0.75),
    # k = 1.2 (not rounded): the 0.9 positive, then 0.2 of the 0.5 negative: 1 / 1.2
    ("fractional_k", [1, 0, 1, 0], [0.9, 0.5, 0.3, 0.1], 0.3, 1 / 1.2),
    ("all_rows", [1, 0, 0, 0], [0.9, 0.5, 0.3, 0.1], 1.0, 0.25),
]


@pytest.mark.parametrize(
    ("y", "scores", "k_fraction", "expected"), [c[1:] for c in PRECISION_AT_K], ids=[c[0] for c in PRECISION_AT_K]
)
def test_precision_at_k(y, scores, k_fraction, expected) -> None:
    got = compute_metrics("classification", y, scores, ["precision_at_k"], k_fraction=k_fraction)
    assert got["precision_at_k"] == pytest.approx(expected)


DEGENERATE = [
    # (id, y, scores, metric, expected (nan = NaN))
    ("roc_auc_only_positives", [1, 1, 1], [0.2, 0.5, 0.9], "roc_auc", math.nan),
    ("roc_auc_only_negatives", [0, 0, 0], [0.2, 0.5, 0.9], "roc_auc", math.nan),
    ("pr_auc_no_positives", [0, 0, 0], [0.2, 0.5, 0.9], "pr_auc", math.nan),
    ("pr_auc_only_positives", [1, 1, 1], [0.2, 0.5, 0.9], "pr_auc", 1.0),
    ("precision_no_predicted_positive", [1, 0, 1], [0.1, 0.2, 0.3], "precision", 0.0),
    ("recall_no_positives", [0, 0, 0], [0.1, 0.7, 0.3], "recall", 0.0),
    ("f1_nothing_to_find", [0, 0, 0], [0.1, 0.2, 0.3], "f1", 0.0),
    ("roc_auc_all_tied", [0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], "roc_auc", 0.5),
    ("roc_auc_single_row", [1], [0.5], "roc_auc", math.nan),
]


@pytest.mark.parametrize(
    ("y", "scores", "metric", "expected"), [c[1:] for c in DEGENERATE], ids=[c[0] for c in DEGENERATE]
)
def test_degenerate_inputs_do_not_raise(y, scores, metric, expected) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        got = compute_metrics("classification", y, scores, [metric])[metric]
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_r2_of_constant_target_is_nan() -> None:
    assert math.isnan(compute_metrics("regression", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], ["r2"])["r2"])


def test_predict_proba_two_columns_use_the_positive_class() -> None:
    y, p = classification_data(300)
    two = np.column_stack([1 - p, p])
    assert compute_metrics("classification", y, two, ["roc_auc", "log_loss"]) == compute_metrics(
        "classification", y, p, ["roc_auc", "log_loss"]
    )


def test_several_metrics_at_once_and_booleans_as_labels() -> None:
    y, p = classification_data(500)
    got = compute_metrics("classification", y.astype(bool), p, ["roc_auc", "f1", "brier"])
    assert list(got) == ["roc_auc", "f1", "brier"]
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))


BAD_CALLS = [
    # (id, task, y, scores, names, message fragment)
    ("unknown_metric", "classification", [0, 1], [0.2, 0.8], ["auc"], "unknown metric 'auc'"),
    ("unknown_metric_lists_known", "classification", [0, 1], [0.2, 0.8], ["auc"], "roc_auc"),
    ("metric_of_other_task", "classification", [0, 1], [0.2, 0.8], ["rmse"], "'rmse' is for regression"),
    ("unknown_task", "ranking", [0, 1], [0.2, 0.8], [], "unknown task"),
    ("length_mismatch", "classification", [0, 1, 1], [0.2, 0.8], ["roc_auc"], "3 rows but y_score has 2"),
    ("non_binary_labels", "classification", [0, 2], [0.2, 0.8], ["roc_auc"], "must be 0/1"),
    ("nan_score", "classification", [0, 1], [0.2, math.nan], ["roc_auc"], "non-finite"),
    ("no_rows", "classification", [], [], ["roc_auc"], "no rows"),
]


@pytest.mark.parametrize(
    ("task", "y", "scores", "names", "fragment"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_calls_raise_value_error_saying_why(task, y, scores, names, fragment) -> None:
    with pytest.raises(ValueError) as err:
        compute_metrics(task, y, scores, names)
    assert fragment in str(err.value)


def test_k_fraction_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="k_fraction"):
        compute_metrics("classification", [0, 1], [0.1, 0.9], ["precision_at_k"], k_fraction=0)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_higher_is_better_follows_config(metric) -> None:
    expected = metric not in ("log_loss", "brier", "rmse", "mae")
    assert higher_is_better(metric) is expected is METRICS[metric][2]


def test_higher_is_better_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        higher_is_better("nope")


def test_slice_metrics_values_sizes_and_small_slices() -> None:
    y, p = classification_data(1000)
    rng = np.random.default_rng(5)
    region = rng.choice(["north", "south", "tiny"], size=1000, p=[0.6, 0.37, 0.03]).astype(object)
    region[:5] = None  # missing values get their own group
    channel = np.where(np.arange(1000) % 2 == 0, "web", "branch")
    out = slice_metrics("classification", y, p, {"region": region, "channel": channel}, "roc_auc", min_rows=50)

    assert set(out) == {"region", "channel"}
    assert set(out["region"]) == {"north", "south", "tiny", "(missing)"}
    assert sum(v["n"] for v in out["region"].values()) == 1000
    north = region == "north"
    assert out["region"]["north"]["n"] == int(north.sum())
    assert out["region"]["north"]["value"] == pytest.approx(skm.roc_auc_score(y[north], p[north]))
    assert out["region"]["tiny"]["n"] < 50 and out["region"]["tiny"]["value"] is None
    assert out["region"]["(missing)"] == {"value": None, "n": 5}
    web = channel == "web"
    assert out["channel"]["web"]["value"] == pytest.approx(skm.roc_auc_score(y[web], p[web]))


def test_slice_metric_undefined_on_a_slice_is_none() -> None:
    y = np.array([0] * 60 + [0] * 30 + [1] * 30)
    p = np.linspace(0, 1, 120)
    seg = np.array(["a"] * 60 + ["b"] * 60)
    out = slice_metrics("classification", y, p, {"seg": seg}, "roc_auc", min_rows=50)
    assert out["seg"]["a"] == {"value": None, "n": 60}  # one class only: roc_auc undefined
    assert out["seg"]["b"]["value"] == pytest.approx(1.0)


def test_slice_metrics_regression_and_length_check() -> None:
    y = np.arange(100.0)
    out = slice_metrics("regression", y, y + 1, {"half": y < 50}, "mae", min_rows=10)
    assert out["half"] == {"False": {"value": 1.0, "n": 50}, "True": {"value": 1.0, "n": 50}}
    with pytest.raises(ValueError, match="slice column 'bad' has 3 rows"):
        slice_metrics("regression", y, y, {"bad": [1, 2, 3]}, "mae")
