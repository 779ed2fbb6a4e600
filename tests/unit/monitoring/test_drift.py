"""Drift against the reference profile: the statistics, streaming, the per-interval verdict and the decision."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from scipy import stats

from sluice.config import MODELS_DIR, ConfigError, MonitoringConfig, get_model_config, load_model_config
from sluice.monitoring.drift import (
    DriftAccumulator,
    adjust_pvalues,
    checked_features,
    chi2_homogeneity,
    drift_from_parquet,
    feature_rows,
    feature_weights,
    infer_columns,
    profile_frame,
    psi,
    read_profile,
    welch_test,
)
from sluice.monitoring.policy import decide
from sluice.monitoring.report import render_drift_html
from sluice.training.profile import OTHER, bin_proportions, numeric_profile

pytestmark = pytest.mark.unit

CATS = np.array(["a", "b", "c", "d", "e"], dtype=object)
SHARES = np.array([0.4, 0.25, 0.2, 0.1, 0.05])


def frame(rows: int, seed: int, shift_sd: float = 0.0, cat_shares=SHARES, new_share: float = 0.0) -> pd.DataFrame:
    """x ~ N(10, 2) (shifted by ``shift_sd`` sd), y ~ Exp(3), z ~ N(0, 1); c and k categorical."""
    rng = np.random.default_rng(seed)
    c = CATS[rng.choice(len(CATS), size=rows, p=cat_shares)]
    if new_share:
        c[rng.random(rows) < new_share] = "NEW"
    return pd.DataFrame(
        {
            "x": rng.normal(10.0, 2.0, rows) + shift_sd * 2.0,
            "y": rng.exponential(3.0, rows),
            "z": rng.normal(0.0, 1.0, rows),
            "c": pd.array(c, dtype="str"),
            "k": pd.array(CATS[rng.choice(5, size=rows, p=SHARES)], dtype="str"),
        }
    )


NUM, CAT = ["x", "y", "z"], ["c", "k"]


@pytest.fixture(scope="module")
def profile() -> dict:
    return profile_frame(frame(50_000, 1), NUM, CAT, scores=np.random.default_rng(2).beta(2, 8, 50_000))


def assert_same(a, b, path: str = "") -> None:
    """Equal results up to floating-point summation order (chunks add up in a different order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def check(profile: dict, current: pd.DataFrame, scores=None, settings=None, importances=None) -> dict:
    return DriftAccumulator(profile, NUM, CAT).update(current, scores).result(settings, importances)


# ---- statistics --------------------------------------------------------------------------------------------


def test_psi_is_zero_on_equal_shares_and_matches_the_formula() -> None:
    p = np.array([0.25, 0.25, 0.5])
    assert psi(p, p) == 0.0
    q = np.array([0.2, 0.3, 0.5])
    assert psi(p, q) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert np.isfinite(psi([1.0, 0.0], [0.0, 1.0]))  # empty cells are floored, not infinite


def test_chi2_matches_scipy_contingency() -> None:
    a, b = np.array([120, 80, 50, 0]), np.array([30, 40, 10, 0])
    stat, df, p = chi2_homogeneity(a, b)
    ref = stats.chi2_contingency(np.vstack([a[:3], b[:3]]), correction=False)
    assert stat == pytest.approx(ref.statistic) and df == ref.dof and p == pytest.approx(ref.pvalue)
    assert chi2_homogeneity([5, 0], [7, 0]) == (0.0, 0, 1.0)  # one non-empty cell: no evidence
    assert chi2_homogeneity([5, 3], [0, 0]) == (0.0, 0, 1.0)


def test_welch_matches_scipy_from_summary_statistics() -> None:
    t, p = welch_test(10.0, 2.0, 5000, 10.3, 2.5, 800)
    ref = stats.ttest_ind_from_stats(10.3, 2.5, 800, 10.0, 2.0, 5000, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert welch_test(1.0, 0.0, 10, 1.0, 0.0, 10) == (0.0, 1.0)
    assert welch_test(1.0, 0.0, 10, 2.0, 0.0, 10)[1] == 0.0
    assert welch_test(1.0, 1.0, 1, 2.0, 1.0, 10) == (0.0, 1.0)


def test_holm_and_bh_adjustments() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1, made monotone
    assert adjust_pvalues(p, "holm").tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4, made monotone from the top
    assert adjust_pvalues(p, "bh").tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues([], "holm").tolist() == []
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues(p, "bonferonni")


def test_importances_are_clipped_and_normalised_equal_without() -> None:
    w, how = feature_weights(["a", "b", "c"], {"a": 3.0, "b": -1.0, "zz": 5.0})
    assert how == "importance" and w == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert feature_weights(["a", "b"], None) == ({"a": 0.5, "b": 0.5}, "equal")
    assert feature_weights(["a", "b"], {"a": -0.1, "b": 0.0}) == ({"a": 0.5, "b": 0.5}, "equal")
    with pytest.raises(ValueError, match="importance of 'a'"):
        feature_weights(["a"], {"a": "high"})


# ---- streaming ---------------------------------------------------------------------------------------------


def test_chunks_give_the_result_of_one_pass_and_bin_like_the_profile(profile) -> None:
    cur = frame(20_000, 3, shift_sd=0.1)
    cur.loc[::97, "x"] = np.nan
    cur.loc[::89, "c"] = None
    cur.loc[5, "y"] = np.inf
    whole = check(profile, cur)
    acc = DriftAccumulator(profile, NUM, CAT)
    for start in range(0, len(cur), 1234):
        acc.update(cur.iloc[start : start + 1234])
    assert_same(acc.result(), whole)
    x = whole["features"]["x"]
    assert x["distribution"]["current"] == pytest.approx(bin_proportions(cur["x"], profile["features"]["x"]))
    assert x["mean"] == pytest.approx(cur["x"].mean()) and x["std"] == pytest.approx(cur["x"].std())
    assert x["null_share"] == pytest.approx(cur["x"].isna().mean())
    assert whole["features"]["y"]["mean"] == pytest.approx(cur["y"].replace(np.inf, np.nan).mean())
    assert whole["features"]["c"]["n"] == int(cur["c"].notna().sum())


def test_parquet_stream_arrow_input_and_frame_agree(profile, tmp_path: Path) -> None:
    cur = frame(10_000, 4, shift_sd=0.4)
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path, index=False, row_group_size=3000)
    from_frame = check(profile, cur)
    from_file = drift_from_parquet(profile, path, numeric=NUM, categorical=CAT, batch_rows=777)
    buf = io.BytesIO(path.read_bytes())
    from_handle = drift_from_parquet(profile, buf, numeric=NUM, categorical=CAT)
    from_arrow = DriftAccumulator(profile, NUM, CAT).update(pa.Table.from_pandas(cur)).result()
    for other in (from_file, from_handle, from_arrow):
        assert_same(other, from_frame)


def test_parquet_scores_column_and_errors_name_the_file(profile, tmp_path: Path) -> None:
    cur = frame(3000, 5).assign(score=np.random.default_rng(6).beta(2, 8, 3000))
    path = tmp_path / "scored.parquet"
    cur.to_parquet(path, index=False)
    r = drift_from_parquet(profile, path, numeric=NUM, categorical=CAT, score_column="score")
    assert r["prediction"]["n"] == 3000 and not r["by_prediction"]
    with pytest.raises(ValueError, match=r"scored\.parquet: columns \['missing'\] are not in the file"):
        drift_from_parquet(profile, path, numeric=NUM, categorical=CAT, score_column="missing")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet: cannot read as parquet"):
        drift_from_parquet(profile, bad)


def test_unseen_values_are_tallied_in_bounded_memory(profile) -> None:
    acc = DriftAccumulator(profile, ["x"], ["c"])
    for i in range(5):
        acc.update(pd.DataFrame({"x": np.zeros(1000), "c": [f"id{i}-{j}" for j in range(1000)]}))
    assert len(acc.categorical["c"].unseen) <= 1000
    r = acc.result()
    assert r["features"]["c"]["unseen_share"] == 1.0 and len(r["features"]["c"]["unseen_examples"]) == 5


def test_errors_name_what_is_wrong(profile) -> None:
    with pytest.raises(ValueError, match=r"'nope' is not in the profile"):
        DriftAccumulator(profile, ["x", "nope"], [])
    with pytest.raises(ValueError, match=r"'c' is categorical in the profile, not numeric"):
        DriftAccumulator(profile, ["c"], [])
    acc = DriftAccumulator(profile, NUM, CAT)
    with pytest.raises(ValueError, match=r"lacks profiled columns \['k'\]"):
        acc.update(frame(10, 1).drop(columns="k"))
    with pytest.raises(ValueError, match="3 scores for a chunk of 10 rows"):
        acc.update(frame(10, 1), scores=[0.1, 0.2, 0.3])
    assert acc.rows == 0 and acc.numeric["x"].n == 0  # a rejected chunk is not half counted
    no_pred = {**profile, "prediction": None}
    with pytest.raises(ValueError, match="no 'prediction' entry"):
        DriftAccumulator(no_pred, NUM, CAT).update(frame(10, 1), scores=np.zeros(10))
    with pytest.raises(ValueError, match="'features' mapping"):
        DriftAccumulator({"meta": {}})


# ---- the verdict -------------------------------------------------------------------------------------------


def test_stationary_data_is_quiet_and_the_result_is_strict_json(profile) -> None:
    r = check(profile, frame(2000, 7), scores=np.random.default_rng(8).beta(2, 8, 2000))
    assert not r["drift"] and r["drifted_features"] == [] and r["reason"].startswith("no drift")
    text = json.dumps(r, allow_nan=False)
    assert json.loads(text) == r
    assert set(r["features"]) == {*NUM, *CAT} and r["prediction"]["kind"] == "numeric"
    assert r["settings"]["alpha"] == 0.01 and r["weighting"] == "equal"
    rows = feature_rows(r)
    assert [row["feature"] for row in rows] == [*NUM, *CAT, "prediction"]
    assert set(rows[0]) == {
        "feature",
        "kind",
        "psi",
        "statistic",
        "p_adjusted",
        "effect",
        "unseen_share",
        "drifted",
        "reason",
    }


def test_point_three_sd_is_caught_on_daily_volume_where_psi_alone_misses(profile) -> None:
    r = check(profile, frame(2000, 9, shift_sd=0.3))
    x = r["features"]["x"]
    assert r["drift"] and r["drifted_features"] == ["x"] and x["criteria"] == ["mean_shift"]
    assert 0.2 < x["effect"] < 0.4 and x["p_adjusted"] < 1e-10
    assert x["psi"] < 0.1  # "PSI >= 0.1" alone would miss it (about 0.086 for a normal)
    assert x["reason"].startswith("x: mean shifted +0.") and "PSI 0.0" in x["reason"]
    assert "x: mean shifted" in r["reason"]


def test_trivial_shift_on_a_million_rows_stays_quiet(profile) -> None:
    rng = np.random.default_rng(10)
    big = pd.DataFrame({"x": rng.normal(10.0 + 0.05 * 2.0, 2.0, 1_000_000)})
    r = DriftAccumulator(profile, ["x"], []).update(big).result()
    x = r["features"]["x"]
    assert x["p_adjusted"] < 1e-20  # "significant" ...
    assert not x["drifted"] and not r["drift"]  # ... and trivial
    assert "significant but below the 0.2 sd floor" in x["reason"]


def test_a_new_category_on_ten_percent_is_caught_even_in_an_unimportant_column(profile) -> None:
    r = check(profile, frame(2000, 11, new_share=0.10), importances={"x": 1.0, "c": 0.0})
    c = r["features"]["c"]
    assert c["drifted"] and "unseen" in c["criteria"] and c["unseen_share"] == pytest.approx(0.10, abs=0.02)
    assert c["unseen_examples"][0][0] == "NEW" and "unseen" in c["reason"] and "'NEW'" in c["reason"]
    assert c["largest_change"]["category"] == OTHER
    assert r["drift"] and r["by_unseen"] == ["c"] and not r["by_features"]
    assert "never saw" in r["reason"]


def test_a_category_share_moving_ten_points_is_caught(profile) -> None:
    moved = SHARES + np.array([-0.1, 0.1, 0, 0, 0])
    r = check(profile, frame(2000, 12, cat_shares=moved))
    c = r["features"]["c"]
    assert r["drift"] and c["drifted"] and c["criteria"] == ["share_shift"]
    assert c["effect"] == pytest.approx(0.10, abs=0.03) and c["largest_change"]["category"] in ("a", "b")


def test_a_shape_change_with_the_same_mean_is_caught_by_psi(profile) -> None:
    cur = frame(5000, 13)
    cur["z"] = np.random.default_rng(14).normal(0.0, 2.5, 5000)  # same mean, 2.5x the spread
    z = check(profile, cur)["features"]["z"]
    assert z["drifted"] and z["criteria"] == ["psi"] and abs(z["effect"]) < 0.2


def test_importance_decides_whether_a_drifted_feature_matters(profile) -> None:
    cur = frame(2000, 15, shift_sd=0.5)
    r = check(profile, cur, importances={"x": 0.001, "y": 0.5, "z": 0.5, "c": 0.3, "k": -0.2})
    assert r["features"]["x"]["drifted"] and not r["drift"] and r["weighting"] == "importance"
    assert r["reason"].startswith("no drift: drifted features carry only 0.1% of the importance")
    r = check(profile, cur, importances={"x": 0.05, "y": 0.5, "z": 0.45})
    assert r["drift"] and r["drifted_weight"] == pytest.approx(0.05)
    r = check(profile, cur, settings=MonitoringConfig(min_drifted_weight=0.5), importances={"x": 0.2, "y": 0.8})
    assert not r["drift"]


def test_the_score_distribution_is_checked_too(profile) -> None:
    scores = np.random.default_rng(16).beta(2, 8, 3000) + 0.08
    r = check(profile, frame(3000, 17), scores=scores)
    assert r["drift"] and r["by_prediction"] and r["drifted_features"] == []
    assert r["prediction"]["drifted"] and r["reason"].startswith("drift: score distribution drifted")
    assert r["reasons"] == [r["prediction"]["reason"]]


def test_holm_is_stricter_than_bh(profile) -> None:
    cur = frame(400, 18, shift_sd=0.3)
    holm = check(profile, cur, settings=MonitoringConfig(correction="holm"))
    bh = check(profile, cur, settings=MonitoringConfig(correction="bh"))
    for name in (*NUM, *CAT):
        assert bh["features"][name]["p_adjusted"] <= holm["features"][name]["p_adjusted"] + 1e-15


def test_an_all_null_column_is_reported_not_checked(profile) -> None:
    cur = frame(500, 19)
    cur["x"] = np.nan
    cur["c"] = pd.array([None] * 500, dtype="str")
    r = check(profile, cur)
    assert r["features"]["x"]["null_share"] == 1.0 and not r["features"]["x"]["drifted"]
    assert "no non-null values" in r["features"]["x"]["reason"] and r["features"]["c"]["psi"] is None
    json.dumps(r, allow_nan=False)


def test_false_alarms_over_fifty_stationary_intervals(profile) -> None:
    results = [check(profile, frame(2000, 100 + i)) for i in range(50)]
    decisions = [decide(results[: i + 1])["drift"] for i in range(len(results))]
    assert sum(decisions) <= 1


def test_profiles_of_the_loans_features_work_unchanged() -> None:
    """A profile made by training's ``reference_profile``, every feature checked (the day of week included)."""
    from sluice.datagen import loans
    from sluice.features.pipeline import build_features
    from sluice.training.profile import reference_profile

    cfg = get_model_config("loans")
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(7)]
    ref = pd.concat([build_features(loans.generate_events(d, seed=3, rows_per_day=1500), cfg) for d in days])
    prof = reference_profile(ref, cfg, None)
    day = dt.date(2025, 1, 9)
    imp = {c: 1.0 for c in (*cfg.features.numeric, *cfg.features.categorical)} | {"applied_dayofweek": -0.01}

    def run(scenario=None) -> dict:
        cur = build_features(loans.generate_events(day, seed=3, rows_per_day=1500, scenario=scenario), cfg)
        acc = DriftAccumulator(prof, cfg.features.numeric, cfg.features.categorical)
        return acc.update(cur).result(cfg.monitoring, imp)

    clean = run()
    assert clean["drifted_features"] == [] and not clean["drift"], clean["reasons"]
    # one value per day: judged among the reference's daily means (0..6), not as 1500 independent rows
    dow = clean["features"]["applied_dayofweek"]
    assert dow["clustered"] and dow["psi"] > 5 and abs(dow["interval_z"]) < 1
    assert not any(clean["features"][c]["clustered"] for c in ("credit_score", "loan_amount", "applied_hour"))
    shift = loans.Scenario(covariate_shifts=(loans.NumericShift(start=day, column="credit_score", shift_sd=0.3),))
    shifted = run(shift)
    assert shifted["drift"] and "credit_score" in shifted["drifted_features"]


