"""Batch scoring on a real S3 endpoint (moto's server over HTTP) gives the bytes it gives on local disk."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from sluice.config import EstimatorConfig, get_model_config
from sluice.datagen import loans
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.features.pipeline import build_features
from sluice.lake import Lake, LocalStorage, open_lake
from sluice.serving.batch import read_predictions, score_partition
from sluice.training.model import fit, predict_scores

pytestmark = pytest.mark.integration

DS = dt.date(2025, 1, 8)


def test_scoring_on_s3_matches_local_disk(s3_lake, tmp_path) -> None:
    base = get_model_config("loans")
    estimator = EstimatorConfig(
        class_path="sklearn.ensemble.HistGradientBoostingClassifier", params={"max_iter": 15, "random_state": 3}
    )
    cfg = base.model_copy(update={"training": base.training.model_copy(update={"estimator": estimator})})
    events = loans.generate_events(dt.date(2025, 1, 2), seed=7, rows_per_day=800)
    labels = loans.generate_labels_for(dt.date(2025, 1, 2), seed=7, rows_per_day=800)
    model = fit(cfg, build_features(events, cfg).merge(labels[["application_id", "defaulted"]], on="application_id"))

    results = {}
    for where, lake in (("s3", open_lake()), ("local", Lake(LocalStorage(tmp_path / "lake")))):
        generate_into_lake(cfg, lake, DS, 1, rows_per_day=800)
        publish_features(cfg, lake, DS)
        summary = score_partition(cfg, lake, DS, model, model_version="2", run_id="r1", batch_rows=300)
        results[where] = (summary, lake.read_published("predictions", cfg.name, DS), read_predictions(cfg, lake, DS))

    s3_summary, s3_bytes, s3_pred = results["s3"]
    assert s3_summary["uri"].startswith(s3_lake) and s3_summary["batches"] > 1
    assert s3_bytes == results["local"][1], "the same partition and model give the same bytes on S3 and disk"
    (feats_bytes,) = open_lake().read_published("features", cfg.features.feature_set, DS)
    feats = pd.read_parquet(io.BytesIO(feats_bytes))
    assert s3_pred["application_id"].tolist() == feats["application_id"].tolist()
    np.testing.assert_array_equal(s3_pred["score"].to_numpy(), predict_scores(model, feats, cfg.task))

    # a tampered object on S3 is refused by name
    lake = open_lake()
    name = lake.manifest("features", cfg.features.feature_set, DS)["files"][0]["name"]
    lake.storage.write_bytes(f"features/{cfg.features.feature_set}/ds={DS}/{name}", b"tampered")
    with pytest.raises(ValueError, match=f"{name}: sha256 does not match"):
        score_partition(cfg, lake, DS, model, model_version="2", run_id="r1")
