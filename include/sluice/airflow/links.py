"""Extra links on task instances, the Airflow 3 way: computed in the worker, read back by the API server.

At the end of a try the task runner calls ``get_link`` on every link the operator class declares in
``operator_extra_links`` and stores the result as an XCom under the link's ``xcom_key``; the serialized
DAG keeps only ``{name: xcom_key}``, and the API server answers the links endpoint by reading that XCom
(``XComOperatorLink``). So ``get_link`` runs only in the worker, and reads the URL the operator kept on
itself while it ran; nothing here runs in the API server, which has no Task SDK supervisor to talk to.
A link is declared on its own operator class only: never global, so one link can't break the endpoint
for every task.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

LINKS_ATTR = "sluice_links"


def keep_link(operator: Any, name: str, url: str | None) -> None:
    """Called by the operator during ``execute``: the URL its link will show (an empty URL shows none)."""
    links = dict(getattr(operator, LINKS_ATTR, None) or {})
    links[name] = url or ""
    setattr(operator, LINKS_ATTR, links)


class _KeptLink(BaseOperatorLink):
    """A link whose URL the operator kept with :func:`keep_link` while it ran."""

    name = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return (getattr(operator, LINKS_ATTR, None) or {}).get(self.name, "")


class DataDocsLink(_KeptLink):
    """On the validate task: the Data Docs page of the interval's quarantine record, when it failed."""

    name = "Data Docs"


class QuarantineLink(_KeptLink):
    """On the validate task: the quarantine record's folder (raw copies, result JSON, summary)."""

    name = "Quarantine record"


class DriftReportLink(_KeptLink):
    """On the drift sensor: the interval's HTML drift report."""

    name = "Drift report"