# ---- profiles without a config -----------------------------------------------------------------------------


def test_infer_columns_skips_timestamps_and_identifiers() -> None:
    df = frame(100, 20).assign(
        id=np.arange(100), key=[f"k{i}" for i in range(100)], ts=pd.Timestamp("2025-01-01"), flag=True
    )
    numeric, categorical, skipped = infer_columns(df)
    assert numeric == ["x", "y", "z"] and categorical == ["c", "k", "flag"]
    assert set(skipped) == {"id", "key", "ts"} and "identifier" in skipped["id"] and "timestamp" in skipped["ts"]


def test_profile_frame_reuses_the_training_profiles(tmp_path: Path) -> None:
    df = frame(1000, 21)
    prof = profile_frame(df, ["x"], ["c"])
    assert prof["features"]["x"] == numeric_profile(df["x"])
    assert prof["meta"]["config_hash"] is None and prof["prediction"] is None
    with pytest.raises(ValueError, match=r"columns \['nope'\] are not in the frame"):
        profile_frame(df, ["nope"], [])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prof))
    assert read_profile(path) == prof
    path.write_text(json.dumps({"features": {"x": {"kind": "numeric", "edges": ["-inf", "inf"]}}}))
    with pytest.raises(ValueError, match=r"p\.json: profile feature 'x' \(numeric\): missing \['proportions', 'n'\]"):
        read_profile(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"p\.json: not a JSON profile"):
        read_profile(path)


