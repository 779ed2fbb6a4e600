"""Model configs: valid files load into frozen objects; each kind of mistake names file, key and expectation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from sluice.config import MODELS_DIR, ConfigError, check_imports, load_model_config, load_model_configs

BASE = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())


def write(tmp_path: Path, data: dict, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def mutate(fn) -> dict:
    data = copy.deepcopy(BASE)
    fn(data)
    return data


def test_shipped_configs_load_and_pass_import_checks() -> None:
    configs = load_model_configs()
    assert "loans" in configs
    for name, cfg in configs.items():
        check_imports(cfg)
        assert cfg.name == name


def test_config_is_frozen() -> None:
    cfg = load_model_config(MODELS_DIR / "loans.yaml")
    with pytest.raises(ValidationError):
        cfg.owner = "someone"  # type: ignore[misc]


def test_config_hash_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    a = load_model_config(write(tmp_path, BASE, "a.yaml"))
    b = load_model_config(write(tmp_path, BASE, "b.yaml"))
    c = load_model_config(write(tmp_path, mutate(lambda d: d["training"].update(seed=1)), "c.yaml"))
    assert a.config_hash == b.config_hash != c.config_hash


MISTAKES = [
    ("missing key", lambda d: d.pop("owner"), ["owner", "missing required key"]),
    ("missing nested key", lambda d: d["dataset"].pop("id_column"), ["dataset.id_column", "missing required key"]),
    ("unknown key", lambda d: d.update(ownr="x"), ["ownr", "unknown key", "owner"]),
    ("unknown nested key", lambda d: d["gate"].update(flors={}), ["gate.flors", "unknown key", "floors"]),
    ("wrong type", lambda d: d["training"].update(window_days="four weeks"), ["training.window_days", "integer"]),
    ("bad threshold range", lambda d: d["gate"]["floors"].update(roc_auc=1.5), ["floors.roc_auc", "between 0 and 1"]),
    ("bad margin range", lambda d: d["gate"].update(non_inferiority_margin=-0.1), ["non_inferiority_margin", "0"]),
    ("unknown metric", lambda d: d["gate"].update(metrics=["roc_auc", "auroc"]), ["unknown metric 'auroc'", "roc_auc"]),
    ("metric of other task", lambda d: d["gate"].update(metrics=["roc_auc", "rmse"]), ["'rmse' is for regression"]),
    ("bad schedule", lambda d: d.update(schedule="every day"), ["schedule", "'every day'", "cron"]),
    ("bad format", lambda d: d["dataset"].update(format="xlsx"), ["dataset.format", "'parquet' or 'csv'", "xlsx"]),
    ("bad name", lambda d: d.update(name="Loans Model"), ["name", "Loans Model"]),
    ("bad email", lambda d: d["alerts"].update(emails=["nobody"]), ["alerts.emails.0", "nobody"]),
    ("no recipients", lambda d: d["alerts"].update(emails=[]), ["alerts.emails", "at least one recipient"]),
    ("end before start", lambda d: d.update(end_date="2024-01-01"), ["end_date", "before start_date"]),
]


@pytest.mark.parametrize(("kind", "change", "needles"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_is_reported_with_file_key_and_expectation(tmp_path: Path, kind, change, needles) -> None:
    path = write(tmp_path, mutate(change))
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    for needle in needles:
        assert needle in msg, f"{kind}: {needle!r} not in:\n{msg}"


def test_unknown_estimator_class_is_reported(tmp_path: Path) -> None:
    data = mutate(lambda d: d["training"]["estimator"].update(class_path="sklearn.ensemble.GradientBoostedTrees"))
    path = write(tmp_path, data)
    cfg = load_model_config(path)  # light load (DAG parsing) does not import sklearn
    with pytest.raises(ConfigError, match=r"training\.estimator\.class_path: cannot import 'sklearn\.ensemble\.Gra"):
        check_imports(cfg, str(path))


def test_estimator_must_be_an_estimator_class(tmp_path: Path) -> None:
    cfg = load_model_config(
        write(tmp_path, mutate(lambda d: d["training"]["estimator"].update(class_path="json.dumps")))
    )
    with pytest.raises(ConfigError, match="not an estimator class"):
        check_imports(cfg)


def test_unknown_transform_function_is_reported(tmp_path: Path) -> None:
    data = mutate(lambda d: d["features"]["transforms"][0].update(fn="sluice.features.transforms:nope"))
    with pytest.raises(ConfigError, match=r"features\.transforms\.0\.fn: cannot import"):
        check_imports(load_model_config(write(tmp_path, data)))


def test_duplicate_model_name_across_files(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, BASE, "b.yaml")
    with pytest.raises(ConfigError) as err:
        load_model_configs(tmp_path)
    assert "b.yaml: name: duplicate model name 'loans', already defined in" in str(err.value)
    assert "a.yaml" in str(err.value)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_model_config(bad)


def test_several_mistakes_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, mutate(lambda d: (d.pop("owner"), d.update(schedule="nope"))))
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    assert "owner" in str(err.value) and "schedule" in str(err.value)
