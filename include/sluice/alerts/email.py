"""Alert emails as data: subject, plain text and HTML, built without Airflow so they can be tested alone."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sluice.safehtml import esc as _e
from sluice.safehtml import html_table, link_list
from sluice.text import FAILURE_HEADER, failure_rows


def _steps(steps: Sequence[str]) -> tuple[list[str], str]:
    """'What to do next' as text lines and an HTML list (every step escaped)."""
    text = ["", "What to do next:", *[f"{i}. {s}" for i, s in enumerate(steps, 1)]]
    return text, "<h3>What to do next</h3><ol>" + "".join(f"<li>{_e(s)}</li>" for s in steps) + "</ol>"


def _with_steps(alert: Alert, steps: Sequence[str]) -> Alert:
    text, block = _steps(steps)
    page = alert.html.replace("</body>", f"{block}</body>", 1) if "</body>" in alert.html else alert.html + block
    return Alert(alert.subject, alert.text.rstrip("\n") + "\n" + "\n".join(text) + "\n", page)


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    html: str

    def message(self, to: Sequence[str], sender: str) -> EmailMessage:
        # Long subjects must not be folded before their first word: Python's parser then keeps a leading space.
        msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=200))
        msg["Subject"], msg["From"], msg["To"] = self.subject, sender, ", ".join(to)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "sluice.localhost")
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
    body = (
        f"<p>The landing partition <b>{html.escape(dataset)} ds={html.escape(ds)}</b> failed validation and was "
        f"quarantined. Rows read: {html.escape(read)}. Nothing downstream ran.</p>"
        f"{html_table(FAILURE_HEADER, table)}{link_list(links)}"
    )
    steps = [
        f"Find why landing/{dataset}/ds={ds} is bad (the failed checks above, the Data Docs link) and fix it at the "
        "source.",
        f"Re-land the corrected files into landing/{dataset}/ds={ds}/ (the quarantined copy stays as evidence).",
        f"In Airflow, clear the task 'validate' (with its downstream tasks) of the {model}_features run for "
        f"ds={ds} (logical date {ds}); it validates again and, on success, publishes the features.",
    ]
    return _with_steps(Alert(subject, "\n".join(lines) + "\n", f"<html><body>{body}</body></html>"), steps)


def _with_shadow(alert: Alert, shadow: Mapping[str, Any] | None) -> Alert:
    """The waiting challenger's live shadow evidence appended (text and HTML), when there is some."""
    if not shadow:
        return alert
    from sluice.deployment.shadow import DAY_HEADER, day_rows, summary_lines

    lines = ["", f"The challenger v{shadow.get('version')} waits for deployment and is shadow-scored:"]
    lines += summary_lines(shadow)
    block = f"<p>The challenger v{_e(shadow.get('version'))} waits for deployment and is shadow-scored.</p>"
    block += _shadow_html(shadow, DAY_HEADER, day_rows)
    page = alert.html.replace("</body>", f"{block}</body>", 1) if "</body>" in alert.html else alert.html + block
    return Alert(alert.subject, alert.text.rstrip("\n") + "\n" + "\n".join(lines) + "\n", page)


def gate_alert(
    model: str,
    decision: Any,
    links: Mapping[str, str],
    *,
    candidate: str,
    champion: str | None = None,
    shadow: Mapping[str, Any] | None = None,
) -> Alert:
    """ "Why not promoted": the decision, candidate vs champion, the failing rules with their numbers.

    ``champion`` is the version the registry's ``champion`` alias names now (None: there is none). A gate
    judged without a champion's metrics although one serves (the training-set suite failed, so nothing was
    compared) names that champion and says why it was not compared, instead of "no champion yet".
    """
    from sluice.evaluation.report import as_judged_against, render_html, render_text

    shown, label = as_judged_against(decision, champion)
    subject = f"[sluice] {model}: candidate NOT promoted, gate {decision.decision.value}"
    text = render_text(shown, model=model, candidate_label=candidate, champion_label=label, links=links)
    html_body = render_html(shown, model=model, candidate_label=candidate, champion_label=label, links=links)
    alert = _with_shadow(Alert(subject, text, html_body), shadow)
    return _with_steps(alert, gate_next_steps(model, decision, champion=champion))


