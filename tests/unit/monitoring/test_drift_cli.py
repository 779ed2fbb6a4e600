"""``python -m sluice drift``: a table or JSON from a parquet or profile reference; errors name the file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sluice.apps.cli import main
from sluice.config import MODELS_DIR
from sluice.monitoring.drift import profile_frame

pytestmark = pytest.mark.unit


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["drift", *argv])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def generic(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "at": pd.Timestamp("2025-01-01") + pd.to_timedelta(np.arange(rows), unit="s"),
            "amount": rng.normal(100.0, 20.0, rows) + shift * 20.0,
            "count": rng.poisson(3, rows),
            "colour": pd.array(rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]), dtype="str"),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"ref": tmp_path / "ref.parquet", "cur": tmp_path / "cur.parquet", "same": tmp_path / "same.parquet"}
    generic(20_000, 1).to_parquet(paths["ref"], index=False)
    generic(3000, 2, shift=0.4).to_parquet(paths["cur"], index=False)
    generic(3000, 3).to_parquet(paths["same"], index=False)
    return paths


def test_parquet_reference_table_and_decision(capsys, files) -> None:
    code, out, _ = run(capsys, "--reference", str(files["ref"]), "--current", str(files["cur"]))
    assert code == 0
    assert "skipped columns: id (identifier (every value distinct)), at (timestamp" in out
    header, *rows = [line for line in out.splitlines() if line.startswith(("feature ", "amount", "count", "colour"))]
    assert header.split()[:3] == ["feature", "kind", "psi"]
    amount = next(r for r in rows if r.startswith("amount"))
    assert " YES " in amount and "mean shifted +0." in amount
    assert "decision: DRIFT" in out and "weights: equal" in out
    code, out, _ = run(capsys, "--reference", str(files["ref"]), "--current", str(files["same"]))
    assert code == 0 and "decision: no drift" in out


def test_profile_reference_json_output_and_importances(capsys, files, tmp_path: Path) -> None:
    prof = profile_frame(pd.read_parquet(files["ref"]), ["amount", "count"], ["colour"])
    prof_path = tmp_path / "reference_profile.json"
    prof_path.write_text(json.dumps(prof))
    imp = tmp_path / "feature_importance.json"
    imp.write_text(json.dumps({"amount": 0.001, "count": 0.5, "colour": 0.5}))
    code, out, _ = run(
        capsys, "--reference", str(prof_path), "--current", str(files["cur"]), "--importance", str(imp), "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["current"] == str(files["cur"]) and result["weighting"] == "importance"
    assert result["drifted_features"] == ["amount"] and not result["drift"]  # amount carries 0.1% of the weight
    assert set(result["features"]) == {"amount", "count", "colour"}


def test_with_a_model_config_uses_its_features_and_training_profile(capsys, tmp_path: Path) -> None:
    from sluice.config import get_model_config
    from sluice.datagen import loans
    from sluice.features.pipeline import build_features

    cfg = get_model_config("loans")
    day = dt.date(2025, 1, 8)
    ref = pd.concat(
        [build_features(loans.generate_events(dt.date(2025, 1, d), seed=1, rows_per_day=1500), cfg) for d in (1, 2)]
    )
    shift = loans.Scenario(covariate_shifts=(loans.NumericShift(start=day, column="interest_rate", shift_sd=0.5),))
    cur = build_features(loans.generate_events(day, seed=1, rows_per_day=1500, scenario=shift), cfg)
    ref.to_parquet(tmp_path / "ref.parquet", index=False)
    cur.to_parquet(tmp_path / "cur.parquet", index=False)
    cfg_path = str(MODELS_DIR / "loans.yaml")
    code, out, _ = run(
        capsys, "--reference", str(tmp_path / "ref.parquet"), "--current", str(tmp_path / "cur.parquet"),
        "--config", cfg_path, "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    # every feature of the config but the day of week, which has one value per daily interval
    assert set(result["features"]) == {*cfg.features.numeric, *cfg.features.categorical} - {"applied_dayofweek"}
    assert list(result["not_checked"]) == ["applied_dayofweek"]
    assert "application_id" not in result["features"] and result["features"]["interest_rate"]["drifted"]


def test_errors_name_the_file_and_the_problem(capsys, files, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    code, _, err = run(capsys, "--reference", str(missing), "--current", str(files["cur"]))
    assert code == 1 and f"{missing}: no such file" in err
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but not really")
    code, _, err = run(capsys, "--reference", str(files["ref"]), "--current", str(bad))
    assert code == 1 and f"{bad}: cannot read as parquet" in err
    code, _, err = run(capsys, "--reference", str(bad), "--current", str(files["cur"]))
    assert code == 1 and f"{bad}: cannot read the reference parquet" in err
    narrow = tmp_path / "narrow.parquet"
    generic(100, 4)[["amount"]].to_parquet(narrow, index=False)
    code, _, err = run(capsys, "--reference", str(files["ref"]), "--current", str(narrow))
    assert code == 1 and f"{narrow}: columns ['count', 'colour'] are not in the file" in err
    imp = tmp_path / "imp.json"
    imp.write_text('{"amount": "high"}')
    code, _, err = run(
        capsys, "--reference", str(files["ref"]), "--current", str(files["cur"]), "--importance", str(imp)
    )
    assert code == 1 and f"{imp}: expected a JSON mapping of feature -> importance (not numbers: ['amount'])" in err
    not_profile = tmp_path / "p.json"
    not_profile.write_text('{"rows": 3}')
    code, _, err = run(capsys, "--reference", str(not_profile), "--current", str(files["cur"]))
    assert code == 1 and f"{not_profile}: not a reference profile" in err
    code, _, err = run(
        capsys,
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["cur"]),
        "--config",
        str(MODELS_DIR / "loans.yaml"),
    )
    assert code == 1 and f"{files['ref']}: columns ['age', " in err and "loans.yaml are not in the file" in err
