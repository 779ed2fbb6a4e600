"""Shadow evidence in the mails: a deployment refused by its live comparison says why with the day table; the
gate and approval mails show the waiting challenger's live evidence (a new candidate would replace it); every
value escaped; without evidence the mails are as before."""

from __future__ import annotations

import pytest

from sluice.alerts import email as mails
from sluice.evaluation.gate import Decision, GateDecision, RuleResult, Verdict

pytestmark = pytest.mark.unit

EVIL = "<script>alert(1)</script>"
EVIDENCE = {
    "model": "loans",
    "version": "4",
    "role": "challenger",
    "metric": "roc_auc",
    "verdict": "worse",
    "labelled_days": 1,
    "shadow_days": 2,
    "reason": f"v4 is worse than the champion live {EVIL}",
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


def decision(kind: Decision) -> GateDecision:
    verdict = Verdict.FAIL if kind is Decision.FAIL else Verdict.INCONCLUSIVE
    return GateDecision(
        decision=kind,
        rules=(RuleResult("non_inferiority", verdict, -0.02, -0.01, "interval straddles the margin"),),
        has_champion=True,
        notes=(),
        primary_metric="roc_auc",
        candidate_metrics={"roc_auc": 0.6},
        champion_metrics={"roc_auc": 0.62},
        bootstrap=None,
    )


def alerts(shadow):
    return {
        "gate": mails.gate_alert(
            "loans", decision(Decision.FAIL), {}, candidate="run abc", champion="3", shadow=shadow
        ),
        "approval": mails.approval_requested_alert(
            "loans",
            decision(Decision.INCONCLUSIVE),
            candidate="run abc",
            approve_url="http://airflow/x",
            links={},
            deadline="2026-01-01",
            shadow=shadow,
        ),
        "deployment": mails.deployment_alert(
            "loans", "4", mails.SHADOW_STAGE, [EVIDENCE["reason"]], {}, serving="the champion v3", shadow=shadow
        ),
    }


def test_every_mail_with_shadow_evidence_shows_it_escaped() -> None:
    for kind, alert in alerts(EVIDENCE).items():
        assert "ds=2025-01-11: 500 rows, roc_auc shadow 0.6100 vs champion v3 0.7200" in alert.text, kind
        assert "ds=2025-01-12: waiting for labels (labels at ds=2025-01-19)" in alert.text, kind
        assert "<h3>Shadow evidence (challenger v4)</h3>" in alert.html, kind
        assert "<td>0.6100</td><td>0.7200</td><td>v3</td>" in alert.html, kind
        assert EVIL not in alert.html and "&lt;script&gt;" in alert.html, kind
        assert alert.text.index("Shadow evidence") < alert.text.index("What to do next:"), kind
    assert "The challenger v4 waits for deployment and is shadow-scored" in alerts(EVIDENCE)["gate"].text
    refused = alerts(EVIDENCE)["deployment"]
    assert refused.subject == "[sluice] loans: v4 NOT deployed, shadow comparison failed"
    assert "although its offline gate passed" in refused.text


def test_without_evidence_the_mails_hold_no_shadow_section() -> None:
    for kind, alert in alerts(None).items():
        assert "Shadow evidence (" not in alert.text and "<h3>Shadow evidence" not in alert.html, kind
        assert "waits for deployment and is shadow-scored" not in alert.text, kind
