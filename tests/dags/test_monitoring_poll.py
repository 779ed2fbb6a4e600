"""The drift sensor polls for the interval's predictions as often as the model config says
(``monitoring.poll_interval_s``): a model that scores early can be judged seconds after it, and the stack
tests need not wait a minute for a deferred sensor."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import yaml

from sluice.config import MODELS_DIR, ConfigError, load_model_config

REPO = Path(__file__).resolve().parents[2]


def _loans(tmp_path: Path, **monitoring: object) -> Path:
    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data.setdefault("monitoring", {}).update(monitoring)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "loans.yaml").write_text(yaml.safe_dump(data))
    return folder


def test_the_monitoring_dag_polls_as_configured(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLUICE_MODELS_DIR", str(_loans(tmp_path, poll_interval_s=7)))
    dag = runpy.run_path(str(REPO / "dags" / "monitoring.py"))["loans_monitoring"]
    assert dag.get_task("drift").poll_interval == 7
    assert dag.get_task("wait_for_labels").poll_interval == 600, "labels come days later: their poll stays"


def test_the_shipped_configs_poll_every_minute(monkeypatch) -> None:
    monkeypatch.delenv("SLUICE_MODELS_DIR", raising=False)
    dag = runpy.run_path(str(REPO / "dags" / "monitoring.py"))["loans_monitoring"]
    assert dag.get_task("drift").poll_interval == 60


@pytest.mark.parametrize("value", [0, -5, 3601, "often"])
def test_a_bad_poll_interval_names_the_key(tmp_path, value) -> None:
    path = _loans(tmp_path, poll_interval_s=value) / "loans.yaml"
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    assert "monitoring.poll_interval_s" in str(err.value) and str(path) in str(err.value), err.value
