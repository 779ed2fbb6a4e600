"""Paired bootstrap: the weighted kernels against sklearn, orientation, intervals, coverage, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from sluice.evaluation.bootstrap import BootstrapResult, paired_bootstrap, poisson_weights
from sluice.evaluation.metrics import Prepared


def binormal(n: int, d_cand: float, d_champ: float, seed: int, rho: float = 0.6, ties: bool = False):
    """Scores ``d * y + noise`` with unit-variance noise correlated ``rho`` between the two models.

    Each model's true AUC is Phi(d / sqrt(2)), so the true difference is known.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    shared, own_c, own_h = rng.normal(size=(3, n))
    cand = d_cand * y + math.sqrt(rho) * shared + math.sqrt(1 - rho) * own_c
    champ = d_champ * y + math.sqrt(rho) * shared + math.sqrt(1 - rho) * own_h
    if ties:
        cand, champ = np.round(cand, 1), np.round(champ, 1)
    return y, cand, champ


def probabilities(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# ---- the weighted kernels the bootstrap runs on -------------------------------------------------------

WEIGHTED_REFERENCES = [
    ("roc_auc", lambda y, p, w: skm.roc_auc_score(y, p, sample_weight=w)),
    ("pr_auc", lambda y, p, w: skm.average_precision_score(y, p, sample_weight=w)),
    ("log_loss", lambda y, p, w: skm.log_loss(y, p, sample_weight=w)),
    ("brier", lambda y, p, w: skm.brier_score_loss(y, p, sample_weight=w)),
    ("f1", lambda y, p, w: skm.f1_score(y, p >= 0.5, sample_weight=w)),
    ("precision", lambda y, p, w: skm.precision_score(y, p >= 0.5, sample_weight=w)),
    ("recall", lambda y, p, w: skm.recall_score(y, p >= 0.5, sample_weight=w)),
    ("accuracy", lambda y, p, w: skm.accuracy_score(y, p >= 0.5, sample_weight=w)),
]


@pytest.mark.parametrize(("metric", "reference"), WEIGHTED_REFERENCES, ids=[m for m, _ in WEIGHTED_REFERENCES])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct_scores", "ties"])
def test_kernel_with_unit_weights_equals_sklearn(metric, reference, ties) -> None:
    y, cand, _ = binormal(3000, 1.0, 0.8, seed=4, ties=ties)
    p = probabilities(cand)
    got = Prepared("classification", y, p).kernel(metric)(np.ones((1, len(y))))
    assert got.shape == (1,)
    assert got[0] == pytest.approx(reference(y, p, None), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("metric", "reference"), WEIGHTED_REFERENCES, ids=[m for m, _ in WEIGHTED_REFERENCES])
def test_kernel_with_resampling_weights_equals_sklearn_sample_weight(metric, reference) -> None:
    """Each row of a weight block is one resample: integer weights act as repeated rows (ties included)."""
    y, cand, _ = binormal(1500, 1.0, 0.8, seed=5, ties=True)
    p = probabilities(cand)
    w = poisson_weights(np.random.default_rng(0), 3, len(y))
    got = Prepared("classification", y, p).kernel(metric)(w)
    for b in range(3):
        assert got[b] == pytest.approx(reference(y, p, w[b]), rel=1e-9, abs=1e-12)
        repeated = np.repeat(np.arange(len(y)), w[b].astype(int))
        assert got[b] == pytest.approx(reference(y[repeated], p[repeated], None), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k_fraction", [0.1, 0.25, 0.37], ids=["k10", "k25", "k37"])
def test_precision_at_k_weights_act_as_repeated_rows(k_fraction) -> None:
    y, cand, _ = binormal(1000, 1.0, 0.8, seed=15, ties=True)
    w = poisson_weights(np.random.default_rng(2), 2, len(y))
    got = Prepared("classification", y, cand, k_fraction).kernel("precision_at_k")(w)
    for b in range(2):
        rep = np.repeat(np.arange(len(y)), w[b].astype(int))
        plain = Prepared("classification", y[rep], cand[rep], k_fraction).kernel("precision_at_k")
        assert got[b] == pytest.approx(plain(np.ones((1, len(rep))))[0], rel=1e-12)


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("rmse", lambda y, s, w: skm.root_mean_squared_error(y, s, sample_weight=w)),
        ("mae", lambda y, s, w: skm.mean_absolute_error(y, s, sample_weight=w)),
        ("r2", lambda y, s, w: skm.r2_score(y, s, sample_weight=w)),
    ],
    ids=["rmse", "mae", "r2"],
)
def test_regression_kernels_with_weights_equal_sklearn(metric, reference) -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(100, 5, size=800)
    s = y + rng.normal(0, 2, size=800)
    w = poisson_weights(rng, 2, len(y))
    got = Prepared("regression", y, s).kernel(metric)(w)
    for b in range(2):
        assert got[b] == pytest.approx(reference(y, s, w[b]), rel=1e-9)


