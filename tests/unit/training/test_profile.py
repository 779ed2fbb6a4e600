"""The reference profile: strict JSON, small, deterministic, and binned the way monitoring will bin."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from sluice.config import EstimatorConfig, get_model_config
from sluice.datagen import loans
from sluice.features.pipeline import build_features
from sluice.training.model import fit, predict_scores
from sluice.training.profile import (
    OTHER,
    bin_proportions,
    categorical_profile,
    edges_array,
    numeric_profile,
    profile_json,
    reference_profile,
)

DS = dt.date(2025, 1, 6)


@pytest.fixture(scope="module")
def cfg():
    base = get_model_config("loans")
    est = EstimatorConfig(class_path="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 10})
    return base.model_copy(update={"training": base.training.model_copy(update={"estimator": est})})


@pytest.fixture(scope="module")
def frame(cfg):
    events = loans.generate_events(DS, seed=7, rows_per_day=1500)
    labels = loans.generate_labels_for(DS, seed=7, rows_per_day=1500)[["application_id", "defaulted"]]
    return build_features(events, cfg).merge(labels, on="application_id")


@pytest.fixture(scope="module")
def profile(cfg, frame):
    scores = predict_scores(fit(cfg, frame), frame, cfg.task)
    return reference_profile(frame, cfg, scores)


def test_profile_is_strict_small_json(profile) -> None:
    data = profile_json(profile)
    assert len(data) < 100_000
    assert json.loads(data) == profile
    json.dumps(profile, allow_nan=False)
    assert b"NaN" not in data and b"Infinity" not in data


def test_profile_covers_every_feature_and_the_prediction(cfg, frame, profile) -> None:
    feats = profile["features"]
    assert set(feats) == {*cfg.features.numeric, *cfg.features.categorical}
    assert all(feats[c]["kind"] == "numeric" for c in cfg.features.numeric)
    assert all(feats[c]["kind"] == "categorical" for c in cfg.features.categorical)
    assert profile["prediction"]["kind"] == "numeric"
    assert profile["meta"] == {
        "model": "loans",
        "rows": len(frame),
        "config_hash": cfg.config_hash,
        "n_bins": 10,
        "max_categories": 50,
    }


def test_numeric_bins_are_unique_quantiles_whose_proportions_sum_to_one(cfg, frame, profile) -> None:
    for name in [*cfg.features.numeric, "prediction"]:
        entry = profile["prediction"] if name == "prediction" else profile["features"][name]
        edges = entry["edges"]
        assert edges[0] == "-inf" and edges[-1] == "inf"
        inner = edges[1:-1]
        assert all(isinstance(e, float) for e in inner)
        assert inner == sorted(set(inner)), name  # strictly increasing
        assert len(entry["proportions"]) == len(edges) - 1
        assert sum(entry["proportions"]) == pytest.approx(1.0)
        assert entry["n"] == len(frame) and entry["null_share"] == 0.0
    age = profile["features"]["age"]
    assert age["mean"] == pytest.approx(frame["age"].mean())
    assert age["std"] == pytest.approx(frame["age"].std())
    # Monitoring bins new data with the same edges and convention and gets the same shares.
    assert bin_proportions(frame["age"], age) == pytest.approx(age["proportions"])
    assert np.isneginf(edges_array(age)[0]) and np.isposinf(edges_array(age)[-1])


def test_categorical_frequencies_sum_to_one(cfg, frame, profile) -> None:
    for c in cfg.features.categorical:
        entry = profile["features"][c]
        assert OTHER in entry["frequencies"]
        assert sum(entry["frequencies"].values()) == pytest.approx(1.0)
    region = profile["features"]["region"]["frequencies"]
    assert region["SE"] == pytest.approx((frame["region"] == "SE").mean())


def test_profile_bytes_are_deterministic(cfg, frame, profile) -> None:
    scores = np.linspace(0, 1, len(frame))
    a = profile_json(reference_profile(frame, cfg, scores))
    b = profile_json(reference_profile(frame.copy(), cfg, scores.copy()))
    assert a == b
    assert reference_profile(frame, cfg, None)["prediction"] is None


def test_nulls_constants_and_infinities_stay_strict_json() -> None:
    entry = numeric_profile(pd.Series([1.0, np.nan, 3.0, np.nan]), n_bins=4)
    assert entry["null_share"] == 0.5 and entry["n"] == 2
    assert sum(entry["proportions"]) == pytest.approx(1.0)

    empty = numeric_profile(pd.Series([np.nan, np.nan]))
    assert empty["edges"] == ["-inf", "inf"] and empty["n"] == 0 and empty["null_share"] == 1.0
    assert empty["mean"] is None and empty["std"] is None
    json.dumps(empty, allow_nan=False)

    const = numeric_profile(pd.Series([5.0] * 10))
    assert const["edges"] == ["-inf", 5.0, "inf"] and const["proportions"] == [0.0, 1.0]

    wild = numeric_profile(pd.Series([np.inf, -np.inf, 1.0, 2.0, 3.0]))
    json.dumps(wild, allow_nan=False)
    assert sum(wild["proportions"]) == pytest.approx(1.0) and wild["max"] == 3.0


def test_categorical_top_values_and_other() -> None:
    values = pd.Series(list("aaaabbbccd") + [None, None], dtype="str")
    entry = categorical_profile(values, max_categories=2)
    assert entry["frequencies"] == {"a": 0.4, "b": 0.3, OTHER: pytest.approx(0.3)}
    assert entry["n"] == 10 and entry["null_share"] == pytest.approx(2 / 12)
    assert categorical_profile(pd.Series([None], dtype="str"))["frequencies"] == {OTHER: 0.0}


def test_high_cardinality_stays_small(cfg, frame) -> None:
    wide = frame.assign(region=[f"r{i}" for i in range(len(frame))])
    profile = reference_profile(wide, cfg, None, max_categories=50)
    assert len(profile["features"]["region"]["frequencies"]) == 51
    assert len(profile_json(profile)) < 100_000
