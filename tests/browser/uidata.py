"""The data the browser tier looks at: a small loans model config and ``_populate``, which makes real runs.

Kept apart from the fixtures so the tests can import the helpers (``trigger``, ``wait_tasks``) by name.
"""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import quote

import yaml
from machine import shared_machine_budgets

START = dt.date(2025, 1, 1)
PUBLISHED_DAYS = 8  # features published in-process: the training window
BACKFILL_DAYS = 3  # then run by the scheduler through a REST backfill
CORRUPTED = START + dt.timedelta(days=PUBLISHED_DAYS + 1)  # a quarantined day: validate has its extra link
SCORED = START + dt.timedelta(days=PUBLISHED_DAYS - 1)  # scored by v1 and checked for drift by the scheduler
ROWS = 1500
FINAL = {"success", "failed", "skipped", "upstream_failed"}
WAITING = {"awaiting_input", "deferred"}  # a HITL task waiting for its answer (3.3: awaiting_input)


def model_config() -> dict:
    """The loans config, small enough that training and deployment take seconds on a shared machine."""
    from sluice.config import MODELS_DIR

    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["labels"]["delay_days"] = 1  # the landed days have their labels the next day
    data["training"].update(window_days=PUBLISHED_DAYS, min_new_partitions=1000, min_rows=1000)
    data["training"]["estimator"]["params"]["max_iter"] = 50
    data["gate"]["floors"] = {"roc_auc": 0.6}
    # a retrain on the champion's own window is then INCONCLUSIVE: the same snapshot and seed give the same
    # model, every bootstrap difference is 0, and the interval [0, 0] straddles a margin of 0
    data["gate"]["non_inferiority_margin"] = 0.0
    shared_machine_budgets(data)
    # the deployment run's infra validation: 50 single-row requests show the version answers with the right schema
    # (latency is not this tier's subject: docs/testing.md); the default 200 took 4-6 s more on a shared machine
    data["deploy"]["infra_validation"]["sample_rows"] = 50
    data["monitoring"] = {"persistence": {"k": 3, "n": 3}, "cooldown_days": 3, "performance": {"min_rows": 10**9}}
    return data


SCENARIO = {
    "name": "browser",
    "corruptions": [{"ds": CORRUPTED.isoformat(), "kind": "null_burst"}],
    "covariate_shifts": [{"start": SCORED.isoformat(), "column": "credit_score", "shift_sd": 0.8}],
}


def polls(timeout: float, every: float = 1):
    """Yields until ``timeout`` seconds have passed, sleeping ``every`` seconds between turns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield
        time.sleep(every)


def wait_tasks(api, dag_id: str, run_id: str, done, timeout: float = 300) -> dict[str, str]:
    """The run's {task_id: state} once ``done`` accepts it."""
    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    states: dict[str, str] = {}
    for _ in polls(timeout):
        states = {ti["task_id"]: ti["state"] for ti in api.call("GET", path)["task_instances"]}
        if done(states):
            return states
    raise AssertionError(f"{dag_id} {run_id}: tasks did not get there within {timeout}s: {states}")


def settled(*tasks: str):
    return lambda states: bool(states) and all(states.get(t) in FINAL for t in (tasks or states))


def trigger(api, dag_id: str, logical_date: str | None = None, **conf) -> str:
    body = {"logical_date": logical_date, "conf": conf}
    return api.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]