def test_poisson_weights_look_like_poisson_one() -> None:
    w = poisson_weights(np.random.default_rng(1), 10, 100_000)
    assert w.shape == (10, 100_000) and w.dtype == np.float64
    assert (w == np.round(w)).all() and w.min() == 0
    assert w.mean() == pytest.approx(1.0, abs=0.005)
    assert w.var() == pytest.approx(1.0, abs=0.01)
    assert (w == 0).mean() == pytest.approx(math.exp(-1), abs=0.003)
    assert (w == 3).mean() == pytest.approx(math.exp(-1) / 6, abs=0.002)


# ---- the interval ---------------------------------------------------------------------------------------

SAME_MODEL = [
    ("classification", "roc_auc"),
    ("classification", "pr_auc"),
    ("classification", "log_loss"),
    ("classification", "f1"),
    ("classification", "precision_at_k"),
    ("regression", "rmse"),
    ("regression", "r2"),
]


@pytest.mark.parametrize(("task", "metric"), SAME_MODEL, ids=[m for _, m in SAME_MODEL])
def test_identical_models_give_zero_difference(task, metric) -> None:
    y, cand, _ = binormal(2000, 1.0, 1.0, seed=7)
    score = probabilities(cand) if task == "classification" else cand
    target = y if task == "classification" else cand + np.random.default_rng(0).normal(size=len(y))
    r = paired_bootstrap(task, metric, target, score, score.copy(), n_samples=200)
    assert r.point_difference == 0.0
    assert r.lower <= 0.0 <= r.upper


CLEARLY_BETTER = [
    ("roc_auc", True),
    ("pr_auc", True),
    ("log_loss", False),
    ("brier", False),
    ("accuracy", True),
]


@pytest.mark.parametrize(("metric", "hib"), CLEARLY_BETTER, ids=[m for m, _ in CLEARLY_BETTER])
def test_clearly_better_candidate_has_interval_above_zero(metric, hib) -> None:
    y, cand, champ = binormal(5000, 1.6, 0.8, seed=8)
    pc, ph = probabilities(cand - 1), probabilities(champ - 1)
    r = paired_bootstrap("classification", metric, y, pc, ph, n_samples=300)
    assert r.lower > 0, r
    assert r.lower <= r.point_difference <= r.upper
    raw = skm.roc_auc_score(y, pc) - skm.roc_auc_score(y, ph) if metric == "roc_auc" else None
    if raw is not None:
        assert r.point_difference == pytest.approx(raw, rel=1e-9)
    # swapping the models mirrors the interval: the orientation is by the metric, not by the argument order
    swapped = paired_bootstrap("classification", metric, y, ph, pc, n_samples=300)
    assert swapped.upper < 0
    assert swapped.point_difference == pytest.approx(-r.point_difference)
    assert r.better_is_positive and swapped.better_is_positive


def test_lower_is_better_metric_is_oriented_champion_minus_candidate() -> None:
    y, cand, champ = binormal(3000, 1.6, 0.8, seed=9)
    pc, ph = probabilities(cand - 1), probabilities(champ - 1)
    r = paired_bootstrap("classification", "log_loss", y, pc, ph, n_samples=100)
    assert r.point_difference == pytest.approx(skm.log_loss(y, ph) - skm.log_loss(y, pc), rel=1e-9)
    assert r.point_difference > 0  # the candidate has the lower loss: positive = candidate better


def test_regression_better_candidate() -> None:
    rng = np.random.default_rng(10)
    y = rng.normal(size=4000)
    good, bad = y + rng.normal(0, 0.5, 4000), y + rng.normal(0, 0.8, 4000)
    for metric in ("rmse", "mae", "r2"):
        assert paired_bootstrap("regression", metric, y, good, bad, n_samples=200).lower > 0, metric


