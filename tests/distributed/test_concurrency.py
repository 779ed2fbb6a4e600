"""Concurrency on the distributed topology: a 30-day features backfill, 4 runs at once, on 1 Celery worker then
on 2, timed in the same session (the speed-up ratio), with the memory of every process of the stack.

Each half backfills its own 30 days (landed beforehand, so only the scheduler and the workers are timed), on
the same stack: first with ``airflow-worker-2`` stopped, then with both workers. The ratio and the memory
figures are printed and appended to ``$SLUICE_FAULTS_LOG`` like the fault records (docs/distributed-faults.md).
"""

from __future__ import annotations

import datetime as dt
import json
import time

import faults  # tests/distributed/faults.py: pytest puts this folder (no __init__.py) on sys.path

from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake

DAYS = 30
ROWS = 3000
WAIT = 2400


def backfill_seconds(dstack, dapi, dag: str, first: dt.date) -> tuple[float, list[dict]]:
    from sluice.stack.rest import utcnow_iso

    last = first + dt.timedelta(days=DAYS - 1)
    since = utcnow_iso()
    t0 = time.monotonic()
    # "completed": days another test of the session already ran (F1, F7, F8) run again, so all 30 are timed
    dapi.backfill(dag, first, last, max_active_runs=4, reprocess="completed")
    runs = dapi.wait_window(dag, first, last, since, timeout=WAIT)
    return time.monotonic() - t0, runs


def received_tasks(dstack, worker: str) -> int:
    path = dstack.log_dir / f"{worker}.log"
    return path.read_text(errors="replace").count("Executing workload in Celery") if path.exists() else 0


def test_a_30_day_backfill_on_two_workers_against_one(dstack, dapi, dlake) -> None:
    from sluice.stack.distributed import WORKERS

    cfg = get_model_config("loans")
    dag = cfg.dag_id("features")
    one_first, two_first = dt.date(2025, 1, 10), dt.date(2025, 2, 20)
    dapi.wait_for_dags([dag])
    dapi.set_paused(dag, False)
    generate_into_lake(cfg, dlake, one_first, DAYS, rows_per_day=ROWS)
    generate_into_lake(cfg, dlake, two_first, DAYS, rows_per_day=ROWS)

    dstack.stop(WORKERS[1])
    try:
        one, runs_one = backfill_seconds(dstack, dapi, dag, one_first)
        memory_one = dstack.memory_mb()
    finally:
        dstack.start(WORKERS[1])
    received = {w: received_tasks(dstack, w) for w in WORKERS}
    two, runs_two = backfill_seconds(dstack, dapi, dag, two_first)
    per_worker = {w: received_tasks(dstack, w) - received[w] for w in WORKERS}
    memory_two = dstack.memory_mb()

    failed = [(r["logical_date"][:10], r["state"]) for r in [*runs_one, *runs_two] if r["state"] != "success"]
    ratio = one / two
    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "fault": "concurrency",
        "what": f"{DAYS}-day backfill of {dag}, max_active_runs=4: 1 Celery worker, then 2",
        "one_worker_s": round(one, 1),
        "two_workers_s": round(two, 1),
        "speedup": round(ratio, 2),
        "memory_mb_one_worker": memory_one,
        "memory_mb_two_workers": memory_two,
        "tasks_per_worker_two_workers": per_worker,
        "failed": failed,
    }
    print(f"\nCONCURRENCY {json.dumps(record)}")
    faults.record(record)
    assert not failed, failed
    assert len(runs_one) == len(runs_two) == DAYS
    # the ratio is a figure, not an assertion (a shared machine's load moves it); both workers must have worked
    assert all(n > 0 for n in per_worker.values()), per_worker