#: what would change a failing rule's verdict, by rule name (a ``floor:<metric>`` rule uses ``floor``)
_RULE_FIX = {
    "thresholds_configured": "configure thresholds (gate.floors, non_inferiority_margin, ...) in the model's YAML",
    "absolute_rules": "add an absolute rule (gate.floors or a budget) in the model's YAML: the first model has no "
    "champion to compare with",
    "floor": "the candidate must reach the floor: more or fresher training data, better features or estimator "
    "params; lower the floor in the YAML only if the business accepts it",
    "training_suite": "the training set failed its suite (training_set_suite.json on the MLflow run): fix the "
    "data (labels, partitions) and retrain",
    "model_size": "a smaller model (estimator params in the YAML) or a larger gate.max_model_mb",
    "latency": "a faster model (fewer trees/iterations) or a larger gate.max_latency_ms",
    "non_inferiority": "the candidate is worse than the champion by more than the margin: check the new data "
    "(label shifts, broken features) before retraining; the champion keeps serving",
    "min_improvement": "the candidate does not improve enough on the champion: retrain when more data has "
    "arrived, or lower gate.min_improvement",
    "slices": "a slice big enough to judge regressed significantly (table above): inspect that segment's data; "
    "retrain or accept a larger gate.slice_max_regression",
    "bootstrap": "the comparison with the champion is missing: rerun the training so evaluation compares both",
}


def gate_next_steps(model: str, decision: Any, *, champion: str | None = None) -> list[str]:
    """For a FAIL: one step per failing rule (what would change it), then how to retrain. ``champion``: the
    version serving now, if any (what the registry says, not what the gate compared with)."""
    steps = []
    for rule in decision.failing_rules:
        fix = _RULE_FIX.get(rule.rule.split(":", 1)[0], "see the rule's detail above")
        steps.append(f"{rule.rule}: {fix}.")
    serving = f"the champion (v{champion}) keeps serving" if champion is not None else "the champion keeps serving"
    if champion is None and not decision.has_champion:
        serving = "no champion serves yet"
    steps.append(
        f"Nothing is promoted and {serving}. To try again, trigger {model}_training "
        "(Trigger DAG; set force to train on the same data after a config change)."
    )
    return steps