@pytest.mark.parametrize(
    ("metric", "truth"),
    [
        ("roc_auc", norm.cdf(1.0 / math.sqrt(2)) - norm.cdf(0.8 / math.sqrt(2))),
        ("accuracy", None),
    ],
    ids=["roc_auc_binormal", "accuracy"],
)
def test_coverage_of_the_true_difference(metric, truth) -> None:
    """Over 40 independent test sets, the 95% interval contains the true population difference most times."""
    if truth is None:  # population difference from one very large sample of the same process
        y, cand, champ = binormal(400_000, 1.0, 0.8, seed=999)
        truth = np.mean((cand >= 0.5) == y) - np.mean((champ >= 0.5) == y)
    hits = 0
    trials = 40
    for seed in range(trials):
        y, cand, champ = binormal(600, 1.0, 0.8, seed=seed)
        r = paired_bootstrap("classification", metric, y, cand, champ, n_samples=300, seed=seed)
        hits += r.lower <= truth <= r.upper
    assert hits / trials >= 0.85, f"coverage {hits}/{trials}"


def test_single_case_interval_contains_the_true_difference() -> None:
    truth = norm.cdf(1.2 / math.sqrt(2)) - norm.cdf(1.0 / math.sqrt(2))
    y, cand, champ = binormal(20_000, 1.2, 1.0, seed=11)
    r = paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=500)
    assert r.lower <= truth <= r.upper
    assert r.upper - r.lower < 0.03


def test_deterministic_given_seed() -> None:
    y, cand, champ = binormal(3000, 1.0, 0.9, seed=12)
    a = paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=200, seed=3)
    b = paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=200, seed=3)
    c = paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=200, seed=4)
    assert a == b
    assert (c.lower, c.upper) != (a.lower, a.upper)
    assert c.point_difference == a.point_difference


def test_confidence_widens_the_interval() -> None:
    y, cand, champ = binormal(3000, 1.0, 0.9, seed=13)
    narrow = paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=400, confidence=0.8)
    wide = paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=400, confidence=0.99)
    assert wide.lower < narrow.lower < narrow.upper < wide.upper


def test_blocks_of_resamples_cover_every_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block size that does not divide n_samples: every replicate is filled (no stale values)."""
    import sluice.evaluation.bootstrap as bs

    monkeypatch.setattr(bs, "BLOCK_ELEMENTS", 3 * 1000)  # 3 resamples per block for 1000 rows
    y, cand, champ = binormal(1000, 1.0, 0.9, seed=14)
    r = bs.paired_bootstrap("classification", "roc_auc", y, cand, champ, n_samples=100)
    assert math.isfinite(r.lower) and r.lower < r.point_difference < r.upper


def test_one_class_gives_nan_interval_without_error() -> None:
    y = np.ones(200, dtype=int)
    s = np.linspace(0, 1, 200)
    r = paired_bootstrap("classification", "roc_auc", y, s, s[::-1], n_samples=50)
    assert math.isnan(r.point_difference) and math.isnan(r.lower) and math.isnan(r.upper)
    assert r.to_dict()["lower"] is None
    json.dumps(r.to_dict(), allow_nan=False)


def test_to_dict_from_dict_round_trip() -> None:
    r = BootstrapResult("log_loss", 0.01, -0.002, 0.02, 0.95, 1000, 12_345)
    d = r.to_dict()
    assert d == {
        "metric": "log_loss",
        "point_difference": 0.01,
        "lower": -0.002,
        "upper": 0.02,
        "confidence": 0.95,
        "n_samples": 1000,
        "n_rows": 12_345,
        "better_is_positive": True,
    }
    assert BootstrapResult.from_dict(json.loads(json.dumps(d))) == r


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metric": "nope"}, "unknown metric"),
        ({"metric": "rmse"}, "is for regression"),
        ({"n_samples": 0}, "n_samples"),
        ({"confidence": 1.0}, "confidence"),
        ({"score_champion": [0.1, 0.2]}, "rows"),
    ],
    ids=["unknown_metric", "wrong_task", "no_samples", "confidence_one", "champion_rows"],
)
def test_bad_arguments(kwargs, fragment) -> None:
    args = {
        "task": "classification",
        "metric": "roc_auc",
        "y_true": [0, 1, 0, 1],
        "score_candidate": [0.1, 0.9, 0.2, 0.8],
        "score_champion": [0.2, 0.8, 0.3, 0.7],
    }
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        paired_bootstrap(
            args.pop("task"),
            args.pop("metric"),
            args.pop("y_true"),
            args.pop("score_candidate"),
            args.pop("score_champion"),
            **args,
        )
    assert fragment in str(err.value)
