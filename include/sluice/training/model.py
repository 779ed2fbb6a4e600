"""The model: one scikit-learn pipeline built from the config, seeded end to end.

Preprocessing lives inside the pipeline, so the artifact that is registered, deployed and served is the
same object that was evaluated: numeric columns are median-imputed (and standardised for estimators that
are sensitive to scale), categorical columns are imputed with ``"__missing__"`` and one-hot encoded with an
"infrequent" bucket that also takes values never seen in training. The estimator is
``training.estimator.class_path`` with its params; when it takes a ``random_state`` the params do not set,
it gets ``training.seed``. The same snapshot, config and seed therefore give the same predictions.
"""

from __future__ import annotations

import io
import logging
import pickle
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sluice.config import ModelConfig, resolve

log = logging.getLogger(__name__)

#: Estimators whose class name contains one of these get standardised numeric inputs.
SCALE_SENSITIVE = (
    "Logistic",
    "Linear",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "SGD",
    "SVC",
    "SVR",
    "Perceptron",
    "KNeighbors",
    "MLP",
)
MISSING_CATEGORY = "__missing__"


def feature_columns(cfg: ModelConfig) -> list[str]:
    """The model's inputs: numeric then categorical features (never the id or timestamp passthrough)."""
    return [*cfg.features.numeric, *cfg.features.categorical]


def is_scale_sensitive(estimator_class: type) -> bool:
    return any(tag in estimator_class.__name__ for tag in SCALE_SENSITIVE)


def _accepts_random_state(estimator: Any) -> bool:
    if hasattr(estimator, "get_params"):
        return "random_state" in estimator.get_params(deep=False)
    import inspect

    return "random_state" in inspect.signature(type(estimator)).parameters


def build_estimator(cfg: ModelConfig) -> Any:
    est_cfg = cfg.training.estimator
    cls = resolve(est_cfg.class_path)
    estimator = cls(**est_cfg.params)
    if "random_state" not in est_cfg.params and _accepts_random_state(estimator):
        estimator.set_params(random_state=cfg.training.seed)
    return estimator


def build_pipeline(cfg: ModelConfig) -> Pipeline:
    """Unfitted ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])``."""
    estimator = build_estimator(cfg)
    transformers: list[tuple[str, Any, list[str]]] = []
    if cfg.features.numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if is_scale_sensitive(type(estimator)):
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), list(cfg.features.numeric)))
    if cfg.features.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                (
                    "onehot",
                    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.01, sparse_output=False),
                ),
            ]
        )
        transformers.append(("categorical", categorical, list(cfg.features.categorical)))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def _inputs(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model's input columns of ``df``, in the fitted order."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"input frame lacks feature columns {missing}")
    return df[columns]


def _target(df: pd.DataFrame, cfg: ModelConfig) -> pd.Series:
    label = cfg.labels.column
    if label not in df.columns:
        raise ValueError(f"model {cfg.name!r}: label column {label!r} is not in the training frame")
    y = df[label]
    nulls = int(y.isna().sum())
    if nulls:
        raise ValueError(
            f"model {cfg.name!r}: {nulls} rows have a null label {label!r}; the training-set suite gates this"
        )
    return y.astype("int64") if cfg.task == "classification" else y.astype("float64")


def fit(cfg: ModelConfig, train_df: pd.DataFrame) -> Pipeline:
    model = build_pipeline(cfg)
    model.fit(_inputs(train_df, feature_columns(cfg)), _target(train_df, cfg))
    return model


def _model_columns(model: Pipeline) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError("the model was not fitted on a DataFrame; its input columns are unknown")
    return list(names)


def predict_scores(model: Pipeline, df: pd.DataFrame, task: str) -> np.ndarray:
    """Positive-class probability (classification) or prediction (regression), as float64.

    ``df`` may carry extra columns (ids, timestamps, the label): the model takes the columns it was fitted on.
    """
    x = _inputs(df, _model_columns(model))
    if task == "classification":
        proba = model.predict_proba(x)
        classes = list(model.classes_)
        col = classes.index(1) if 1 in classes else len(classes) - 1
        return np.asarray(proba[:, col], dtype="float64")
    if task == "regression":
        return np.asarray(model.predict(x), dtype="float64")
    raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")


def feature_importance(
    model: Pipeline,
    df: pd.DataFrame,
    y: Any,
    cfg: ModelConfig,
    seed: int,
    max_rows: int = 5000,
) -> dict[str, float]:
    """Permutation importance per input column (score drop when it is shuffled), largest first.

    Computed on a seeded sample of at most ``max_rows`` rows with 3 repeats; scoring is ROC AUC for
    classification and negative RMSE for regression.
    """
    columns = feature_columns(cfg)
    x = _inputs(df, columns).reset_index(drop=True)
    target = np.asarray(y)
    if len(target) != len(x):
        raise ValueError(f"feature_importance: {len(x)} rows but {len(target)} targets")
    if len(x) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
        x, target = x.iloc[idx].reset_index(drop=True), target[idx]
    scoring = "roc_auc" if cfg.task == "classification" else "neg_root_mean_squared_error"
    result = permutation_importance(model, x, target, scoring=scoring, n_repeats=3, random_state=seed, n_jobs=1)
    pairs = [(c, float(v)) for c, v in zip(columns, result.importances_mean, strict=True)]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return dict(pairs)


def importance_plot_png(importances: Mapping[str, float], top: int = 20) -> bytes:
    """Horizontal bar chart of the ``top`` largest importances, largest at the top (PNG bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = sorted(importances.items(), key=lambda p: (-p[1], p[0]))[:top]
    fig = Figure(figsize=(7, 0.32 * max(len(items), 1) + 1.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if items:
        names = [n for n, _ in reversed(items)]
        values = [v for _, v in reversed(items)]
        ax.barh(names, values, color="#3b75af")
        ax.axvline(0, color="black", linewidth=0.6)
    else:
        ax.text(0.5, 0.5, "no importances", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("permutation importance (score drop)")
    ax.set_title(f"Feature importance (top {len(items)})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def model_size_mb(model: Any) -> float:
    """Size of the pickled model in MiB (1024 * 1024 bytes)."""
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / (1024 * 1024)


def single_row_latency_ms(model: Pipeline, row: pd.DataFrame, repeats: int = 50, rounds: int = 3) -> float:
    """95th percentile of ``predict`` on one row, in milliseconds, after a warm-up: the best of ``rounds``
    rounds of ``repeats`` calls (a busy neighbour only ever adds time; a slow model is slow in every round).

    Measured on one thread, as a serving worker answers a request: with OpenMP's default pool, a busy
    machine turned a 5 ms single-row predict into 170 ms of thread wake-ups.
    """
    from threadpoolctl import threadpool_limits

    if repeats < 1 or rounds < 1:
        raise ValueError(f"repeats={repeats!r}, rounds={rounds!r}: both must be >= 1")
    x = _inputs(row.iloc[:1], _model_columns(model))
    p95s = []
    with threadpool_limits(limits=1):
        for _ in range(3):
            model.predict(x)
        for _ in range(rounds):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.predict(x)
                times.append((time.perf_counter() - t0) * 1000.0)
            p95s.append(float(np.percentile(times, 95)))
    return min(p95s)
