"""Alert emails as data: subject, plain text and HTML, built without Airflow so they can be tested alone."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    html: str

    def message(self, to: Sequence[str], sender: str) -> EmailMessage:
        # Long subjects must not be folded before their first word: Python's parser then keeps a leading space.
        msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=200))
        msg["Subject"], msg["From"], msg["To"] = self.subject, sender, ", ".join(to)
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        return msg


def data_quality_alert(
    model: str,
    dataset: str,
    ds: str,
    failures: Sequence[Mapping[str, Any]],
    rows: int | None,
    links: Mapping[str, str],
) -> Alert:
    """The mail sent when a landing partition is quarantined: what failed, where, how much, a sample."""
    from sluice.validation.gx import FAILURE_HEADER, failure_rows, html_table

    table = failure_rows(failures)
    read = "unreadable" if rows is None else str(rows)
    subject = f"[sluice] {model}: landing {dataset} ds={ds} QUARANTINED ({len(failures)} failed checks)"
    lines = [
        f"The landing partition {dataset} ds={ds} failed validation and was quarantined.",
        f"Rows read: {read}. Nothing downstream ran; the raw files were copied, not moved.",
        "",
        "Failed checks:",
    ]
    for what, col, count, observed, sample in table:
        lines.append(f"- {what} on {col}: unexpected {count or '-'}; observed {observed or '-'}")
        if sample:
            lines.append(f"    sample: {sample}")
    lines += ["", *[f"{k}: {v}" for k, v in links.items()]]
    link_html = "".join(f'<li><a href="{html.escape(v)}">{html.escape(k)}</a></li>' for k, v in links.items())
    body = (
        f"<p>The landing partition <b>{html.escape(dataset)} ds={html.escape(ds)}</b> failed validation and was "
        f"quarantined. Rows read: {html.escape(read)}. Nothing downstream ran.</p>"
        f"{html_table(FAILURE_HEADER, table)}<ul>{link_html}</ul>"
    )
    return Alert(subject, "\n".join(lines) + "\n", f"<html><body>{body}</body></html>")


def gate_alert(model: str, decision: Any, links: Mapping[str, str], *, candidate: str) -> Alert:
    """ "Why not promoted": the decision, candidate vs champion, the failing rules with their numbers."""
    from sluice.evaluation.report import render_html, render_text

    champ = decision.champion_metrics is not None
    label = "current champion" if champ else "none (first model)"
    subject = f"[sluice] {model}: candidate NOT promoted, gate {decision.decision.value}"
    text = render_text(decision, model=model, candidate_label=candidate, champion_label=label, links=links)
    html_body = render_html(decision, model=model, candidate_label=candidate, champion_label=label, links=links)
    return Alert(subject, text, html_body)


def deployment_alert(
    model: str,
    version: str,
    stage: str,
    reasons: Sequence[str],
    links: Mapping[str, str],
    *,
    serving: str,
    checks: Sequence[Mapping[str, Any]] = (),
) -> Alert:
    """A version was refused (infra validation) or rolled back (smoke test): why, and what serves now."""
    subject = f"[sluice] {model}: v{version} NOT deployed, {stage} failed"
    lines = [
        f"{model} v{version} was not deployed: {stage} failed.",
        f"Still serving: {serving}.",
        "",
        "The champion alias was not moved.",
        "",
        "Why:",
        *[f"- {r}" for r in reasons],
    ]
    rows = [
        (
            str(c["check"]),
            "PASS" if c["passed"] else "FAIL",
            str(c.get("observed")),
            str(c.get("limit")),
            str(c.get("message", "")),
        )
        for c in checks
    ]
    if rows:
        lines += ["", "Checks:", *[f"- {r[0]}: {r[1]} (observed {r[2]}, limit {r[3]}) {r[4]}" for r in rows]]
    lines += ["", *[f"{k}: {v}" for k, v in links.items()]]
    table = ""
    if rows:
        head = "".join(f"<th>{h}</th>" for h in ("check", "result", "observed", "limit", "detail"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        table = f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>"
    link_html = "".join(f'<li><a href="{html.escape(v)}">{html.escape(k)}</a></li>' for k, v in links.items())
    reasons_html = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
    page = (
        f"<p><b>{html.escape(model)} v{html.escape(version)}</b> was not deployed: {html.escape(stage)} failed. "
        f"Still serving: {html.escape(serving)}. The champion alias was not moved.</p>"
        f"<ul>{reasons_html}</ul>{table}<ul>{link_html}</ul>"
    )
    return Alert(subject, "\n".join(lines) + "\n", f"<html><body>{page}</body></html>")


def retrain_alert(
    model: str,
    source: str,
    ds: str,
    signal: Mapping[str, Any],
    decision: Mapping[str, Any],
    training_dag: str,
    links: Mapping[str, str],
) -> Alert:
    """Drift detected (or live performance decayed): what was seen, and which retraining was started."""
    what = "drift detected" if source == "drift" else "live performance decayed"
    subject = f"[sluice] {model}: {what} on ds={ds}, retraining started"
    reasons = list(signal.get("reasons") or [signal.get("reason", "")])
    lines = [
        f"Monitoring of {model} found {what} on ds={ds} (model v{signal.get('model_version', '?')}).",
        f"Decision: {decision.get('reason', '')}",
        "",
        *[f"- {r}" for r in reasons if r],
        "",
        f"Started: {training_dag} (its gate decides whether the new model replaces the champion).",
        "",
        *[f"{k}: {v}" for k, v in links.items() if v],
    ]
    items = "".join(f"<li>{html.escape(str(r))}</li>" for r in reasons if r)
    link_html = "".join(f'<li><a href="{html.escape(v)}">{html.escape(k)}</a></li>' for k, v in links.items() if v)
    page = (
        f"<p>Monitoring of <b>{html.escape(model)}</b> found <b>{html.escape(what)}</b> on ds={html.escape(ds)} "
        f"(model v{html.escape(str(signal.get('model_version', '?')))}).</p>"
        f"<p>Decision: {html.escape(str(decision.get('reason', '')))}</p><ul>{items}</ul>"
        f"<p>Started: <b>{html.escape(training_dag)}</b>; its gate decides whether the new model replaces the "
        f"champion.</p><ul>{link_html}</ul>"
    )
    return Alert(subject, "\n".join(lines) + "\n", f"<html><body>{page}</body></html>")
