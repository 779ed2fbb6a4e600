"""The gate report in MLflow names the serving champion when the gate compared none (the training-set suite
failed), as the "not promoted" mail does: a reader of either never sees "no champion yet" while one serves."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sluice.config import get_model_config
from sluice.training import job
from sluice.training.steps import SKIPPED


class RecordingRegistry:
    """The registry as decide() uses it: the champion alias, and a client that records what is logged."""

    def __init__(self, champion: str | None) -> None:
        self.champion = champion
        self.logged: dict[str, Any] = {}
        self.client = SimpleNamespace(
            log_dict=lambda run_id, value, name: self.logged.__setitem__(name, value),
            log_text=lambda run_id, value, name: self.logged.__setitem__(name, value),
            set_tag=lambda run_id, key, value: self.logged.__setitem__(key, value),
        )

    def by_alias(self, model: str, alias: str) -> Any:
        return SimpleNamespace(version=self.champion) if self.champion and alias == "champion" else None


@pytest.mark.parametrize("champion", ["3", None])
def test_the_gate_report_names_the_serving_champion_when_the_suite_failed(champion) -> None:
    registry = RecordingRegistry(champion)
    trained = {"run_id": "0123456789abcdef", "suite_passed": False}
    decision = job.decide(get_model_config("loans"), registry, trained, SKIPPED.to_dict())
    assert decision.decision.value == "FAIL" and not decision.has_champion, "the verdict itself is untouched"
    html = registry.logged["gate_report.html"]
    if champion:
        assert "no champion yet" not in html and "none (first model)" not in html
        assert "vs champion v3 (serving, not compared: the training-set suite failed" in html
    else:
        assert "no champion yet" in html