# ---- settings ----------------------------------------------------------------------------------------------


def test_monitoring_defaults_and_existing_configs_stay_valid() -> None:
    cfg = get_model_config("loans")
    m = cfg.monitoring
    assert (m.alpha, m.correction, m.psi_threshold, m.effect_size_floor) == (0.01, "holm", 0.2, 0.2)
    assert (m.share_shift_floor, m.unseen_share_threshold, m.min_drifted_weight) == (0.05, 0.05, 0.05)
    assert (m.persistence.k, m.persistence.n) == (1, 1)
    assert MonitoringConfig().cooldown_days == 3 and m.cooldown_days == 8, "loans outlasts its 7-day label delay"
    assert (m.performance.metric, m.performance.max_drop) == (None, 0.05)
    assert cfg.monitoring_metric == cfg.gate.primary_metric == "roc_auc"


@pytest.mark.parametrize(
    ("section", "needles"),
    [
        ({"persistence": {"k": 3, "n": 2}}, ["monitoring.persistence", "k (3) must not exceed n (2)"]),
        ({"alpha": 1.5}, ["monitoring.alpha", "less than 1"]),
        ({"correction": "bonferroni"}, ["monitoring.correction", "'holm' or 'bh'", "bonferroni"]),
        ({"cooldown_days": -1}, ["monitoring.cooldown_days", "greater than or equal to 0"]),
        ({"performance": {"metric": "rmse"}}, ["monitoring.performance.metric", "'rmse' is for regression"]),
        ({"performance": {"metric": "auroc"}}, ["unknown metric 'auroc'"]),
        ({"psi": 0.2}, ["monitoring.psi", "unknown key", "psi_threshold"]),
        ({"exclude_features": {"credit_scor": "typo"}}, ["monitoring.exclude_features", "['credit_scor']"]),
    ],
)
def test_bad_monitoring_settings_name_file_and_key(tmp_path: Path, section: dict, needles: list[str]) -> None:
    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["monitoring"] = section
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    for needle in [str(path), *needles]:
        assert needle in str(err.value)


