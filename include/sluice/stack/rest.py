"""A small client of Airflow's REST API v2 for the demo and the tools that drive the stack from outside.

It logs in with the stack's generated admin login (``/auth/token``), then backfills, triggers, pauses and
reads runs, task instances and XCom the way the UI does, so every run it starts is made by the scheduler:
real task logs, real start/end times. No Airflow import: it speaks HTTP only.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import requests

TERMINAL_RUN = ("success", "failed")
#: task instance states in which a run waits for a person (human-in-the-loop operators)
AWAITING = ("awaiting_input",)
HUMAN_TASKS = ("approve",)


class AirflowError(RuntimeError):
    pass


def _q(part: str) -> str:
    return quote(part, safe="")


class AirflowClient:
    def __init__(self, base: str, password: str, user: str = "admin", timeout: float = 60) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        r = requests.post(f"{self.base}/auth/token", json={"username": user, "password": password}, timeout=timeout)
        if r.status_code >= 400:
            raise AirflowError(f"login to {self.base} as {user!r} failed: HTTP {r.status_code}")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    # ------------------------------------------------------------------------------------------ basics

    def call(self, method: str, path: str, ok: Iterable[int] = (), **kwargs: Any) -> Any:
        r = self.session.request(method, f"{self.base}/api/v2{path}", timeout=self.timeout, **kwargs)
        if r.status_code >= 400 and r.status_code not in ok:
            raise AirflowError(f"{method} /api/v2{path} -> HTTP {r.status_code}: {r.text[:1500]}")
        if r.status_code >= 400:
            return None
        return r.json() if r.content else {}

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 240) -> None:
        """Until the dag-processor has serialized every DAG (a fresh stack parses its folder first)."""
        missing = list(dag_ids)
        deadline = time.monotonic() + timeout
        while missing and time.monotonic() < deadline:
            missing = [d for d in missing if self.call("GET", f"/dags/{_q(d)}", ok=(404,)) is None]
            if missing:
                time.sleep(2)
        if missing:
            raise AirflowError(f"DAGs {missing} were not parsed by the dag-processor within {timeout:.0f}s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{_q(dag_id)}", json={"is_paused": paused})

    # ------------------------------------------------------------------------------------------ runs

    def backfill(
        self,
        dag_id: str,
        start: dt.date,
        end: dt.date,
        max_active_runs: int = 4,
        reprocess: str = "completed",
        conf: dict | None = None,
    ) -> dict:
        body = {
            "dag_id": dag_id,
            "from_date": f"{start}T00:00:00Z",
            "to_date": f"{end}T00:00:00Z",
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess,
            "dag_run_conf": conf or {},
        }
        for old in self.call("GET", "/backfills", params={"dag_id": dag_id, "limit": 100})["backfills"]:
            if not old.get("completed_at"):  # left over by an interrupted demo: its runs are not ours to wait for
                self.call("PUT", f"/backfills/{old['id']}/cancel", ok=(409,))
        deadline = time.monotonic() + 120
        while True:  # one running backfill per DAG: a previous one is marked completed a little after its runs
            r = self.session.post(f"{self.base}/api/v2/backfills", json=body, timeout=self.timeout)
            if r.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(3)
        if r.status_code >= 400:
            raise AirflowError(f"backfill {dag_id} {start}..{end} -> HTTP {r.status_code}: {r.text[:1500]}")
        return r.json()

    def trigger(self, dag_id: str, conf: dict | None = None, note: str | None = None) -> dict:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if note:
            body["note"] = note
        return self.call("POST", f"/dags/{_q(dag_id)}/dagRuns", json=body)

    def runs(self, dag_id: str, **params: Any) -> list[dict]:
        params = {"limit": 100, "order_by": "-run_after", **params}
        return self.call("GET", f"/dags/{_q(dag_id)}/dagRuns", params=params)["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return self.call("GET", path, params={"limit": 100})["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/xcomEntries/{_q(key)}"
        got = self.call("GET", path, ok=(404,))
        return None if got is None else got.get("value")

    def awaiting_human(self, tis: list[dict]) -> str | None:
        """The task id a run waits on for a person, if any."""
        for ti in tis:
            if ti["state"] in AWAITING or (ti["task_id"] in HUMAN_TASKS and ti["state"] == "deferred"):
                return ti["task_id"]
        return None

    def result(self, dag_id: str, run: dict, with_xcom: bool = True) -> dict:
        """A run as the demo reports it: task states, return values of the tasks that succeeded, their "why"."""
        tis = self.task_instances(dag_id, run["dag_run_id"])
        out = {
            "ds": (run.get("logical_date") or "")[:10] or None,
            "run_id": run["dag_run_id"],
            "run_type": run.get("run_type"),
            "state": run["state"],
            "tasks": {ti["task_id"]: ti["state"] for ti in tis},
            "results": {},
            "why": {},
            "start_date": run.get("start_date"),
            "end_date": run.get("end_date"),
            "awaiting": self.awaiting_human(tis),
        }
        if with_xcom:
            keys = self.call(
                "GET",
                f"/dags/{_q(dag_id)}/dagRuns/{_q(run['dag_run_id'])}/taskInstances/~/xcomEntries",
                params={"limit": 100},
            )["xcom_entries"]
            for e in keys:
                if e["key"] == "return_value" and out["tasks"].get(e["task_id"]) == "success":
                    out["results"][e["task_id"]] = self.xcom(dag_id, run["dag_run_id"], e["task_id"])
                elif e["key"] == "why":
                    out["why"][e["task_id"]] = self.xcom(dag_id, run["dag_run_id"], e["task_id"], "why")
        return out

    # ------------------------------------------------------------------------------------------ waiting

    def wait_window(
        self,
        dag_id: str,
        start: dt.date,
        end: dt.date,
        since: str,
        timeout: float,
        progress: Callable[[str], None] = print,
        label: str = "",
    ) -> list[dict]:
        """Until one run per day of ``start..end`` ended after ``since`` (ISO UTC); prints n/m as they end."""
        days = (end - start).days + 1
        params = {"logical_date_gte": f"{start}T00:00:00Z", "logical_date_lte": f"{end}T00:00:00Z"}

        def settled(runs: list[dict]) -> list[dict]:
            return [r for r in runs if r["state"] in TERMINAL_RUN and (r.get("end_date") or "") > since]

        return self._wait(lambda: self.runs(dag_id, **params), settled, days, f"{label}{dag_id}", timeout, progress)

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float,
        progress: Callable[[str], None] = print,
        label: str = "",
        human_ok: bool = False,
    ) -> dict:
        """Until the run ended (or, with ``human_ok``, waits for a person: then it is returned as it is)."""

        def fetch() -> list[dict]:
            run = self.run(dag_id, run_id)
            if run["state"] not in TERMINAL_RUN:
                tis = self.task_instances(dag_id, run_id)
                if human_ok:
                    run["_awaiting"] = self.awaiting_human(tis)
                done = sum(ti["state"] in ("success", "skipped", "failed", "upstream_failed") for ti in tis)
                active = [
                    ti["task_id"] + ("" if ti["state"] == "running" else f" ({ti['state']})")
                    for ti in tis
                    if ti["state"] in ("running", "queued", "scheduled", "deferred", "up_for_retry", "awaiting_input")
                ]
                run["_detail"] = f"{done}/{len(tis)} tasks done" + (f", now: {', '.join(active)}" if active else "")
            return [run]

        def settled(runs: list[dict]) -> list[dict]:
            return [r for r in runs if r["state"] in TERMINAL_RUN or r.get("_awaiting")]

        return self._wait(fetch, settled, 1, f"{label}{dag_id} {run_id}", timeout, progress)[0]

    def _wait(self, fetch, settled, total: int, what: str, timeout: float, progress) -> list[dict]:
        t0 = time.monotonic()
        last_msg, last_print = "", 0.0
        runs: list[dict] = []
        while True:
            runs = fetch()
            done = settled(runs)
            if len(done) >= total:
                return done
            elapsed = time.monotonic() - t0
            running = sum(r["state"] == "running" for r in runs)
            failed = sum(r["state"] == "failed" for r in done)
            msg = f"  ... {what}: {len(done)}/{total} run(s) done" + (f" ({failed} failed)" if failed else "")
            msg += f", {running} running"
            if total == 1 and runs and runs[0].get("_detail"):
                msg = f"  ... {what}: {runs[0]['_detail']}"
            if msg != last_msg or elapsed - last_print >= 30:
                progress(f"{msg} [{elapsed:.0f}s]")
                last_msg, last_print = msg, elapsed
            if elapsed > timeout:
                states = sorted((r.get("logical_date") or r["dag_run_id"], r["state"]) for r in runs)
                raise AirflowError(f"{what}: not done within {timeout:.0f}s: {states}")
            time.sleep(3)


def utcnow_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
