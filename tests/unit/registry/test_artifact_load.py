"""load_model reads a skops model the way mlflow.sklearn does (same file, same trusted types, same refusals)
without importing mlflow: a model server's start no longer pays for it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io
import yaml
from mlflow.exceptions import MlflowException
from skops.io.exceptions import UntrustedTypesFoundException

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.features.pipeline import build_features
from sluice.registry.artifact import ALLOW_DESERIALIZATION, load_model
from sluice.training.model import feature_columns, fit, predict_scores

CFG = get_model_config("loans")
#: Named, so that saving does not load the model in a subprocess to infer them.
PIP = ["scikit-learn", "skops"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    day = dt.date(2025, 1, 2)
    feats = build_features(loans.generate_events(day, seed=5, rows_per_day=500), CFG)
    labels = loans.generate_labels_for(day, seed=5, rows_per_day=500)
    return feats.merge(labels[["application_id", "defaulted"]], on="application_id")


@pytest.fixture(scope="module")
def model(frame):
    return fit(CFG, frame)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory) -> Path:
    """Saved as training logs it: skops, with the types skops flags in our own pipeline trusted."""
    trusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert trusted, "the pipeline has types outside skops' defaults: the refusal tests below need one"
    path = tmp_path_factory.mktemp("model") / "model"
    mlflow.sklearn.save_model(model, str(path), skops_trusted_types=trusted, pip_requirements=PIP)
    return path


def _with_trusted(src: Path, dst: Path, trusted: list[str] | None) -> Path:
    """A copy of ``src`` whose MLmodel lists ``trusted`` (None: no list at all)."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    meta = yaml.safe_load((dst / "MLmodel").read_text())
    if trusted is None:
        meta["flavors"]["sklearn"].pop("skops_trusted_types")
    else:
        meta["flavors"]["sklearn"]["skops_trusted_types"] = trusted
    (dst / "MLmodel").write_text(yaml.safe_dump(meta))
    return dst


def test_loads_the_same_model_without_importing_mlflow(model_dir, frame, tmp_path) -> None:
    rows = frame[feature_columns(CFG)].head(50)
    rows.to_parquet(tmp_path / "rows.parquet")
    code = (
        "import json, sys; import pandas as pd; from pathlib import Path\n"
        "from sluice.registry.artifact import load_model\n"
        "from sluice.training.model import predict_scores\n"
        f"m = load_model(Path({str(model_dir)!r}))\n"
        f"x = pd.read_parquet({str(tmp_path / 'rows.parquet')!r})\n"
        "print(json.dumps({'mlflow': sorted(k for k in sys.modules if k.split('.')[0] == 'mlflow'), "
        f"'scores': predict_scores(m, x, {CFG.task!r}).tolist()}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["mlflow"] == [], f"loading a skops model imported {got['mlflow'][:5]}"
    expected = predict_scores(mlflow.sklearn.load_model(str(model_dir)), rows, CFG.task)
    np.testing.assert_allclose(got["scores"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(predict_scores(load_model(model_dir), rows, CFG.task), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("trusted", [[], None], ids=["empty list", "no list"])
def test_a_type_outside_the_trusted_list_is_refused_as_mlflow_refuses_it(model_dir, tmp_path, trusted) -> None:
    bad = _with_trusted(model_dir, tmp_path / "bad", trusted)
    with pytest.raises(UntrustedTypesFoundException) as ours:
        load_model(bad)
    with pytest.raises(UntrustedTypesFoundException) as theirs:
        mlflow.sklearn.load_model(str(bad))
    assert str(ours.value) == str(theirs.value)
    assert "TreePredictor" in str(ours.value) or "dtype" in str(ours.value)


def test_mlflow_decides_when_its_deserialization_switch_is_set(model_dir, monkeypatch) -> None:
    monkeypatch.setenv(ALLOW_DESERIALIZATION, "false")
    with pytest.raises(MlflowException, match=ALLOW_DESERIALIZATION):
        load_model(model_dir)
    monkeypatch.setenv(ALLOW_DESERIALIZATION, "true")
    assert load_model(model_dir) is not None


def test_a_pickled_model_still_loads_through_mlflow(model, frame, tmp_path) -> None:
    path = tmp_path / "pickled"
    mlflow.sklearn.save_model(model, str(path), serialization_format="cloudpickle", pip_requirements=PIP)
    rows = frame[feature_columns(CFG)].head(5)
    np.testing.assert_array_equal(
        predict_scores(load_model(path), rows, CFG.task), predict_scores(model, rows, CFG.task)
    )
