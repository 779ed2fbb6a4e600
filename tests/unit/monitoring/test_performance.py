"""Live performance: predictions joined with arrived labels, and decay against the champion's test metric."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sluice.config import MonitoringConfig, get_model_config
from sluice.evaluation.metrics import compute_metrics
from sluice.monitoring.drift import DriftAccumulator, profile_frame
from sluice.monitoring.performance import join_labels, live_metrics, metric_for, performance_check

pytestmark = pytest.mark.unit

ID = "application_id"


def world(rows: int, seed: int, flip_share: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Features, predictions (id, score) and labels (id, defaulted) of a model that ranks well.

    ``flip_share`` of the labels are flipped: the concept changed, the features and scores did not.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(2.0 * x - 1.0)))).astype(np.int64)
    if flip_share:
        flip = rng.random(rows) < flip_share
        y[flip] = 1 - y[flip]
    ids = [f"r{seed}-{i}" for i in range(rows)]
    score = 1 / (1 + np.exp(-(2.0 * x - 1.0)))
    features = pd.DataFrame({"x": x, "g": pd.array(np.where(x > 0, "hi", "lo"), dtype="str")})
    return features, pd.DataFrame({ID: ids, "score": score}), pd.DataFrame({ID: ids, "defaulted": y})


def live(preds: pd.DataFrame, labels: pd.DataFrame, metrics=("roc_auc",)) -> dict:
    return live_metrics(preds, labels, "classification", list(metrics), id_column=ID, label_column="defaulted")


@pytest.fixture(scope="module")
def champion_test() -> dict:
    _, preds, labels = world(20_000, 0)
    return compute_metrics("classification", labels["defaulted"], preds["score"], ["roc_auc", "log_loss"])


def test_join_keeps_labelled_predictions_last_row_per_id() -> None:
    preds = pd.DataFrame({ID: ["a", "b", "c", "a"], "score": [0.1, 0.2, 0.3, 0.9]})
    labels = pd.DataFrame({ID: ["a", "b", "d", "b"], "defaulted": [1, None, 0, 0]})
    joined = join_labels(preds, labels, id_column=ID, label_column="defaulted")
    assert joined.sort_values(ID).to_dict("list") == {ID: ["a", "b"], "score": [0.9, 0.2], "defaulted": [1.0, 0.0]}
    with pytest.raises(ValueError, match=r"labels lack columns \['defaulted'\]"):
        join_labels(preds, labels.rename(columns={"defaulted": "y"}), id_column=ID, label_column="defaulted")
    with pytest.raises(ValueError, match=r"predictions lack columns \['score'\]"):
        join_labels(preds.drop(columns="score"), labels, id_column=ID, label_column="defaulted")


def test_live_metrics_are_compute_metrics_on_the_joined_rows() -> None:
    _, preds, labels = world(3000, 1)
    arrived = labels.iloc[:2000]
    out = live(preds, arrived, ["roc_auc", "log_loss"])
    expected = compute_metrics(
        "classification", arrived["defaulted"], preds["score"].iloc[:2000], ["roc_auc", "log_loss"]
    )
    assert out["metrics"] == pytest.approx(expected)
    assert (out["rows"], out["predictions"], out["labels"], out["unlabelled"]) == (2000, 3000, 2000, 1000)
    assert out["positives"] == int(arrived["defaulted"].sum())
    none = live(preds, labels.iloc[:0])
    assert none["metrics"] == {"roc_auc": None} and none["rows"] == 0
    with pytest.raises(ValueError, match="unknown metric 'auroc'"):
        live(preds, labels, ["auroc"])


def test_a_concept_shift_is_invisible_to_drift_and_caught_by_performance(champion_test) -> None:
    ref_features, ref_preds, _ = world(20_000, 0)
    profile = profile_frame(ref_features, ["x"], ["g"], scores=ref_preds["score"])
    features, preds, labels = world(2000, 2, flip_share=0.25)
    drift = DriftAccumulator(profile).update(features, preds["score"]).result()
    assert not drift["drift"]  # same inputs, same scores
    perf = performance_check(live(preds, labels), champion_test, metric="roc_auc")
    assert perf["decay"] and perf["status"] == "decay" and perf["drop"] > 0.05
    assert perf["reason"].startswith("decay: roc_auc dropped from 0.8")
    json.dumps(perf, allow_nan=False)
    _, preds, labels = world(2000, 3)  # the same concept: no decay
    ok = performance_check(live(preds, labels), champion_test, metric="roc_auc")
    assert not ok["decay"] and ok["status"] == "ok" and ok["reason"].startswith("ok: roc_auc")


def test_too_few_labelled_rows_are_not_judged(champion_test) -> None:
    _, preds, labels = world(300, 4, flip_share=0.4)
    perf = performance_check(live(preds, labels), champion_test, metric="roc_auc")
    assert not perf["decay"] and perf["status"] == "too_few_rows" and "300 labelled rows" in perf["reason"]
    settings = MonitoringConfig(performance={"min_rows": 100})
    assert performance_check(live(preds, labels), champion_test, settings, metric="roc_auc")["decay"]


def test_lower_is_better_metrics_decay_when_they_rise() -> None:
    ref = {"log_loss": 0.40}
    worse = performance_check({"log_loss": 0.47}, ref, metric="log_loss", rows=1000)
    better = performance_check({"log_loss": 0.30}, ref, metric="log_loss", rows=1000)
    assert worse["decay"] and worse["drop"] == pytest.approx(0.07) and "rose from 0.4000" in worse["reason"]
    assert not better["decay"] and better["drop"] == pytest.approx(-0.10) and not better["higher_is_better"]
    edge = performance_check({"roc_auc": 0.75}, {"roc_auc": 0.80}, metric="roc_auc", rows=1000)
    assert not edge["decay"]  # exactly max_drop is not more than it


def test_an_undefined_metric_is_not_a_decay() -> None:
    preds = pd.DataFrame({ID: [f"i{i}" for i in range(600)], "score": np.linspace(0, 1, 600)})
    labels = pd.DataFrame({ID: preds[ID], "defaulted": 0})  # one class: roc_auc undefined
    perf = performance_check(live(preds, labels), {"roc_auc": 0.8}, metric="roc_auc")
    assert perf["live"] is None and perf["status"] == "undefined" and not perf["decay"]
    json.dumps(perf, allow_nan=False)


def test_the_metric_comes_from_the_argument_the_settings_or_the_only_one() -> None:
    cfg = get_model_config("loans")
    assert metric_for(cfg) == "roc_auc"
    settings = MonitoringConfig(performance={"metric": "log_loss"})
    out = performance_check({"log_loss": 0.5, "roc_auc": 0.7}, {"log_loss": 0.4, "roc_auc": 0.8}, settings, rows=900)
    assert out["metric"] == "log_loss"
    assert performance_check({"roc_auc": 0.7}, {"roc_auc": 0.8}, rows=900)["metric"] == "roc_auc"
    with pytest.raises(ValueError, match="which metric"):
        performance_check({"roc_auc": 0.7, "f1": 0.5}, {"roc_auc": 0.8}, rows=900)
    with pytest.raises(ValueError, match="rows="):
        performance_check({"roc_auc": 0.7}, {"roc_auc": 0.8})


def test_one_interval_is_judged_against_what_one_test_interval_scored() -> None:
    """On rows that share a day's conditions the pooled test AUC also ranks the days and sits above a typical
    day's; a typical day must not read as decay."""
    import datetime as dt

    from sluice.training.steps import interval_metric

    cfg = get_model_config("flights")
    rng = np.random.default_rng(4)
    days = pd.date_range("2013-03-01", periods=8, freq="D")
    frames = []
    for day in days:
        level = rng.normal(0, 1.5)  # the day's weather: moves every row's risk, and the day's delay rate
        x = rng.normal(0, 1, 900)
        y = (rng.random(900) < 1 / (1 + np.exp(-(level + 0.6 * x)))).astype(int)
        frames.append(pd.DataFrame({"scheduled_departure": day + pd.to_timedelta(rng.integers(0, 86400, 900), "s"),
                                    "arr_delayed": y, "score": 1 / (1 + np.exp(-(level + 0.6 * x)))}))  # fmt: skip
    test = pd.concat(frames, ignore_index=True).rename(columns={"arr_delayed": cfg.labels.column})
    per_day = interval_metric(cfg, test, test["score"].to_numpy())
    pooled = compute_metrics("classification", test[cfg.labels.column], test["score"], ["roc_auc"])["roc_auc"]
    assert per_day["intervals"] == 8 and sorted(per_day["values"]) == [str(d.date()) for d in days]
    assert pooled - per_day["mean"] > 0.03, (pooled, per_day["mean"])
    typical_day = {"roc_auc": per_day["mean"] - 0.01}
    settings = MonitoringConfig()
    pooled_check = performance_check(typical_day, {"roc_auc": pooled}, settings, metric="roc_auc", rows=900)
    fair = performance_check(
        typical_day, {"roc_auc": pooled}, settings, metric="roc_auc", rows=900, per_interval=per_day
    )
    assert fair["reference_kind"] == "per_interval" and fair["reference"] == pytest.approx(per_day["mean"])
    assert not fair["decay"] and "mean over 8 test intervals" in fair["reason"]
    assert pooled_check["reference_kind"] == "pooled"
    assert pooled_check["decay"], "the pooled reference reads a typical day as decay"
    spread = per_day["std"]
    noisy = {"roc_auc": per_day["mean"] - max(0.06, 2 * spread)}  # over max_drop, within 3 sd of a day's noise
    held = performance_check(noisy, {}, settings, metric="roc_auc", rows=900, per_interval=per_day)
    assert not held["decay"] and "one interval's noise" in held["reason"]
    broken = {"roc_auc": per_day["mean"] - max(0.06, 3.5 * spread)}
    assert performance_check(broken, {}, settings, metric="roc_auc", rows=900, per_interval=per_day)["decay"]
    few = {**per_day, "intervals": 3}
    assert performance_check(typical_day, {"roc_auc": pooled}, settings, metric="roc_auc", rows=900,
                             per_interval=few)["reference_kind"] == "pooled"  # fmt: skip
    assert dt.date.fromisoformat(min(per_day["values"])) == days[0].date()
