"""Batch scoring of a feature partition: every row scored once, exactly as in memory, the same bytes on a rerun."""

from __future__ import annotations

import datetime as dt
import io
import logging
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sluice.config import EstimatorConfig, get_model_config
from sluice.datagen import loans
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.features.pipeline import build_features, manifest_meta, to_parquet_bytes
from sluice.lake import MANIFEST, Lake, LocalStorage
from sluice.serving import batch
from sluice.serving.batch import read_predictions, score_partition
from sluice.training.model import fit, predict_scores

pytestmark = pytest.mark.unit

DS = dt.date(2025, 1, 8)
ROWS_PER_DAY = 1500


@pytest.fixture(scope="module")
def cfg():
    base = get_model_config("loans")
    estimator = EstimatorConfig(
        class_path="sklearn.ensemble.HistGradientBoostingClassifier", params={"max_iter": 25, "random_state": 3}
    )
    return base.model_copy(update={"training": base.training.model_copy(update={"estimator": estimator})})


@pytest.fixture(scope="module")
def model(cfg):
    """A small fitted pipeline on two earlier days of generated features with their labels."""
    days = [dt.date(2025, 1, 2), dt.date(2025, 1, 3)]
    feats = pd.concat([build_features(loans.generate_events(d, seed=7, rows_per_day=ROWS_PER_DAY), cfg) for d in days])
    labels = pd.concat([loans.generate_labels_for(d, seed=7, rows_per_day=ROWS_PER_DAY) for d in days])
    return fit(cfg, feats.merge(labels[["application_id", "defaulted"]], on="application_id"))


@pytest.fixture
def lake(tmp_path, cfg) -> Lake:
    """A local lake with the published feature partition of DS, made by the features job itself."""
    lake = Lake(LocalStorage(tmp_path / "lake"))
    generate_into_lake(cfg, lake, DS, 1, rows_per_day=ROWS_PER_DAY)
    publish_features(cfg, lake, DS)
    return lake


def features_frame(cfg, lake: Lake) -> pd.DataFrame:
    (data,) = lake.read_published("features", cfg.features.feature_set, DS)
    return pd.read_parquet(io.BytesIO(data))


def predictions_bytes(cfg, lake: Lake) -> bytes:
    (data,) = lake.read_published("predictions", cfg.name, DS)
    return data


def score(cfg, lake: Lake, model, **kw) -> dict:
    return score_partition(cfg, lake, DS, model, **{"model_version": "7", "run_id": "run-abc", **kw})


def test_every_row_is_scored_once_with_version_and_run_id(cfg, lake, model) -> None:
    feats = features_frame(cfg, lake)
    summary = score(cfg, lake, model)
    pred = read_predictions(cfg, lake, DS)
    assert list(pred.columns) == ["application_id", "applied_at", "score", "model_version", "model_run_id"]
    assert len(pred) == len(feats) == summary["rows"] > 1000
    assert pred["application_id"].tolist() == feats["application_id"].tolist()
    assert pred["applied_at"].equals(feats["applied_at"])
    assert (pred["model_version"] == "7").all() and (pred["model_run_id"] == "run-abc").all()
    assert pred["score"].dtype == "float64" and pred["score"].between(0, 1).all()
    assert summary["batches"] == 1 and summary["model_version"] == "7"
    assert summary["uri"] == lake.uri(f"predictions/{cfg.name}/ds={DS}") and summary["rows_per_second"] > 0
    man = lake.manifest("predictions", cfg.name, DS)
    assert man["content_sha256"] == summary["content_sha256"]
    assert {k: man[k] for k in ("model", "model_version", "model_run_id", "rows", "batch_rows")} == {
        "model": "loans",
        "model_version": "7",
        "model_run_id": "run-abc",
        "rows": len(feats),
        "batch_rows": 65_536,
    }
    features_man = lake.manifest("features", cfg.features.feature_set, DS)
    assert man["features_content_sha256"] == features_man["content_sha256"] == summary["features_content_sha256"]


def test_scores_equal_predict_scores_on_the_in_memory_frame_exactly(cfg, lake, model) -> None:
    score(cfg, lake, model, batch_rows=257)  # many ragged batches
    expected = predict_scores(model, features_frame(cfg, lake), cfg.task)
    np.testing.assert_array_equal(read_predictions(cfg, lake, DS)["score"].to_numpy(), expected)


