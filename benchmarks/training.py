"""The training DAG against the same steps called as plain functions, on a window of about 1M rows.

Both run against the same real services (embedded PostgreSQL for Airflow, an MLflow server), in a
separate state folder (``.sluice/bench``). The ratio is the orchestration overhead: task start-up,
XCom, the snapshot rebuilt per task from the lake, connections resolved per task.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, DAYS, ROWS_PER_DAY = dt.date(2025, 1, 1), 28, 50_000
BUDGET = 1.5  # the DAG may take at most 1.5x the plain functions


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> bool:
    home = REPO / ".sluice" / "bench"
    os.environ.update(
        SLUICE_HOME=str(home),
        SLUICE_LAKE=str(home / "lake"),
        SLUICE_MLFLOW_PORT=str(_port()),
        SLUICE_AIRFLOW_PORT=str(_port()),
        SLUICE_SMTP_PORT=str(_port()),
    )
    from sluice.stack import embedded

    settings = embedded.Settings.from_env()
    embedded.down(settings)
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    embedded.up(settings, services=("mlflow",))
    try:
        return _run(settings)
    finally:
        embedded.down(settings)


def _run(settings) -> bool:
    from sluice.stack import embedded

    os.environ.update({k: v for k, v in embedded.airflow_env(settings).items()})
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = settings.mlflow_url
    embedded.migrate_airflow(settings)

    from sluice.config import get_model_config
    from sluice.datagen.writer import generate_into_lake
    from sluice.features.job import publish_features
    from sluice.lake import open_lake
    from sluice.registry.mlflow_registry import Registry
    from sluice.training import job

    cfg, lake = get_model_config("loans"), open_lake()
    t0 = time.perf_counter()
    generate_into_lake(cfg, lake, START, DAYS, rows_per_day=ROWS_PER_DAY)
    for i in range(DAYS):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    end = START + dt.timedelta(days=DAYS - 1)
    print(f"prepared {DAYS} days x {ROWS_PER_DAY:,} rows of features in {time.perf_counter() - t0:.0f}s")

    registry = Registry(settings.mlflow_url)
    steps: dict[str, float] = {}
    t = time.perf_counter()
    trained = job.train(cfg, lake, registry, end_ds=end, window_days=DAYS, dag_id="bench", run_id="plain")
    steps["train"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluation = job.evaluate(cfg, lake, registry, trained)
    steps["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    decision = job.decide(cfg, registry, trained, evaluation).to_dict()
    steps["gate"] = time.perf_counter() - t
    t = time.perf_counter()
    job.promote(cfg, registry, trained, evaluation, decision, run_type="manual")
    steps["promote"] = time.perf_counter() - t
    plain = sum(steps.values())
    rows = evaluation["test_rows"]
    print(f"window: {trained['window_days']} days, {rows:,} test rows; gate {decision['decision']}")
    print("plain functions: " + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()) + f"  = {plain:.1f}s")

    from sluice.airflow.runner import run_dates

    t = time.perf_counter()
    (run,) = run_dates("loans_training", [None], {"end_ds": end.isoformat(), "window_days": DAYS, "force": True})
    dag_s = time.perf_counter() - t
    ratio = dag_s / plain
    print(f"training DAG (dag.test, one process): {dag_s:.1f}s, state {run['state']}, tasks {run['tasks']}")
    print(f"orchestration overhead ratio {ratio:.2f}x (budget {BUDGET}x) {'OK' if ratio <= BUDGET else 'OVER'}")
    return run["state"] == "success" and ratio <= BUDGET