def deployment_alert(
    model: str,
    version: str,
    stage: str,
    reasons: Sequence[str],
    links: Mapping[str, str],
    *,
    serving: str,
    checks: Sequence[Mapping[str, Any]] = (),
    shadow: Mapping[str, Any] | None = None,
) -> Alert:
    """A version was refused (infra validation, its live shadow comparison) or rolled back (smoke test): why,
    and what serves now. ``shadow``: the version's live shadow evidence (``sluice.deployment.shadow.compare``),
    shown whenever there is some."""
    from sluice.deployment.shadow import DAY_HEADER, day_rows, summary_lines

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
    if shadow:
        lines += ["", *summary_lines(shadow)]
    lines += ["", *[f"{k}: {v}" for k, v in links.items()]]
    table = ""
    if rows:
        head = "".join(f"<th>{h}</th>" for h in ("check", "result", "observed", "limit", "detail"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        table = f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>"
    reasons_html = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
    page = (
        f"<p><b>{html.escape(model)} v{html.escape(version)}</b> was not deployed: {html.escape(stage)} failed. "
        f"Still serving: {html.escape(serving)}. The champion alias was not moved.</p>"
        f"<ul>{reasons_html}</ul>{table}{_shadow_html(shadow, DAY_HEADER, day_rows)}{link_list(links)}"
    )
    steps = [
        f"Nothing to do to keep serving: {serving} still answers."
        if serving != "nothing"
        else "Nothing serves this model yet; the version was refused before it could.",
        f"Read the failed checks above; a broken artifact or a model over budget needs a new version "
        f"(retrain with {model}_training), a budget too tight a change of deploy.infra_validation in the YAML.",
        f"To deploy a specific version, trigger {model}_deployment with version=<n>; to go back, action=rollback.",
    ]
    if stage == SHADOW_STAGE:
        steps[1] = (
            f"v{version} scored worse than the champion on the same live rows once their labels arrived (table "
            f"above), although its offline gate passed: look for what the offline test set missed (a newer regime, "
            f"a leak), then retrain with {model}_training; deploy.require_shadow_days and deploy.shadow_margin "
            "in the YAML say how much live evidence a deployment needs."
        )
        steps[2] = (
            f"v{version} stays the challenger and is still shadow-scored, but no deployment of it passes while its "
            f"live evidence says worse; the next model that passes the gate in {model}_training replaces it."
        )
    return _with_steps(Alert(subject, "\n".join(lines) + "\n", f"<html><body>{page}</body></html>"), steps)


SHADOW_STAGE = "shadow comparison"


def _shadow_html(shadow: Mapping[str, Any] | None, header: Sequence[str], rows: Any) -> str:
    if not shadow:
        return ""
    return (
        f"<h3>Shadow evidence ({_e(shadow.get('role', 'challenger'))} v{_e(shadow.get('version'))})</h3>"
        f"<p>{_e(shadow.get('reason'))}</p>{html_table(header, rows(shadow))}"
    )


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
    page = (
        f"<p>Monitoring of <b>{html.escape(model)}</b> found <b>{html.escape(what)}</b> on ds={html.escape(ds)} "
        f"(model v{html.escape(str(signal.get('model_version', '?')))}).</p>"
        f"<p>Decision: {html.escape(str(decision.get('reason', '')))}</p><ul>{items}</ul>"
        f"<p>Started: <b>{html.escape(training_dag)}</b>; its gate decides whether the new model replaces the "
        f"champion.</p>{link_list(links)}"
    )
    steps = [
        f"Nothing, unless the signal is wrong: the retraining {training_dag} runs on its own; its gate decides.",
        "If its gate is INCONCLUSIVE you get an approval request; if it fails, a 'why not promoted' mail.",
    ]
    return _with_steps(Alert(subject, "\n".join(lines) + "\n", f"<html><body>{page}</body></html>"), steps)


def approval_requested_alert(
    model: str,
    decision: Any,
    *,
    candidate: str,
    approve_url: str,
    links: Mapping[str, str],
    deadline: str,
    shadow: Mapping[str, Any] | None = None,
) -> Alert:
    """An INCONCLUSIVE gate waits for a person: the evidence, and where to approve or reject before when.
    ``shadow``: the live evidence of the challenger now waiting, which an approval would replace."""
    from sluice.evaluation.report import render_html, render_text

    label = "current champion" if decision.champion_metrics is not None else "none (first model)"
    subject = f"[sluice] {model}: APPROVAL NEEDED, gate INCONCLUSIVE for candidate {candidate}"
    every = {"Approve or reject (Airflow required action)": approve_url, **links}
    text = render_text(decision, model=model, candidate_label=candidate, champion_label=label, links=every)
    page = render_html(decision, model=model, candidate_label=candidate, champion_label=label, links=every)
    steps = [
        f"Open {approve_url} (Airflow UI, Browse > Required Actions) and choose Approve or Reject, with why.",
        "Approve: the candidate becomes the challenger and the deployment DAG deploys it. Reject: nothing moves.",
        f"No answer by {deadline} counts as Reject.",
    ]
    return _with_steps(_with_shadow(Alert(subject, text, page), shadow), steps)


def approval_decided_alert(model: str, candidate: str, record: Mapping[str, Any], links: Mapping[str, str]) -> Alert:
    """Who decided an INCONCLUSIVE gate, how and why, and what happens now."""
    outcome = str(record.get("outcome", "")).upper()
    subject = f"[sluice] {model}: candidate {candidate} {outcome} by {record.get('by')}"
    then = (
        "It is promoted to challenger now; the deployment DAG deploys it."
        if record.get("approved")
        else "Nothing is promoted; champion and challenger stay as they are."
    )
    lines = [
        f"The INCONCLUSIVE gate of {model} candidate {candidate} was {record.get('outcome')} "
        f"by {record.get('by')} at {record.get('responded_at')}.",
        f"Why: {record.get('why') or '-'}",
        then,
        "",
        *[f"{k}: {v}" for k, v in links.items() if v],
    ]
    page = (
        f"<p>The INCONCLUSIVE gate of <b>{_e(model)}</b> candidate {_e(candidate)} was "
        f"<b>{_e(record.get('outcome'))}</b> by <b>{_e(record.get('by'))}</b> at {_e(record.get('responded_at'))}."
        f"</p><p>Why: {_e(record.get('why') or '-')}</p><p>{_e(then)}</p>{link_list(links)}"
    )
    steps = ["Nothing; the decision is in the alias ledger (python -m sluice models history " + model + ")."]
    return _with_steps(Alert(subject, "\n".join(lines) + "\n", f"<html><body>{page}</body></html>"), steps)