def test_rerun_gives_identical_bytes_manifest_and_no_extra_files(cfg, lake, model) -> None:
    first = score(cfg, lake, model)
    data, man, keys = predictions_bytes(cfg, lake), lake.manifest("predictions", cfg.name, DS), lake.list("predictions")
    again = score(cfg, lake, model)
    assert predictions_bytes(cfg, lake) == data
    assert lake.manifest("predictions", cfg.name, DS) == man and again["content_sha256"] == first["content_sha256"]
    assert lake.list("predictions") == keys
    assert sorted(k.rsplit("/", 1)[-1] for k in keys) == sorted([man["files"][0]["name"], MANIFEST])
    footer = pq.ParquetFile(io.BytesIO(data)).metadata
    assert set(footer.metadata) == {b"ARROW:schema"}, "nothing but the schema in the footer: no times, no hosts"


def test_a_new_model_version_replaces_the_partition(cfg, lake, model) -> None:
    first = score(cfg, lake, model)
    second = score(cfg, lake, model, model_version="8", run_id="run-def")
    assert second["content_sha256"] != first["content_sha256"]
    assert len([k for k in lake.list("predictions") if "/part-" in k]) == 1, "the old file is removed"
    pred = read_predictions(cfg, lake, DS)
    assert set(pred["model_version"]) == {"8"} and set(pred["model_run_id"]) == {"run-def"}


def test_batch_size_changes_neither_bytes_nor_row_groups(cfg, lake, model, monkeypatch) -> None:
    """Row groups are cut at ROW_GROUP_ROWS whatever the batches were, each from one contiguous chunk.

    Written batch by batch, a ParquetWriter makes one row group per batch, so the layout (and the bytes)
    would follow batch_rows; buffering to fixed row groups makes the file a function of the rows alone.
    """
    monkeypatch.setattr(batch, "ROW_GROUP_ROWS", 500)
    one = score(cfg, lake, model)
    one_bytes = predictions_bytes(cfg, lake)
    many = score(cfg, lake, model, batch_rows=333)
    assert one["batches"] == 1 and many["batches"] == math.ceil(many["rows"] / 333) > 3
    assert predictions_bytes(cfg, lake) == one_bytes and many["content_sha256"] == one["content_sha256"]
    footer = pq.ParquetFile(io.BytesIO(one_bytes)).metadata
    assert footer.num_row_groups == math.ceil(one["rows"] / 500)
    assert [footer.row_group(i).num_rows for i in range(footer.num_row_groups - 1)] == [500] * (
        footer.num_row_groups - 1
    )


def test_workers_split_batches_without_changing_a_byte(cfg, lake, model) -> None:
    """Each batch is cut into per-worker slices scored single-threaded; the joined scores are the same."""
    from threadpoolctl import threadpool_info

    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    one = score(cfg, lake, model, batch_rows=700, workers=1)
    one_bytes = predictions_bytes(cfg, lake)
    for workers in (2, 3):
        many = score(cfg, lake, model, batch_rows=700, workers=workers)
        assert many["workers"] == workers and many["batches"] == one["batches"]
        assert predictions_bytes(cfg, lake) == one_bytes
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()] == before, "thread limits restored"
    np.testing.assert_array_equal(
        read_predictions(cfg, lake, DS)["score"].to_numpy(), predict_scores(model, features_frame(cfg, lake), cfg.task)
    )


class _FailingModel:
    feature_names_in_ = np.array(["age", "credit_score"], dtype=object)
    classes_ = np.array([0, 1])

    def predict_proba(self, x):
        raise RuntimeError("model broke on purpose")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_model_failure_propagates_and_publishes_nothing(cfg, lake, workers) -> None:
    with pytest.raises(RuntimeError, match="model broke on purpose"):
        score(cfg, lake, _FailingModel(), workers=workers)
    assert lake.manifest("predictions", cfg.name, DS) is None and lake.list("predictions") == []


def test_progress_is_logged_every_n_batches(cfg, lake, model, monkeypatch, caplog) -> None:
    monkeypatch.setattr(batch, "LOG_EVERY_BATCHES", 2)
    with caplog.at_level(logging.INFO, logger="sluice.serving.batch"):
        summary = score(cfg, lake, model, batch_rows=200)
    progress = [r for r in caplog.records if r.getMessage().startswith("scoring loans ds=2025-01-08")]
    assert len(progress) == summary["batches"] // 2
    assert any(r.getMessage().startswith("published predictions/loans/ds=2025-01-08") for r in caplog.records)


