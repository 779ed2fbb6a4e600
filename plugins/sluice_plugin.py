"""The Sluice plugin for the Airflow UI: a read-only view of evidence in the lake, and links to it.

``/sluice/lake/<key>`` serves quarantine records and reports (Data Docs, summaries, drift reports) from
the lake through the API server, so the links in alert emails and on task instances open in a browser
whether the lake is a local folder or S3. Only the ``quarantine/`` and ``reports/`` zones are served.
"""

from __future__ import annotations

import mimetypes

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from sluice.airflow.backfill_guard import MIDDLEWARE as BACKFILL_GUARD

SERVED_ZONES = ("quarantine", "reports")

lake_app = FastAPI(title="Sluice lake evidence", docs_url=None, redoc_url=None)


def _lake():
    from sluice.airflow.hooks import LakeHook

    return LakeHook().get_conn()


@lake_app.get("/lake/{key:path}")
def lake_object(key: str) -> Response:
    parts = key.split("/")
    if parts[0] not in SERVED_ZONES or ".." in parts or any(p.startswith(".") for p in parts):
        raise HTTPException(status_code=404, detail=f"only {SERVED_ZONES} are served, got {key!r}")
    lake = _lake()
    if key.endswith("/") or not lake.storage.exists(key):
        listing = [k for k in lake.list(key.rstrip("/")) if not k.rsplit("/", 1)[-1].startswith(".")]
        if not listing:
            raise HTTPException(status_code=404, detail=f"{key!r} not found in the lake")
        items = "".join(f'<li><a href="/sluice/lake/{k}">{k}</a></li>' for k in listing)
        return HTMLResponse(f"<html><body><h1>{key}</h1><ul>{items}</ul></body></html>")
    media = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(lake.read(key), media_type=media)


class QuarantineLink(BaseOperatorLink):
    """On the validate task: the quarantine record of the run's interval, when there is one."""

    name = "Quarantine record"

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        record = XCom.get_value(ti_key=ti_key, key="quarantine")
        if not record or not record.get("quarantine_uri"):
            return ""
        from sluice.airflow.operators import lake_link

        return lake_link(record["data_docs_uri"])


class DriftReportLink(BaseOperatorLink):
    """On the drift sensor: the interval's HTML drift report."""

    name = "Drift report"

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        record = XCom.get_value(ti_key=ti_key, key="drift")
        return (record or {}).get("report_link") or ""


class SluicePlugin(AirflowPlugin):
    name = "sluice"
    fastapi_apps = [{"app": lake_app, "url_prefix": "/sluice", "name": "Sluice lake evidence"}]
    global_operator_extra_links = [QuarantineLink(), DriftReportLink()]
    fastapi_root_middlewares = [BACKFILL_GUARD]
