"""Failure alerts for every task of every Sluice DAG."""

from __future__ import annotations

import logging
from html import escape
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sluice.alerts.email import Alert

log = logging.getLogger(__name__)


class AlertedFailure(AirflowFailException):
    """A gate failed and its own, detailed alert is already sent: fail without retry, no second mail."""


class AlertNotSent(AirflowException):
    """A gate failed and its alert could not be sent (SMTP down): the decision is already recorded, so the task
    fails *retryably*: Airflow runs it again with the DAG's retries and backoff, which repeats the (idempotent)
    decision and sends the mail once SMTP is back. Out of retries, the run ends red, never green without a mail."""


def task_failure_alert(context: dict[str, Any]) -> None:
    """``on_failure_callback``: mail the model's owners which task failed, why, and where the log is."""
    from sluice.airflow.hooks import AlertHook
    from sluice.config import get_model_config

    exc = context.get("exception")
    if isinstance(exc, AlertedFailure):
        return
    ti = context["ti"]
    dag_id, task_id = ti.dag_id, ti.task_id
    model = (context.get("params") or {}).get("model") or dag_id.rsplit("_", 1)[0]
    try:
        to = list(get_model_config(model).alerts.emails)
    except Exception:  # the config itself may be what broke; never lose the alert for it
        log.exception("cannot load the config of %s for its recipients", model)
        return
    log_url = getattr(ti, "log_url", "")
    subject = f"[sluice] {dag_id}.{task_id} FAILED (try {ti.try_number}) run {context.get('run_id')}"
    text = f"Task {dag_id}.{task_id} failed in run {context.get('run_id')}.\n\nError: {exc}\n\nLog: {log_url}\n"
    html = (
        f"<p>Task <b>{escape(dag_id)}.{escape(task_id)}</b> failed in run {escape(str(context.get('run_id')))}.</p>"
        f"<pre>{escape(str(exc))}</pre><p><a href='{escape(log_url)}'>Task log</a></p>"
    )
    try:
        AlertHook().send(Alert(subject, text, html), to)
    except Exception:  # a broken mail relay must not mask the task's own error
        log.exception("could not send the failure alert for %s.%s", dag_id, task_id)
