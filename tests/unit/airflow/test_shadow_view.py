"""The Sluice view's shadow section: each shadow-scored version's live verdict, the day table and what
``deploy.require_shadow_days`` makes of it for the waiting challenger, escaped, read from the lake only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sluice.airflow.ui.view import _Links, _shadow_html
from sluice.config import get_model_config
from sluice.deployment import shadow
from sluice.lake import Lake, LocalStorage

pytestmark = pytest.mark.unit

EVIL = "<script>alert(1)</script>"


def links() -> _Links:
    return _Links(SimpleNamespace(scope={"root_path": "/pluginsv2/sluice"}), None)  # type: ignore[arg-type]


class Registry:
    def __init__(self, challenger: str | None) -> None:
        self.challenger = challenger

    def by_alias(self, model: str, alias: str):
        return SimpleNamespace(version=self.challenger) if alias == "challenger" and self.challenger else None


def evidence(version: str, verdict: str, labelled: int) -> dict:
    return {
        "model": "loans",
        "version": version,
        "role": "challenger",
        "metric": "roc_auc",
        "verdict": verdict,
        "labelled_days": labelled,
        "shadow_days": labelled + 1,
        "reason": f"v{version} live {verdict} {EVIL}",
        "days": [
            {
                "ds": "2025-01-11",
                "label_ds": "2025-01-18",
                "status": "labelled",
                "rows": 500,
                "shadow_metric": 0.61,
                "champion_metric": 0.72,
                "champion_version": "3",
            },
            {"ds": "2025-01-12", "label_ds": "2025-01-19", "status": "waiting_for_labels"},
        ],
    }


def test_the_waiting_challenger_shows_its_live_verdict_and_the_deployment_decision(tmp_path: Path) -> None:
    base = get_model_config("loans")
    cfg = base.model_copy(update={"deploy": base.deploy.model_copy(update={"require_shadow_days": 3})})
    lake = Lake(LocalStorage(tmp_path))
    for version, verdict in (("2", "no_difference"), ("4", "worse")):
        shadow.write_evidence(lake, evidence(version, verdict, 3))
        lake.put_files(f"shadow/loans/v{version}/ds=2025-01-11", {"_manifest.json": b"{}"})
    page = _shadow_html(cfg, lake, Registry("4"), links())
    print(page)
    assert "require_shadow_days: <b>3</b>" in page
    assert page.index("v4 <small>challenger (waiting)</small>") < page.index("v2 <small>shadowed earlier</small>")
    assert '<span class="pill bad">worse</span>' in page and '<span class="pill bad">REFUSE</span>' in page
    assert "<td>0.6100</td><td>0.7200</td><td>v3</td>" in page and "<td>waiting for labels</td>" in page
    assert 'href="/pluginsv2/sluice/lake/reports/loans/shadow/v4/comparison.json"' in page
    assert EVIL not in page and "&lt;script&gt;" in page


def test_no_shadow_yet_says_so(tmp_path: Path) -> None:
    page = _shadow_html(get_model_config("loans"), Lake(LocalStorage(tmp_path)), None, links())
    assert "deploy.shadow: <b>while_waiting</b>" in page and "No version has been shadow-scored" in page
