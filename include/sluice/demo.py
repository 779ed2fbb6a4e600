"""``make demo``: the loop on the embedded stack, start to end, with a summary a person can read.

It starts what it needs (PostgreSQL, the SMTP sink), lands generated data (a month of loan applications
with two broken deliveries, and a week of real NYC flights), runs each model's DAGs over every day in
one Airflow process, and prints what was published, what was quarantined and why, and which mails
went out. Services it started are stopped at the end; a stack already up (``make up``) is left running,
and the runs then show in its UI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.lake import open_lake
from sluice.stack import embedded

log = logging.getLogger("sluice.demo")
REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "include" / "scenarios" / "loans_demo.yaml"

#: model -> (first day, days): loans follows the scenario; flights replays a week of 2013
PLAN = {"loans": (dt.date(2025, 1, 1), None), "flights": (dt.date(2013, 7, 1), 7)}


def _run_dag(
    s: embedded.Settings,
    dag_id: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    conf: dict | None = None,
    tag: str = "",
) -> list[dict]:
    """One Airflow process for all the runs of a DAG; its chatter goes to a log file, not the terminal."""
    out = s.run_dir / f"demo-{dag_id}{tag}.json"
    logf = s.log_dir / f"demo-{dag_id}{tag}.log"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "sluice.airflow.runner", dag_id, "--json", str(out)]
    if start and end:
        cmd += ["--from", start.isoformat(), "--to", end.isoformat()]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    env = {**os.environ, **embedded.airflow_env(s)}
    with open(logf, "wb") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if not out.exists():
        tail = "\n".join(logf.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{dag_id}: the runner failed (exit {proc.returncode}); log {logf}:\n{tail}")
    return json.loads(out.read_text())


def run_demo(days: int = 30) -> int:
    t_start = time.monotonic()
    s = embedded.Settings.from_env()
    already = {n for n, pid in embedded.status(s).items() if pid}
    print(f"Sluice demo: state in {s.home}; lake {s.lake}")
    embedded.up(s, services=("mailsink", "mlflow"))
    embedded.migrate_airflow(s)
    os.environ["SLUICE_LAKE"] = s.lake
    lake = open_lake(s.lake)
    mails_before = len(list(s.outbox.glob("*.eml")))
    summary: dict[str, dict] = {}
    try:
        for model, (first, n) in PLAN.items():
            cfg = get_model_config(model)
            n = n or days
            last = first + dt.timedelta(days=n - 1)
            scenario = SCENARIO if model == "loans" else None
            gen = generate_into_lake(cfg, lake, first, n, scenario_path=scenario)
            print(f"\n[{model}] landed {gen['landed']} days {first}..{last} in {lake.root}/landing/{cfg.dataset.name}/")
            t0 = time.monotonic()
            runs = _run_dag(s, cfg.dag_id("features"), first, last)
            print(f"[{model}] {cfg.dag_id('features')}: {len(runs)} runs in {time.monotonic() - t0:.0f}s")
            summary[model] = {"cfg": cfg, "runs": runs, "corrupted": gen["corrupted"]}
        trainings = _train(s, days)
        _print_summary(s, lake, summary, mails_before, trainings)
    finally:
        started = {"mailsink", "mlflow"} - already
        for name in started:
            embedded.stop_process(s, name)
        if "postgres" not in already:
            embedded.stop_postgres(s)
    print(f"\ndemo finished in {time.monotonic() - t_start:.0f}s")
    bad = [r for m in summary.values() for r in m["runs"] if r["state"] != "success" and r["ds"] not in m["corrupted"]]
    return 1 if bad else 0


def _train(s: embedded.Settings, days: int) -> list[tuple[str, dict]]:
    """Continuous training on the month: the first model, then a run the new-partition rule declines."""
    end = (PLAN["loans"][0] + dt.timedelta(days=days - 1)).isoformat()
    steps = [
        ("first training on the month", {"end_ds": end, "note": "demo: first model"}),
        ("same data again (no new partitions)", {"end_ds": end, "note": "demo: nothing new"}),
    ]
    out = []
    for what, conf in steps:
        t0 = time.monotonic()
        (run,) = _run_dag(s, "loans_training", conf=conf, tag=f"-{len(out)}")
        print(f"[loans] loans_training ({what}): {run['state']} in {time.monotonic() - t0:.0f}s")
        out.append((what, run))
    return out


def _describe_training(run: dict) -> str:
    res, tasks = run.get("results") or {}, run["tasks"]
    if tasks.get("plan") == "skipped":
        return f"skipped by the plan ({(run.get('why') or {}).get('plan', 'see the task log')})"
    gate, promote = res.get("gate"), res.get("promote")
    if gate:
        rules = ", ".join(f"{r['rule']} {r['verdict']}" for r in gate.get("rules", []))
        what = f"gate {gate['decision']} ({rules})"
        if promote and promote.get("promoted"):
            return f"{what}; registered version {promote['version']} as '{promote['alias']}'"
        return f"{what}; not promoted: {(promote or {}).get('why', 'see the task log')}"
    return f"did not reach a decision: {tasks}"


def _print_summary(s: embedded.Settings, lake, summary: dict, mails_before: int, trainings: list) -> None:
    from sluice.features.job import quarantine_records

    print("\n" + "=" * 78 + "\nSUMMARY\n" + "=" * 78)
    for model, info in summary.items():
        cfg, runs = info["cfg"], info["runs"]
        published = [r["ds"] for r in runs if r["state"] == "success"]
        print(
            f"\n{model}: {len(published)}/{len(runs)} feature partitions published to "
            f"{lake.uri('features/' + cfg.features.feature_set)}/"
        )
        for r in runs:
            if r["state"] == "success":
                continue
            recs = quarantine_records(lake, cfg.dataset.name, dt.date.fromisoformat(r["ds"]))
            reason = recs[-1]["reason"] if recs else f"run {r['state']}: {r['tasks']}"
            expected = info["corrupted"].get(r["ds"])
            print(f"  QUARANTINED ds={r['ds']}" + (f" (scenario: {expected})" if expected else " (UNEXPECTED)"))
            print(f"      reason: {reason}")
    print("\ntraining (loans):")
    for what, run in trainings:
        plan = (run.get("results") or {}).get("plan") or {}
        print(f"  {what}: {_describe_training(run)}")
        if plan.get("why"):
            print(f"      why it trained: {plan['why']}")
    print(f"  MLflow: {s.mlflow_url}/#/models/loans")
    mails = sorted(s.outbox.glob("*.eml"))[mails_before:]
    print(f"\n{len(mails)} alert mails in {s.outbox}:")
    for m in mails:
        print(f"  {m.name}")
