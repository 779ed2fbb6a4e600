"""Every alert mail, sent through the real SMTP sink and read back: Date and Message-ID headers, a "what to do
next" section, and every data value escaped in the HTML part."""

from __future__ import annotations

import smtplib

import pytest

from sluice.alerts import email as mails
from sluice.alerts.mailsink import read_outbox
from sluice.evaluation.gate import Decision, GateDecision, RuleResult, Verdict

pytestmark = pytest.mark.integration

EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def decision(kind: Decision) -> GateDecision:
    verdict = Verdict.FAIL if kind is Decision.FAIL else Verdict.INCONCLUSIVE
    rules = (
        RuleResult("floor:roc_auc", Verdict.FAIL, 0.6, 0.7, f"0.60 < 0.70 {EVIL}"),
        RuleResult("non_inferiority", verdict, -0.02, -0.01, f"interval straddles {EVIL}"),
    )
    return GateDecision(
        decision=kind,
        rules=rules if kind is Decision.FAIL else rules[1:],
        has_champion=True,
        notes=(),
        primary_metric="roc_auc",
        candidate_metrics={"roc_auc": 0.6},
        champion_metrics={"roc_auc": 0.62},
        bootstrap={
            "metric": "roc_auc",
            "point_difference": -0.02,
            "lower": -0.05,
            "upper": 0.01,
            "confidence": 0.95,
            "n_samples": 1000,
            "n_rows": 900,
        },
    )


def every_alert() -> dict[str, tuple[mails.Alert, str]]:
    """kind -> (alert, a phrase its next steps must contain)."""
    links = {"Airflow task log": f"http://airflow/log?x={EVIL}"}
    failures = [
        {
            "expectation": "expect_column_values_to_be_in_set",
            "column": "purpose",
            "unexpected_count": 3,
            "partial_unexpected_list": [EVIL],
        }
    ]
    record = {"approved": False, "outcome": "rejected", "by": f"airflow:{EVIL}", "why": EVIL, "responded_at": "t"}
    return {
        "quarantine": (
            mails.data_quality_alert("loans", "loans", "2025-01-03", failures, 100, links),
            "clear the task 'validate' (with its downstream tasks) of the loans_features run for ds=2025-01-03",
        ),
        "gate FAIL": (
            mails.gate_alert("loans", decision(Decision.FAIL), links, candidate=f"run {EVIL}"),
            "floor:roc_auc: the candidate must reach the floor",
        ),
        "approval": (
            mails.approval_requested_alert(
                "loans",
                decision(Decision.INCONCLUSIVE),
                candidate="run abc",
                links=links,
                deadline="2026-01-01",
                approve_url="http://airflow/dags/loans_training/runs/r/tasks/approve/required_actions",
            ),
            "Open http://airflow/dags/loans_training/runs/r/tasks/approve/required_actions",
        ),
        "decided": (mails.approval_decided_alert("loans", "run abc", record, links), "models history loans"),
        "deployment": (
            mails.deployment_alert(
                "loans",
                "7",
                "infra validation",
                [EVIL],
                links,
                serving="v6",
                checks=[{"check": EVIL, "passed": False, "observed": 1, "limit": 0}],
            ),
            "trigger loans_deployment with version=<n>",
        ),
        "retrain": (
            mails.retrain_alert(
                "loans", "drift", "2025-01-03", {"reasons": [EVIL]}, {"reason": EVIL}, "loans_training", links
            ),
            "its gate decides",
        ),
    }


def test_every_mail_is_dated_identified_actionable_and_escaped(smtp_sink) -> None:
    import json
    import os

    port = json.loads(os.environ["AIRFLOW_CONN_SMTP_DEFAULT"])["port"]
    alerts = every_alert()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for alert, _ in alerts.values():
            smtp.send_message(alert.message(["oncall@example.com"], "sluice@localhost"))
    received = read_outbox(smtp_sink)
    assert len(received) == len(alerts)
    ids = set()
    for (kind, (alert, step)), mail in zip(alerts.items(), received, strict=True):
        assert mail["Subject"] == alert.subject
        assert mail["Date"] and mail["Message-ID"].endswith("@localhost>"), kind
        ids.add(mail["Message-ID"])
        text, page = mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()
        assert "What to do next:" in text and step in text, (kind, text)
        assert "<h3>What to do next</h3>" in page, kind
        assert "<script>" not in page and "<img" not in page, (kind, page)
        assert "&lt;script&gt;" in page, kind
    assert len(ids) == len(alerts), "every mail has its own Message-ID"