def _populate(stack) -> dict:
    """Runs for the UI to show, made by the stack's own scheduler (so each has its task logs and durations).

    In this process: landing data for 11 days (one corrupted), features published for the first 8, and a
    first model v1 trained, registered and made champion and challenger, which scores day 8. Through the REST
    API, side by side: a features backfill of days 9-11, started as soon as their landing files are there (it
    runs while v1 is made here; day 10 is quarantined: its validate task carries the "Quarantine record" link),
    a deployment run once v1 is registered (v1 deployed blue/green and confirmed champion) and a monitoring
    run for day 8 once it is scored (its drift task carries the "Drift report" link); once the backfill is
    done (training is unpaused only then, so the feature Asset events start no extra run), a training run
    on v1's own window: the same model, so the gate is INCONCLUSIVE (see ``model_config``) and the run waits
    in its ``approve`` task for a person. Returns the run ids the tests open.
    """
    from sluice.config import get_model_config
    from sluice.datagen.writer import generate_into_lake
    from sluice.features.job import publish_features
    from sluice.lake import open_lake
    from sluice.registry.artifact import fetch_release, load_model, release_of
    from sluice.registry.mlflow_registry import CHAMPION, Registry
    from sluice.serving.batch import score_partition
    from sluice.training import job

    settings, api = stack
    cfg = get_model_config("loans")
    assert cfg.training.min_rows == 1000, "the stack's own model config is in use"
    lake = open_lake()
    scenario = settings.home / "browser-scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    generate_into_lake(cfg, lake, START, PUBLISHED_DAYS + BACKFILL_DAYS, scenario_path=scenario, rows_per_day=ROWS)
    # the scheduler's backfill of the later days needs only their landing files: it runs while v1 is made here
    api.wait_for_dag("loans_features")
    api.call("PATCH", "/dags/loans_features", json={"is_paused": False})
    first, last = START + dt.timedelta(days=PUBLISHED_DAYS), START + dt.timedelta(days=PUBLISHED_DAYS + 2)
    body = {
        "dag_id": "loans_features",
        "from_date": f"{first}T00:00:00Z",
        "to_date": f"{last}T00:00:00Z",
        "max_active_runs": BACKFILL_DAYS,
        "reprocess_behavior": "none",
    }
    api.call("POST", "/backfills", json=body)
    for i in range(PUBLISHED_DAYS):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    registry = Registry(settings.mlflow_url)
    trained = job.train(cfg, lake, registry, end_ds=SCORED, window_days=PUBLISHED_DAYS, dag_id="setup", run_id="v1")
    evaluation = job.evaluate(cfg, lake, registry, trained)
    decision = job.decide(cfg, registry, trained, evaluation).to_dict()
    assert decision["decision"] == "PASS", decision
    v1 = job.promote(cfg, registry, trained, evaluation, decision, run_type="manual")["version"]
    registry.set_alias(cfg.name, CHAMPION, v1)  # the deployment run below confirms it; training compares to it
    for dag_id in ("loans_deployment", "loans_monitoring", "loans_training"):
        api.wait_for_dag(dag_id)
    api.call("PATCH", "/dags/loans_deployment", json={"is_paused": False})
    deployment = trigger(api, "loans_deployment")
    release = release_of(registry, cfg.name, v1)
    score_partition(cfg, lake, SCORED, load_model(fetch_release(release)), model_version=v1, run_id=release.run_id)
    api.call("PATCH", "/dags/loans_monitoring", json={"is_paused": False})
    monitoring = trigger(api, "loans_monitoring", f"{SCORED}T00:00:00Z")
    features = api.wait_runs(
        "loans_features",
        lambda runs: len(runs) == BACKFILL_DAYS and all(r["state"] in ("success", "failed") for r in runs),
        timeout=400,
    )
    api.call("PATCH", "/dags/loans_training", json={"is_paused": False})
    training = retrain_on_champion_window(api)
    wait_tasks(api, "loans_monitoring", monitoring, settled("drift"), timeout=400)
    wait_tasks(api, "loans_deployment", deployment, settled(), timeout=900)
    wait_tasks(api, "loans_training", training, judged, timeout=900)
    quarantined = next(r["dag_run_id"] for r in features if r["logical_date"].startswith(CORRUPTED.isoformat()))
    return {"features": quarantined, "training": training, "deployment": deployment, "monitoring": monitoring}


def paused_attempt_settled(settings, run_id: str, task_id: str = "approve", timeout: float = 120) -> None:
    """Returns once the scheduler has processed the executor's event of the attempt that paused for input.

    Answered before that, Airflow 3.3's scheduler can process the LocalExecutor's "success" event of the paused
    attempt only after the answer has requeued the task; it then marks the resumed task UP_FOR_RETRY ("finished
    with state success, but the task instance's state attribute is queued"), and the retry asks again (seen once
    in CI, the browser tier's Reject; docs/testing.md). The scheduler logs the event it took, with the state it
    left: that line is the signal a person's answer can no longer race.
    """
    log = settings.log_dir / "airflow-scheduler.log"
    line = f"TaskInstance Finished: dag_id=loans_training, task_id={task_id}, run_id={run_id},"
    for _ in polls(timeout, every=1):
        text = log.read_text(errors="replace") if log.exists() else ""
        if any(line in row and "state=awaiting_input" in row for row in text.splitlines()):
            return
    raise AssertionError(f"{log}: the scheduler never logged the paused attempt of {task_id} in {run_id}")


def retrain_on_champion_window(api) -> str:
    return trigger(api, "loans_training", force=True, end_ds=SCORED.isoformat(), note="the champion's window again")


def judged(states: dict[str, str]) -> bool:
    """The gate has decided and the run either ended or waits in ``approve`` for a person."""
    return states.get("gate") in FINAL and states.get("approve", "success") in FINAL | WAITING


def wait_deployments(api, timeout: float = 600) -> None:
    """Every deployment run has ended (the champion stops moving)."""
    api.wait_runs("loans_deployment", lambda runs: all(r["state"] in ("success", "failed") for r in runs), timeout)