def test_a_corrupt_feature_file_is_named_and_nothing_is_published(cfg, lake, model) -> None:
    man = lake.manifest("features", cfg.features.feature_set, DS)
    name = man["files"][0]["name"]
    lake.storage.write_bytes(f"features/{cfg.features.feature_set}/ds={DS}/{name}", b"PAR1 not the published bytes")
    with pytest.raises(ValueError, match=f"{name}: sha256 does not match the manifest"):
        score(cfg, lake, model)
    assert lake.manifest("predictions", cfg.name, DS) is None


def test_a_published_file_that_is_not_parquet_is_named(cfg, tmp_path, model) -> None:
    lake = Lake(LocalStorage(tmp_path / "other"))
    man = lake.publish("features", cfg.features.feature_set, DS, {".parquet": b"not parquet at all"}, {})
    with pytest.raises(ValueError, match=f"{man['files'][0]['name']}: not a readable parquet file"):
        score(cfg, lake, model)


def test_a_missing_partition_says_where_and_what_to_run(cfg, tmp_path, model) -> None:
    lake = Lake(LocalStorage(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as err:
        score(cfg, lake, model)
    msg = str(err.value)
    assert lake.root in msg and f"features/loans_v1/ds={DS}" in msg and "run the features DAG loans_features" in msg
    with pytest.raises(FileNotFoundError, match="no published predictions"):
        read_predictions(cfg, lake, DS)


def test_missing_feature_columns_are_named(cfg, tmp_path, model) -> None:
    lake = Lake(LocalStorage(tmp_path / "narrow"))
    feats = build_features(loans.generate_events(DS, seed=7, rows_per_day=200), cfg).drop(
        columns=["credit_score", "region"]
    )
    lake.publish("features", cfg.features.feature_set, DS, {".parquet": to_parquet_bytes(feats)}, {})
    with pytest.raises(ValueError, match=r"lacks columns \['credit_score', 'region'\]"):
        score(cfg, lake, model)


def test_a_partition_without_the_timestamp_column_is_scored_without_it(cfg, tmp_path, model) -> None:
    lake = Lake(LocalStorage(tmp_path / "no_ts"))
    feats = build_features(loans.generate_events(DS, seed=7, rows_per_day=200), cfg).drop(columns=["applied_at"])
    meta = manifest_meta(feats, cfg, {})
    lake.publish("features", cfg.features.feature_set, DS, {".parquet": to_parquet_bytes(feats)}, meta)
    score(cfg, lake, model)
    pred = read_predictions(cfg, lake, DS)
    assert list(pred.columns) == ["application_id", "score", "model_version", "model_run_id"]
    np.testing.assert_array_equal(pred["score"].to_numpy(), predict_scores(model, feats, cfg.task))


def test_batch_rows_and_workers_must_be_positive(cfg, lake, model) -> None:
    with pytest.raises(ValueError, match="batch_rows=0"):
        score(cfg, lake, model, batch_rows=0)
    with pytest.raises(ValueError, match="workers=0"):
        score(cfg, lake, model, workers=0)
    assert 1 <= batch.default_workers() <= batch.MAX_DEFAULT_WORKERS


def test_categories_the_model_never_saw_are_counted_in_the_manifest(cfg, lake, tmp_path, model) -> None:
    assert score(cfg, lake, model)["unknown_categories"] == {}  # the generated day holds only known values
    feats = features_frame(cfg, lake)
    feats.loc[feats.index[:7], "region"] = "atlantis"
    feats.loc[feats.index[3:5], "channel"] = "carrier pigeon"
    feats.loc[feats.index[5:9], "purpose"] = None  # missing: imputed, never unknown
    odd = Lake(LocalStorage(tmp_path / "odd"))
    meta = manifest_meta(feats, cfg, {})
    odd.publish("features", cfg.features.feature_set, DS, {".parquet": to_parquet_bytes(feats)}, meta)
    summary = score(cfg, odd, model, batch_rows=4, workers=2)  # counted across batches
    man = odd.manifest("predictions", cfg.name, DS)
    assert man["unknown_categories"] == summary["unknown_categories"] == {"channel": 2, "region": 7}
