"""A real scheduler runs the features DAG over 14 days as a backfill, twice, and nothing changes.

On the embedded stack (PostgreSQL, LocalExecutor, triggerer, SMTP sink), driven through the REST API the
way the UI drives it: backfill create -> 12 published partitions and 2 quarantined days with their alert
mails; clearing one task and re-running the whole backfill give byte-identical partitions and no
duplicates; a corrected landing file plus a cleared run publishes the day and keeps the quarantine record.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sluice.alerts.mailsink import read_outbox
from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.datagen.corrupt import render
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import quarantine_records
from sluice.lake import open_lake

REPO = Path(__file__).resolve().parents[2]
DAG = "loans_features"
# the demo scenario's two corrupted days with clean days around them: what a backfill of the whole month
# shows (each run is one interval on its own), for half the scheduler's work
START, DAYS = dt.date(2025, 1, 10), 14
END = START + dt.timedelta(days=DAYS - 1)
CORRUPTED = {dt.date(2025, 1, 12), dt.date(2025, 1, 21)}  # include/scenarios/loans_demo.yaml


def in_window(run: dict) -> bool:
    return START.isoformat() <= run["logical_date"][:10] <= END.isoformat()


def settled(since: str = ""):
    """All backfill runs of the window ended, each after ``since`` (an ISO UTC time)."""

    def check(runs: list[dict]) -> bool:
        mine = [r for r in runs if in_window(r) and r["run_type"] == "backfill"]
        return len(mine) == DAYS and all(
            r["state"] in ("success", "failed") and (r.get("end_date") or "") > since for r in mine
        )

    return check


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def snapshot(lake) -> tuple[dict[str, str], list[str]]:
    shas = {
        d.isoformat(): lake.manifest("features", "loans_v1", d)["content_sha256"]
        for d in lake.partitions("features", "loans_v1")
    }
    return shas, lake.list("features/loans_v1")


def wait_backfill_closed(api, backfill_id: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.call("GET", f"/backfills/{backfill_id}").get("completed_at"):
            return
        time.sleep(1)
    raise AssertionError(f"backfill {backfill_id} was not marked completed within {timeout}s")


def wait_task(api, run_id: str, task_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = api.call("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}")
        if ti["state"] in ("success", "failed", "upstream_failed"):
            return ti["state"]
        time.sleep(1)
    raise AssertionError(f"{task_id} in {run_id} did not finish within {timeout}s")


def test_backfill_is_idempotent_and_quarantines_bad_days(stack) -> None:
    settings, api = stack
    lake = open_lake(settings.lake)
    cfg = get_model_config("loans")
    generate_into_lake(cfg, lake, START, DAYS, scenario_path=REPO / "include/scenarios/loans_demo.yaml")

    api.wait_for_dag(DAG)
    api.call("PATCH", f"/dags/{DAG}", json={"is_paused": False})
    body = {
        "dag_id": DAG,
        "from_date": f"{START}T00:00:00Z",
        "to_date": f"{END}T00:00:00Z",
        "max_active_runs": 4,
        "reprocess_behavior": "none",
    }
    backfill = api.call("POST", "/backfills", json=body)
    runs = api.wait_runs(DAG, settled(), timeout=900)

    by_day = {r["logical_date"][:10]: r for r in runs if in_window(r) and r["run_type"] == "backfill"}
    failed = {d for d, r in by_day.items() if r["state"] == "failed"}
    assert failed == {d.isoformat() for d in CORRUPTED}
    shas, files = snapshot(lake)
    assert sorted(shas) == sorted(set(by_day) - failed) and len(shas) == DAYS - len(CORRUPTED)
    for d in CORRUPTED:
        assert len(quarantine_records(lake, "loans", d)) == 1
    subjects = sorted(m["Subject"] for m in read_outbox(settings.outbox))
    assert subjects == sorted(f"[sluice] loans: landing loans ds={d} QUARANTINED (1 failed checks)" for d in CORRUPTED)

    # clear one task of one day: the partition is rewritten with the same bytes, nothing added
    day = "2025-01-15"
    api.call(
        "POST",
        f"/dags/{DAG}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": by_day[day]["dag_run_id"],
            "task_ids": ["publish_features"],
            "only_failed": False,
        },
    )
    assert wait_task(api, by_day[day]["dag_run_id"], "publish_features") == "success"
    assert snapshot(lake) == (shas, files)

    # the whole backfill again, reprocessing completed runs: byte-identical, no duplicates
    wait_backfill_closed(api, backfill["id"])  # the scheduler marks it completed a little after its last run
    again = utcnow()
    api.call("POST", "/backfills", json={**body, "reprocess_behavior": "completed"})
    api.wait_runs(DAG, settled(since=again), timeout=900)
    assert snapshot(lake) == (shas, files)

    # upstream fixes a quarantined day; clearing its run publishes it and keeps the record as history
    fixed = dt.date(2025, 1, 12)
    clean = loans.generate_events(fixed, seed=7)
    lake.put_landing("landing", "loans", fixed, {"part-00000.parquet": render(clean, "parquet")})
    run_id = by_day[fixed.isoformat()]["dag_run_id"]
    api.call(
        "POST", f"/dags/{DAG}/clearTaskInstances", json={"dry_run": False, "dag_run_id": run_id, "only_failed": True}
    )
    assert wait_task(api, run_id, "publish_features") == "success"
    assert lake.manifest("features", "loans_v1", fixed) is not None
    assert len(quarantine_records(lake, "loans", fixed)) == 1