def test_a_monitoring_section_loads(tmp_path: Path) -> None:
    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["monitoring"] = {"correction": "bh", "persistence": {"k": 2, "n": 3}, "performance": {"metric": "pr_auc"}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_model_config(path)
    assert cfg.monitoring.correction == "bh" and cfg.monitoring.persistence.n == 3
    assert cfg.monitoring_metric == "pr_auc"


def test_pyarrow_dictionary_batches_count_like_strings(profile) -> None:
    cur = frame(4000, 22, new_share=0.05)
    table = pa.Table.from_pandas(cur)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    buf.seek(0)
    dict_read = pq.read_table(buf, read_dictionary=["c", "k"]).to_pandas()
    assert isinstance(dict_read["c"].dtype, pd.CategoricalDtype)
    assert_same(check(profile, dict_read), check(profile, cur))


def test_calendar_parts_that_cannot_vary_within_an_interval_are_not_checked(tmp_path: Path) -> None:
    loans = get_model_config("loans")
    numeric, categorical, not_checked = checked_features(loans)
    # applied_at is daily: the hour varies within the day and is checked, the day of week cannot and is not
    assert "applied_hour" in numeric and "applied_dayofweek" not in numeric
    assert not_checked == {"applied_dayofweek": "calendar part (dayofweek) of applied_at: one value per daily interval"}
    assert categorical == list(loans.features.categorical)
    flights = checked_features(get_model_config("flights"))
    assert set(flights[2]) == {"dep_month", "dep_dayofweek"} and "hour" in flights[0]

    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["schedule"] = "0 * * * *"  # hourly: now the hour is constant within an interval too
    data["monitoring"] = {"exclude_features": {"region": "re-cut by the sales team every week"}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    numeric, categorical, not_checked = checked_features(load_model_config(path))
    assert {"applied_hour", "applied_dayofweek", "region"} == set(not_checked)
    assert not_checked["region"] == "re-cut by the sales team every week" and "region" not in categorical
    data["schedule"] = "0 0 * * 1-5"  # weekdays: Friday's interval spans the weekend, nothing is constant
    data["monitoring"] = {}
    path.write_text(yaml.safe_dump(data))
    assert checked_features(load_model_config(path))[2] == {}


def test_features_left_out_are_named_in_the_result(profile) -> None:
    acc = DriftAccumulator(profile, ["x"], ["c"], not_checked={"y": "calendar part"}).update(frame(5000, 5))
    r = acc.result(importances={"x": 1.0, "c": 1.0, "y": 2.0})
    assert set(r["features"]) == {"x", "c"} and r["not_checked"] == {"y": "calendar part"}
    # weights are shares of the whole model's importance: leaving y out does not inflate x and c
    assert (r["features"]["x"]["weight"], r["features"]["c"]["weight"]) == (0.25, 0.25)
    page = render_drift_html("t", r, feature_rows(r), {})
    assert "Not checked" in page and "<b>y</b>: calendar part" in page


def test_a_feature_shared_within_the_day_is_judged_among_daily_means_not_as_independent_rows() -> None:
    """Like the weather of a flight: one day's rows share a few readings, so an ordinary day sits in one or two
    reference bins (a huge PSI, p ~ 0 over its rows) while only an extreme day is drift."""
    rng = np.random.default_rng(11)
    days, rows = 40, 900

    def day_frame(level: float, x_shift: float = 0.0) -> pd.DataFrame:
        return pd.DataFrame({"w": level + rng.normal(0, 0.3, rows), "x": rng.normal(10 + 2 * x_shift, 2, rows)})

    levels = rng.normal(50, 8, days)
    ref = pd.concat([day_frame(v) for v in levels], ignore_index=True)
    labels = np.repeat(np.arange(days), rows)
    prof = {
        "features": {c: numeric_profile(ref[c], 10, labels) for c in ("w", "x")},
        "prediction": None,
        "meta": {"rows": len(ref)},
    }
    assert prof["features"]["w"]["between_intervals"]["std_of_means"] == pytest.approx(levels.std(ddof=1), rel=0.01)

    def run(cur: pd.DataFrame) -> dict:
        return DriftAccumulator(prof, ["w", "x"], []).update(cur).result()

    ordinary = run(day_frame(float(levels.mean()) + 8.0))  # one sd of the day-to-day spread
    w = ordinary["features"]["w"]
    assert w["clustered"] and w["psi"] > 1 and not w["drifted"] and not ordinary["drift"], w["reason"]
    assert "interval mean" in w["reason"] and "not independent" in w["reason"]
    storm = run(day_frame(float(levels.mean()) + 6 * 8.0))
    assert storm["features"]["w"]["drifted"] and storm["features"]["w"]["criteria"] == ["interval_mean"]
    assert storm["drift"]
    # independent rows are unaffected: x is not clustered and its 0.3 sd shift is caught as before
    shifted = run(day_frame(float(levels.mean()), x_shift=0.3))
    assert not shifted["features"]["x"]["clustered"] and shifted["features"]["x"]["drifted"]
    assert not shifted["features"]["w"]["drifted"]
