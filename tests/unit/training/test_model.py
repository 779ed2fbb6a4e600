"""The model pipeline: built from config, seeded end to end, robust to what production sends it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sluice.config import EstimatorConfig, get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.lake import Lake, LocalStorage
from sluice.training.model import (
    build_pipeline,
    feature_columns,
    feature_importance,
    fit,
    importance_plot_png,
    model_size_mb,
    predict_scores,
    single_row_latency_ms,
)
from sluice.training.snapshot import build_snapshot, time_split

START = dt.date(2025, 1, 1)
DAYS = 11  # labels of Jan 1..4 have arrived by Jan 11


def with_estimator(cfg, class_path: str, seed: int | None = None, task: str | None = None, **params):
    training = cfg.training.model_copy(
        update={
            "estimator": EstimatorConfig(class_path=class_path, params=params),
            "seed": cfg.training.seed if seed is None else seed,
        }
    )
    return cfg.model_copy(update={"training": training, "task": task or cfg.task})


@pytest.fixture(scope="module")
def cfg():
    base = get_model_config("loans")
    return base.model_copy(update={"training": base.training.model_copy(update={"window_days": DAYS})})


@pytest.fixture(scope="module")
def rf_cfg(cfg):
    return with_estimator(cfg, "sklearn.ensemble.RandomForestClassifier", n_estimators=25, max_depth=6, n_jobs=1)


@pytest.fixture(scope="module")
def splits(tmp_path_factory, cfg):
    lake = Lake(LocalStorage(tmp_path_factory.mktemp("model_lake")))
    generate_into_lake(cfg, lake, START, DAYS, rows_per_day=300)
    for i in range(DAYS):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    snap = build_snapshot(cfg, lake, START + dt.timedelta(days=DAYS - 1))
    return time_split(snap.frame, cfg)


@pytest.fixture(scope="module")
def rf_model(rf_cfg, splits):
    return fit(rf_cfg, splits[0])


def test_feature_columns_are_numeric_then_categorical_without_passthrough(cfg) -> None:
    cols = feature_columns(cfg)
    assert cols == [*cfg.features.numeric, *cfg.features.categorical]
    assert "application_id" not in cols and "applied_at" not in cols


def test_pipeline_scales_only_for_scale_sensitive_estimators_and_seeds_them(cfg) -> None:
    linear = build_pipeline(with_estimator(cfg, "sklearn.linear_model.LogisticRegression", seed=5, max_iter=200))
    numeric = linear.named_steps["preprocess"].transformers[0][1]
    assert any(isinstance(step, StandardScaler) for _, step in numeric.steps)
    assert linear.named_steps["model"].random_state == 5
    assert linear.named_steps["model"].max_iter == 200

    forest = build_pipeline(with_estimator(cfg, "sklearn.ensemble.RandomForestClassifier", seed=5))
    numeric = forest.named_steps["preprocess"].transformers[0][1]
    assert not any(isinstance(step, StandardScaler) for _, step in numeric.steps)
    assert forest.named_steps["model"].random_state == 5

    explicit = build_pipeline(cfg)  # loans.yaml sets random_state itself: the params win
    assert explicit.named_steps["model"].random_state == cfg.training.estimator.params["random_state"]
    onehot = explicit.named_steps["preprocess"].transformers[1][1].named_steps["onehot"]
    assert onehot.handle_unknown == "infrequent_if_exist" and onehot.min_frequency == 0.01


def test_same_snapshot_config_and_seed_give_identical_predictions(rf_cfg, splits, rf_model) -> None:
    train, _, test = splits
    again = fit(rf_cfg, train)
    a, b = predict_scores(rf_model, test, rf_cfg.task), predict_scores(again, test, rf_cfg.task)
    assert a.shape == (len(test),) and a.dtype == np.float64
    assert np.array_equal(a, b)

    reseeded = fit(rf_cfg.model_copy(update={"training": rf_cfg.training.model_copy(update={"seed": 7})}), train)
    assert not np.array_equal(a, predict_scores(reseeded, test, rf_cfg.task))


def test_gradient_boosting_is_reproducible(cfg, splits) -> None:
    hgb = with_estimator(cfg, "sklearn.ensemble.HistGradientBoostingClassifier", max_iter=30, early_stopping=False)
    train, _, test = splits
    # One OpenMP thread: on a busy machine its spinning threads make a 0.2 s fit take many seconds.
    with threadpool_limits(limits=1, user_api="openmp"):
        a = predict_scores(fit(hgb, train), test, "classification")
        b = predict_scores(fit(hgb, train), test, "classification")
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()


def test_unseen_categories_and_nans_at_predict_time(rf_cfg, splits, rf_model) -> None:
    test = splits[2].head(20).copy()
    test["region"] = "ATLANTIS"  # never seen in training
    test["purpose"] = pd.array([None] * len(test), dtype="str")
    test.loc[test.index[:10], "age"] = np.nan
    test.loc[test.index[5:15], "credit_score"] = np.nan
    scores = predict_scores(rf_model, test, rf_cfg.task)
    assert scores.shape == (20,)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    # Extra columns and another column order are fine: the model takes the columns it was fitted on.
    shuffled = splits[2].head(20)[list(reversed(splits[2].columns))]
    assert np.array_equal(
        predict_scores(rf_model, shuffled, "classification"),
        predict_scores(rf_model, splits[2].head(20), "classification"),
    )


def test_missing_feature_column_is_named(rf_model, splits) -> None:
    with pytest.raises(ValueError, match="region"):
        predict_scores(rf_model, splits[2].drop(columns=["region"]), "classification")


def test_null_label_refuses_to_fit(rf_cfg, splits) -> None:
    train = splits[0].copy()
    train["defaulted"] = train["defaulted"].astype("float64")
    train.loc[train.index[0], "defaulted"] = np.nan
    with pytest.raises(ValueError, match="1 rows have a null label"):
        fit(rf_cfg, train)


def test_regression_predicts_values(cfg, splits) -> None:
    reg = with_estimator(cfg, "sklearn.ensemble.RandomForestRegressor", task="regression", n_estimators=10, max_depth=4)
    train, _, test = splits
    model = fit(reg, train)
    scores = predict_scores(model, test, "regression")
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    imp = feature_importance(model, test, test["defaulted"].astype("float64"), reg, seed=0, max_rows=200)
    assert set(imp) == set(feature_columns(reg))


def test_feature_importance_is_deterministic_and_plotted(rf_cfg, splits, rf_model) -> None:
    test = splits[2]
    imp = feature_importance(rf_model, test, test["defaulted"], rf_cfg, seed=3, max_rows=250)
    assert set(imp) == set(feature_columns(rf_cfg))
    assert all(isinstance(v, float) and np.isfinite(v) for v in imp.values())
    assert list(imp.values()) == sorted(imp.values(), reverse=True)
    assert imp == feature_importance(rf_model, test, test["defaulted"], rf_cfg, seed=3, max_rows=250)

    png = importance_plot_png(imp)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    many = {f"f{i:02d}": float(i) for i in range(30)}
    assert importance_plot_png(many).startswith(b"\x89PNG")
    assert importance_plot_png({}).startswith(b"\x89PNG")


def test_size_and_latency(rf_model, splits) -> None:
    size = model_size_mb(rf_model)
    assert 0 < size < 50
    latency = single_row_latency_ms(rf_model, splits[2].iloc[[0]], repeats=10)
    assert isinstance(latency, float) and 0 < latency < 5000
