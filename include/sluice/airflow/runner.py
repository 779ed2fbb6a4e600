"""Run a DAG over a range of logical dates in one process (``dag.test``), and report each run as JSON.

A process per run costs 11-14 s of Airflow start-up; one process costs that once and then about a
second per small run. Tests use it (``load_dag``, ``run_dates``). Runs made this way have no task log
file and their start equals their logical date, so they look hollow in the UI: ``make demo`` drives the
scheduler over REST instead (``sluice.stack.rest``); for backfills use ``airflow backfill create``.

``python -m sluice.airflow.runner DAG_ID --from 2025-01-01 --to 2025-01-30 [--json out.json]``
``python -m sluice.airflow.runner loans_batch_inference --dates 2025-01-02,2025-01-05``
``python -m sluice.airflow.runner loans_training --conf '{"force": true, "note": "by hand"}'``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from sluice.runtime import DAGS_DIR as DAGS


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {DAGS}; DAGs: {sorted(bag.dag_ids)}")
    return dag


def take_queued_run(dag_id: str, run_id: str) -> bool:
    """Remove a queued run (one another DAG triggered) that this process is about to run in its place."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id, DagRun.state == "queued")
        return bool(found.delete(synchronize_session=False))


def run_dates(dag_id: str, dates: list[dt.date | None], conf: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One ``dag.test`` per date (``None``: a manual run now, as for event-driven DAGs), with ``conf``.

    Each result carries the task states, the return values of the tasks that succeeded, and the "why"
    a task recorded before it skipped or failed.
    """
    import pendulum

    dag = load_dag(dag_id)
    out = []
    for d in dates:
        t0 = time.monotonic()
        if d is None:
            dr = dag.test(run_conf=conf)
        else:
            dr = dag.test(logical_date=pendulum.datetime(d.year, d.month, d.day, tz="UTC"), run_conf=conf)
        tis = dr.get_task_instances()
        out.append(
            {
                "ds": d.isoformat() if d else None,
                "run_id": dr.run_id,
                "state": str(dr.state),
                "tasks": {ti.task_id: str(ti.state) for ti in tis},
                "results": {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in tis if ti.state == "success"},
                "why": {ti.task_id: w for ti in tis if (w := ti.xcom_pull(task_ids=ti.task_id, key="why"))},
                "seconds": round(time.monotonic() - t0, 2),
            }
        )
    return out


def _dates(text: str) -> list[dt.date]:
    try:
        return [dt.date.fromisoformat(d.strip()) for d in text.split(",") if d.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--dates takes YYYY-MM-DD,YYYY-MM-DD,...: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sluice.airflow.runner", description=__doc__.split("\n\n")[0])
    ap.add_argument("dag_id")
    ap.add_argument("--from", dest="start", type=dt.date.fromisoformat, help="first logical date")
    ap.add_argument("--to", dest="end", type=dt.date.fromisoformat, help="last logical date")
    ap.add_argument("--dates", type=_dates, help="comma-separated logical dates (instead of --from/--to)")
    ap.add_argument("--conf", type=json.loads, default=None, help="run conf as JSON (overrides Params)")
    ap.add_argument("--json", type=Path, help="write the per-run results here")
    ap.add_argument("--instead-of", help="a queued run of this DAG (e.g. triggered by monitoring) to run here instead")
    args = ap.parse_args(argv)
    if bool(args.start) != bool(args.end):
        ap.error("give both --from and --to, or neither (one manual run now)")
    if args.dates and args.start:
        ap.error("give --dates or --from/--to, not both")
    dates: list[dt.date | None] = list(args.dates) if args.dates else [None]
    if args.start:
        dates = [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    if args.instead_of:
        took = take_queued_run(args.dag_id, args.instead_of)
        print(f"{'took over' if took else 'no queued run'} {args.dag_id} {args.instead_of}", file=sys.stderr)
    results = run_dates(args.dag_id, dates, args.conf)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    for r in results:
        print(f"{r['ds'] or 'manual'}  {r['state']:8s}  {r['seconds']:6.1f}s  {r['tasks']}", file=sys.stderr)
    return 0 if all(r["state"] == "success" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
