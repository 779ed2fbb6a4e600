"""Backfills stay inside a DAG's ``start_date``..``end_date`` and under a cap on the number of runs.

Airflow 3.3 creates one backfill run per schedule interval between the requested dates and ignores the
DAG's own bounds (``airflow/models/backfill.py``: ``_get_info_list`` -> ``iter_dagrun_infos_between``
builds its restriction from the request only), so a 10-year range on a daily DAG makes 3,653 runs.

This ASGI middleware, registered by the Sluice plugin as a root middleware of the API server, reads
``POST /api/v2/backfills`` and ``POST /api/v2/backfills/dry_run`` before Airflow does and answers 422 with
the DAG, its allowed range and what was asked when the range leaves the DAG's bounds or would create more
than ``SLUICE_BACKFILL_MAX_RUNS`` runs (default 500). It judges only authenticated requests: anything else
goes on unchanged to Airflow, which answers 401 and reveals nothing about the DAG.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

GUARDED = ("/api/v2/backfills", "/api/v2/backfills/dry_run")
DEFAULT_MAX_RUNS = 500
MAX_BODY = 1 << 20


def max_runs() -> int:
    raw = os.environ.get("SLUICE_BACKFILL_MAX_RUNS", "")
    try:
        return int(raw) if raw else DEFAULT_MAX_RUNS
    except ValueError:
        return DEFAULT_MAX_RUNS


def _parse(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _day(value: dt.datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else "open"


def check(
    dag_id: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    asked_from: dt.datetime,
    asked_to: dt.datetime,
    count_runs,
    cap: int,
) -> str | None:
    """Why the backfill must be refused, or None. ``count_runs(lo, hi, limit)`` counts runs up to ``limit``."""
    allowed = f"{_day(start)} .. {_day(end)}"
    asked = f"{_day(asked_from)} .. {_day(asked_to)}"
    if asked_from > asked_to:
        return f"backfill of {dag_id}: from_date is after to_date ({asked})"
    if start and asked_from < start:
        return (
            f"backfill of {dag_id} refused: from_date {_day(asked_from)} is before the DAG's start_date; "
            f"the DAG's runs lie in {allowed}, asked {asked}"
        )
    if end and asked_to > end:
        return (
            f"backfill of {dag_id} refused: to_date {_day(asked_to)} is after the DAG's end_date; "
            f"the DAG's runs lie in {allowed}, asked {asked}"
        )
    n = count_runs(asked_from, asked_to, cap + 1)
    if n > cap:
        return (
            f"backfill of {dag_id} refused: {asked} would create more than {cap} runs "
            f"(SLUICE_BACKFILL_MAX_RUNS); split it into smaller ranges within {allowed}"
        )
    return None


def _judge(body: dict[str, Any]) -> str | None:
    """Load the serialized DAG (what the scheduler runs) and check the request against its bounds."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    dag_id, asked_from, asked_to = body.get("dag_id"), _parse(body.get("from_date")), _parse(body.get("to_date"))
    if not isinstance(dag_id, str) or asked_from is None or asked_to is None:
        return None  # Airflow's own validation answers malformed bodies
    with create_session() as session:
        serdag = session.scalar(SerializedDagModel.latest_item_select_object(dag_id))
        if serdag is None:
            return None  # Airflow answers 404
        dag = serdag.dag

    def count_runs(lo: dt.datetime, hi: dt.datetime, limit: int) -> int:
        n = 0
        for _ in dag.iter_dagrun_infos_between(lo, hi):
            n += 1
            if n >= limit:
                break
        return n

    if not dag.timetable.periodic:
        return None  # Airflow refuses backfills of non-periodic DAGs itself
    return check(dag_id, dag.start_date, dag.end_date, asked_from, asked_to, count_runs, max_runs())


async def _authenticated(headers: dict[bytes, bytes]) -> bool:
    """A valid API token (Bearer header or the UI's ``_token`` cookie), checked by Airflow's auth manager."""
    from http.cookies import SimpleCookie

    from airflow.api_fastapi.app import get_auth_manager

    token = ""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    elif b"cookie" in headers:
        morsel = SimpleCookie(headers[b"cookie"].decode("latin-1")).get("_token")
        token = morsel.value if morsel else ""
    if not token:
        return False
    try:
        await get_auth_manager().get_user_from_token(token)
    except Exception:  # any failure: not authenticated; Airflow answers 401 itself
        return False
    return True


class BackfillGuard:
    """Pure ASGI middleware (the body is read once and replayed to Airflow unchanged)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") not in GUARDED:
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        body = b"".join(chunks)
        reason = None
        if size <= MAX_BODY and await _authenticated(dict(scope["headers"])):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                data = None
            if isinstance(data, dict):
                from starlette.concurrency import run_in_threadpool

                reason = await run_in_threadpool(_judge, data)
        if reason:
            from starlette.responses import JSONResponse

            await JSONResponse({"detail": reason}, status_code=422)(scope, receive, send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


MIDDLEWARE = {"middleware": BackfillGuard, "args": [], "kwargs": {}, "name": "Sluice backfill guard"}
