"""The shadow glue of the deployment and batch-inference operators, with a fake task context (see
test_operator_glue.py): a refusal mails the evidence and fails red, a waiting challenger skips with the reason,
the shadow Asset is emitted only when evidence became decisive, and nothing shadows without a challenger."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowSkipException
from test_operator_glue import BASE, PLAN, FakeTI, context

from sluice.airflow.callbacks import AlertedFailure
from sluice.airflow.hooks import AlertHook

EVIL = "<script>alert(1)</script>"

EVIDENCE = {
    "model": "loans",
    "version": "4",
    "role": "challenger",
    "metric": "roc_auc",
    "verdict": "worse",
    "labelled_days": 3,
    "shadow_days": 4,
    "reason": f"roc_auc live over 3 labelled shadow day(s): v4 is worse than the champion live {EVIL}",
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
        {"ds": "2025-01-14", "label_ds": "2025-01-21", "status": "waiting_for_labels"},
    ],
}


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("SLUICE_LAKE", str(root))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    return root


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list[str]]]:
    """The alerts operators send, instead of an SMTP relay."""
    sent: list[tuple[Any, list[str]]] = []
    monkeypatch.setattr(AlertHook, "send", lambda self, alert, to: sent.append((alert, list(to))))
    return sent


def resolve_op(monkeypatch, check: Any) -> Any:
    from sluice.airflow.deployment_operators import ResolveReleaseOperator
    from sluice.deployment import job

    monkeypatch.setattr(job, "resolve", lambda cfg, registry, *, action, version: {**PLAN, "champion": "3"})
    monkeypatch.setattr(job, "shadow_check", check)
    op = ResolveReleaseOperator(task_id="resolve", model="loans")
    op.registry = "registry"
    return op


def test_a_challenger_worse_live_is_refused_with_a_mail_holding_the_evidence(lake_dir: Path, outbox, monkeypatch):
    from sluice.deployment import job

    def refuse(cfg, lake, registry, plan, **kw):
        raise job.ShadowRefused("loans", "4", EVIDENCE["reason"], EVIDENCE)

    op = resolve_op(monkeypatch, refuse)
    with pytest.raises(AlertedFailure, match="loans v4 refused by its shadow comparison"):
        op.execute(context(FakeTI(task_id="resolve"), params={"action": "deploy", "version": None}))
    ((alert, to),) = outbox
    assert to == ["risk-ml-oncall@example.com"]
    assert alert.subject == "[sluice] loans: v4 NOT deployed, shadow comparison failed"
    assert "Still serving: the champion v3." in alert.text
    assert "ds=2025-01-11: 500 rows, roc_auc shadow 0.6100 vs champion v3 0.7200" in alert.text
    assert f"{BASE}/sluice/lake/reports/loans/shadow/v4/comparison.json" in alert.text
    assert EVIL not in alert.html and "&lt;script&gt;" in alert.html


def test_a_challenger_short_of_labelled_shadow_days_waits(lake_dir: Path, outbox, monkeypatch) -> None:
    def wait(cfg, lake, registry, plan, **kw):
        return {**plan, "deploy": False, "why": "v4 has 2 of the 3 labelled shadow day(s); it waits"}

    op = resolve_op(monkeypatch, wait)
    with pytest.raises(AirflowSkipException, match="2 of the 3 labelled shadow day"):
        op.execute(context(FakeTI(task_id="resolve"), params={}))
    assert outbox == []


def test_the_shadow_asset_is_emitted_only_when_evidence_became_decisive() -> None:
    from sluice.airflow.deployment_operators import ShadowReadyOperator

    asset = Asset("sluice://shadow/loans")
    op = ShadowReadyOperator(task_id="shadow_ready", model="loans", shadow_task="shadow_score", outlets=[asset])
    quiet = FakeTI({("shadow_score", "return_value"): {"signal": []}}, task_id="shadow_ready")
    with pytest.raises(AirflowSkipException):
        op.execute(context(quiet))
    events = {asset: SimpleNamespace(extra=None)}
    ready = FakeTI({("shadow_score", "return_value"): {"signal": ["4"]}}, task_id="shadow_ready")
    assert op.execute(context(ready, outlet_events=events)) == {"model": "loans", "versions": ["4"]}
    assert events[asset].extra == {"model": "loans", "versions": ["4"]}


def test_nothing_shadows_without_a_waiting_challenger(lake_dir: Path, monkeypatch) -> None:
    from sluice.airflow.deployment_operators import ShadowScoreOperator
    from sluice.deployment import shadow

    monkeypatch.setattr(shadow, "roles_now", lambda cfg, registry: ("3", {}))
    op = ShadowScoreOperator(task_id="shadow_score", model="loans", ds="2025-01-24")
    op.registry = "registry"
    with pytest.raises(AirflowSkipException, match="champion v3, no waiting challenger"):
        op.execute(context(FakeTI(task_id="shadow_score")))
