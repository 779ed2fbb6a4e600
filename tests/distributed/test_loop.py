"""The whole loop on the distributed topology, every step a DAG run the scheduler hands to the Celery workers:

features (a backfill, four runs at once over two workers) -> training (MLflow on PostgreSQL, artifacts in S3)
-> gate -> promotion -> deployment (started by the model Asset: infra validation, blue/green, champion)
-> batch inference -> monitoring. The lake is ``s3://`` on moto's server, so every partition, manifest and
report crossed HTTP; the test reads them back from there, and the model's artifacts from the MLflow bucket.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import faults  # tests/distributed/faults.py: pytest puts this folder (no __init__.py) on sys.path

from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.registry import ledger
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from sluice.stack.distributed import WORKERS
from sluice.stack.rest import utcnow_iso

START = dt.date(2025, 1, 1)
DAYS = 5  # features for 5 days; the first model trains on a 3-day window ending on day 4
TRAIN_END = START + dt.timedelta(days=3)
ROWS = 3000
WAIT = 600
PROMOTION_POOL = "sluice_promotion"


def _ok(result: dict) -> bool:
    return result["state"] == "success"


def _moves(registry: Registry, model: str) -> dict[str, int]:
    """Alias moves onto a version in the ledger so far, per alias (the registry's own record of every move; the
    deployment's release of ``challenger`` to nobody and a refusal that leaves it in place are not moves)."""
    entries = ledger.history(registry, model)
    return {
        alias: sum(e.get("alias") == alias and e.get("to") not in (None, e.get("from")) for e in entries)
        for alias in (CHALLENGER, CHAMPION)
    }


def _ti(api, dag_id: str, run_id: str, task_id: str) -> dict:
    return next(ti for ti in api.task_instances(dag_id, run_id) if ti["task_id"] == task_id)


def _worker_of(dstack, run_id: str, task_id: str) -> list[str]:
    """The Celery workers whose log shows they executed ``task_id`` of ``run_id`` (each logs the workload: the
    task instance with its ids); the TI's own hostname is the machine, the same for both workers."""
    marks = (f"task_id='{task_id}'", f"run_id='{run_id}'")
    out = []
    for w in WORKERS:
        lines = (dstack.log_dir / f"{w}.log").read_text(errors="replace").splitlines()
        if any("Executing workload in Celery" in line and all(m in line for m in marks) for line in lines):
            out.append(w)
    return out


def _task_count(log_text: str) -> int:
    """Tasks a Celery worker received: its log has ``Task execute_workload[<id>] received`` for each."""
    return len(re.findall(r"execute_workload\[[0-9a-f-]+\] received", log_text))


def test_the_whole_loop_on_celery_workers_postgres_redis_and_s3(dstack, dapi, dlake) -> None:
    t0 = time.monotonic()
    cfg = get_model_config("loans")
    assert cfg.labels.delay_days == 1, "the stack's own (fast) model config is in use"
    assert dlake.root.startswith("s3://"), dlake.root
    dag = cfg.dag_id
    dapi.wait_for_dags([dag(k) for k in ("features", "training", "deployment", "batch_inference", "monitoring")])
    # training waits until the features are in (each published day would start one on the feature Asset)
    dapi.set_paused(dag("training"), True)
    for kind in ("features", "deployment", "batch_inference", "monitoring"):
        dapi.set_paused(dag(kind), False)
    timings: dict[str, float] = {}

    # 1. features: a backfill, four runs at once over two workers
    landed = generate_into_lake(cfg, dlake, START, DAYS + 1, rows_per_day=ROWS)
    last = START + dt.timedelta(days=DAYS - 1)
    t, since = time.monotonic(), utcnow_iso()
    dapi.backfill(dag("features"), START, last, max_active_runs=4)
    runs = dapi.wait_window(dag("features"), START, last, since, timeout=WAIT)
    timings["features"] = time.monotonic() - t
    bad = {r["logical_date"][:10]: r["state"] for r in runs if r["state"] != "success"}
    corrupted = set(landed.get("corrupted") or [])
    assert not {k for k in bad if k not in corrupted}, bad
    published = dlake.partitions("features", cfg.features.feature_set)
    assert len(published) >= DAYS - len(corrupted), published
    keys = dlake.list(f"features/{cfg.features.feature_set}/")
    assert keys and all(not k.split("/")[-1].startswith(".tmp") for k in keys), keys[:20]

    # 2. training -> gate -> promotion, twice at once (C2): two runs on the same snapshot (same end_ds), both
    # running together on the Celery workers, meet in promote (the rival wait + the one-slot pool): both
    # succeed, exactly one challenger move; 3. its model Asset event starts one deployment, one champion move
    registry = Registry(dstack.s.mlflow_url)
    pool = dapi.call("GET", f"/pools/{PROMOTION_POOL}")
    assert pool["slots"] == 1, pool  # airflow-init's `pools import include/pools.json` made it on this stack
    moves_before = _moves(registry, cfg.name)
    known = {r["dag_run_id"] for r in dapi.runs(dag("deployment"))}
    t = time.monotonic()
    dapi.set_paused(dag("training"), False)  # a paused DAG's runs, triggered ones too, are not scheduled
    conf = {"end_ds": TRAIN_END.isoformat(), "note": "distributed loop: two trainings at once"}
    twins = [dapi.trigger(dag("training"), conf=conf)["dag_run_id"] for _ in range(2)]
    trainings = [dapi.result(dag("training"), dapi.wait_run(dag("training"), rid, timeout=2 * WAIT)) for rid in twins]
    timings["training"] = time.monotonic() - t
    assert all(_ok(r) for r in trainings), [r["tasks"] for r in trainings]
    assert all(r["tasks"]["gate"] == "success" for r in trainings), [r["tasks"] for r in trainings]
    # the runs overlapped: the second started before the first ended (max_active_runs=2)
    first, second = sorted(trainings, key=lambda r: r["start_date"])
    assert second["start_date"] < first["end_date"], (first["start_date"], first["end_date"], second["start_date"])
    promoted = [r for r in trainings if r["tasks"]["promote"] == "success"]
    superseded = [r for r in trainings if r["tasks"]["promote"] == "skipped"]
    assert len(promoted) == 1 and len(superseded) == 1, [r["tasks"] for r in trainings]
    promotes = {rid: _ti(dapi, dag("training"), rid, "promote") for rid in twins}
    workers = {rid: {t: _worker_of(dstack, rid, t) for t in ("train", "promote")} for rid in twins}
    # the pool, not promotion_lock's flock (workers need not share a disk), kept the two promote tasks apart
    (a, b) = sorted(promotes.values(), key=lambda ti: ti["start_date"])
    assert a["end_date"] <= b["start_date"], (a["start_date"], a["end_date"], b["start_date"], b["end_date"])
    t = time.monotonic()
    deadline = time.monotonic() + 180
    new: list[dict] = []
    while not new and time.monotonic() < deadline:
        new = [r for r in dapi.runs(dag("deployment")) if r["dag_run_id"] not in known]
        time.sleep(3)
    assert new, "the promotion's model Asset started no deployment run"
    deployment = dapi.result(dag("deployment"), dapi.wait_run(dag("deployment"), new[0]["dag_run_id"], timeout=WAIT))
    timings["deployment"] = time.monotonic() - t
    assert _ok(deployment), deployment
    deployments = [r["dag_run_id"] for r in dapi.runs(dag("deployment")) if r["dag_run_id"] not in known]
    moves = _moves(registry, cfg.name)
    moved = {alias: moves[alias] - moves_before[alias] for alias in moves}
    faults.FaultRecord(
        fault="C2",
        what="two training runs of loans on the same snapshot, triggered at once on the Celery workers",
        before={"alias_moves": moves_before},
        after={
            "runs": {r["run_id"]: r["state"] for r in trainings},
            "promote": {rid: ti["state"] for rid, ti in promotes.items()},
            "workers": workers,
            "alias_moves": moved,
            "deployment_runs": deployments,
            "seconds": round(timings["training"] + timings["deployment"], 1),
        },
        notes=[f"superseded: {dapi.xcom(dag('training'), superseded[0]['run_id'], 'promote')}"],
    ).emit()
    assert moved == {CHALLENGER: 1, CHAMPION: 1}, moved
    assert len(deployments) == 1, deployments
    champion = registry.by_alias(cfg.name, CHAMPION)
    assert champion is not None, "no champion after the deployment"
    # the model's artifacts are in the MLflow bucket of the S3 endpoint (served by MLflow's proxy)
    objects = dstack.s3().list_objects_v2(Bucket=dstack.values["MLFLOW_BUCKET"], Prefix="mlflow/")
    assert objects.get("KeyCount", 0) > 0, "no MLflow artifact in S3"

    # 4. batch inference with the champion; 5. monitoring of the same days
    for kind in ("batch_inference", "monitoring"):
        first = START + dt.timedelta(days=1)
        t, since = time.monotonic(), utcnow_iso()
        dapi.backfill(dag(kind), first, last, max_active_runs=4)
        runs = dapi.wait_window(dag(kind), first, last, since, timeout=WAIT)
        timings[kind] = time.monotonic() - t
        results = [dapi.result(dag(kind), r, with_xcom=False) for r in runs]
        failed = {r["ds"]: r["tasks"] for r in results if not _ok(r) and r["ds"] not in corrupted}
        assert not failed, failed
    predicted = dlake.partitions("predictions", cfg.name)
    assert predicted, "no predictions partition in the S3 lake"
    reports = dlake.list(f"reports/{cfg.name}/drift/")
    assert reports, "no drift report in the S3 lake"

    # both Celery workers ran tasks of the loop
    per_worker = {w: _task_count((dstack.log_dir / f"{w}.log").read_text(errors="replace")) for w in WORKERS}
    print(f"\ntasks received per worker: {per_worker}")
    assert all(n > 0 for n in per_worker.values()), per_worker
    timings["total"] = time.monotonic() - t0
    memory = dstack.memory_mb()
    print("loop timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print("memory per service (MB RSS, with children): " + str(memory))
    faults.record(
        {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "fault": "loop",
            "what": "features -> training -> gate -> promotion -> deployment -> batch -> monitoring on Celery workers",
            "seconds": {k: round(v, 1) for k, v in timings.items()},
            "tasks_per_worker": per_worker,
            "memory_mb": memory,
        }
    )
