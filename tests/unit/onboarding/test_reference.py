"""docs/config-reference.md is generated from the config models: the committed page must be what they give."""

from __future__ import annotations

from pathlib import Path

from sluice.config import ModelConfig
from sluice.onboarding.reference import COMMAND, missing_descriptions, render, type_name

PAGE = Path(__file__).resolve().parents[3] / "docs" / "config-reference.md"


def test_committed_page_is_the_generated_one() -> None:
    committed = PAGE.read_text(encoding="utf-8")
    assert committed == render(), f"docs/config-reference.md is stale: regenerate it with `{COMMAND}`"


def test_every_key_has_a_description() -> None:
    assert missing_descriptions() == []


def test_every_key_is_on_the_page_with_its_default() -> None:
    page = render()
    for key in (
        "training.window_days",
        "monitoring.performance.min_rows",
        "deploy.infra_validation.max_latency_ms_p95",
    ):
        assert f"| `{key}` |" in page
    assert "| `monitoring.performance.min_rows` | int (>= 1) | `500` |" in page
    assert "| `labels.delay_days` | int (>= 0, <= 365) | required |" in page
    # the label layout a producer must follow
    for phrase in ("ds = event day + delay", "_SUCCESS", "join key", "label column"):
        assert phrase in page


def test_type_names_read_like_the_yaml() -> None:
    fields = ModelConfig.model_fields
    assert type_name(fields["task"].annotation) == '"classification" | "regression"'
    assert type_name(fields["end_date"].annotation) == "date or null"
    assert type_name(fields["tags"].annotation) == "list of str"
