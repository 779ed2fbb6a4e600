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
    dates: list[dt.date] | None = None,
    instead_of: str | None = None,
) -> list[dict]:
    """One Airflow process for all the runs of a DAG; its chatter goes to a log file, not the terminal."""
    out = s.run_dir / f"demo-{dag_id}{tag}.json"
    logf = s.log_dir / f"demo-{dag_id}{tag}.log"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "sluice.airflow.runner", dag_id, "--json", str(out)]
    if start and end:
        cmd += ["--from", start.isoformat(), "--to", end.isoformat()]
    if dates:
        cmd += ["--dates", ",".join(d.isoformat() for d in dates)]
    if instead_of:
        cmd += ["--instead-of", instead_of]
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
            # loans: a week more of deliveries, so the labels of the month's last days (7 days late) are there
            extra = cfg.labels.delay_days if model == "loans" else 0
            gen = generate_into_lake(cfg, lake, first, n + extra, scenario_path=scenario)
            print(
                f"\n[{model}] landed {gen['landed']} days from {first} in {lake.root}/landing/{cfg.dataset.name}/; "
                f"the demo runs {first}..{last}"
            )
            t0 = time.monotonic()
            runs = _run_dag(s, cfg.dag_id("features"), first, last)
            print(f"[{model}] {cfg.dag_id('features')}: {len(runs)} runs in {time.monotonic() - t0:.0f}s")
            summary[model] = {"cfg": cfg, "runs": runs, "corrupted": gen["corrupted"]}
        steps = _deliver(s, lake, days)
        _print_summary(s, lake, summary, mails_before, steps)
    finally:
        started = ({"mailsink", "mlflow"} | set(embedded.model_processes(s))) - already
        for name in sorted(started):
            embedded.stop_process(s, name)
        if "postgres" not in already:
            embedded.stop_postgres(s)
    print(f"\ndemo finished in {time.monotonic() - t_start:.0f}s")
    bad = [r for m in summary.values() for r in m["runs"] if r["state"] != "success" and r["ds"] not in m["corrupted"]]
    return 1 if bad else 0


def _shift_start() -> dt.date | None:
    import yaml

    shifts = (yaml.safe_load(SCENARIO.read_text()) or {}).get("covariate_shifts") or []
    return dt.date.fromisoformat(str(shifts[0]["start"])) if shifts else None


def _deliver(s: embedded.Settings, lake, days: int) -> list[tuple[str, str, dict]]:
    """Training, delivery and monitoring over the month, in the order it happens in production:

    train on the first half -> deploy (infra validation, blue/green, smoke test, champion) -> score the first
    half -> each later day: score, monitor (drift against the serving version's reference; live performance
    once labels arrive) -> the scenario's covariate shift is detected -> the monitoring run triggers training
    (run here in its place, with its conf) -> gate -> deployment -> the rest of the month.
    """
    cfg = get_model_config("loans")
    first = PLAN["loans"][0]
    end, mid = first + dt.timedelta(days=days - 1), first + dt.timedelta(days=days // 2 - 1)
    shift = _shift_start() or end + dt.timedelta(days=1)
    published = lake.partitions("features", cfg.features.feature_set)
    steps: list[tuple[str, str, dict]] = []

    def run(kind: str, what: str, **kw) -> dict:
        t0 = time.monotonic()
        runs = _run_dag(s, cfg.dag_id(kind), tag=f"-{len(steps)}", **kw)
        states = sorted({r["state"] for r in runs})
        print(
            f"[loans] {cfg.dag_id(kind)} ({what}): {len(runs)} run(s) {'/'.join(states)} in "
            f"{time.monotonic() - t0:.0f}s"
        )
        for r in runs:
            steps.append((kind, what, r))
        return runs[-1]

    def score_and_monitor(when: list[dt.date], what: str) -> list[dict]:
        if not when:
            return []
        run("batch_inference", what, dates=when)
        run("monitoring", what, dates=when)
        return [r for k, _, r in steps[-len(when) :] if k == "monitoring"]

    run("training", f"first model, data to {mid}", conf={"end_ds": mid.isoformat(), "note": "demo: first model"})
    run("deployment", "the new challenger")
    run("batch_inference", f"days to {mid}", dates=[d for d in published if d <= mid])
    score_and_monitor([d for d in published if mid < d < shift], f"days {mid + dt.timedelta(days=1)}..{shift}")
    later = [d for d in published if shift <= d <= end]
    while later:
        day, later = later[0], later[1:]
        (mon,) = score_and_monitor([day], f"ds={day}")
        triggered = (mon.get("results") or {}).get("retrain_on_drift") or (mon.get("results") or {}).get(
            "retrain_on_decay"
        )
        if triggered:
            run("training", f"triggered by monitoring of {day}", conf=triggered["conf"], instead_of=triggered["run_id"])
            run("deployment", "the retrained challenger, if it passed")
            score_and_monitor(later, f"days after {day}")
            break
    return steps


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


def _describe_deployment(run: dict) -> str:
    res, tasks = run.get("results") or {}, run["tasks"]
    if tasks.get("resolve") == "skipped":
        return f"nothing to deploy ({(run.get('why') or {}).get('resolve', 'no challenger')})"
    champ, infra, smoke = res.get("set_champion"), res.get("infra_validate") or {}, res.get("smoke_test") or {}
    if not champ:
        return f"not deployed: {tasks}"
    lat = infra.get("latency_ms") or {}
    endpoint = (res.get("deploy") or {}).get("address") or (res.get("deploy") or {}).get("target")
    return (
        f"v{champ['champion']} is champion (was {'v' + champ['previous'] if champ['previous'] else 'none'}); "
        f"infra validation p95 {lat.get('p95')} ms; smoke test {smoke.get('rows')} rows; serving at {endpoint}"
    )


def _print_live_request(cfg_name: str, lake) -> None:
    """One request to the stable address, as a client would send it."""
    from sluice.deployment.infra import sample_records
    from sluice.deployment.targets import target_for

    cfg = get_model_config(cfg_name)
    target = target_for(cfg)
    live = target.current()
    if live is None or not live.address:
        return
    records, _ = sample_records(cfg, lake, 1, seed=3)
    preds = target.invoke(records)
    print(f"\nlive: POST {live.address}/invocations with one record -> v{live.version} answers {preds}")
    print("  (the demo stops the model server at the end; `make up` and a deployment run keep one serving)")


def _print_monitoring(runs: list[dict], lake, learned: list[tuple[str, str]]) -> None:
    """One line per monitored day: which version, drift or not and why, live performance, what was started.
    ``learned``: (window end, newest labelled row) of each model trained, oldest first."""
    if not runs:
        return
    print("\nmonitoring (drift against the reference of the version that scored the day; labels 7 days later):")
    for run in runs:
        res, tasks, why = run.get("results") or {}, run["tasks"], run.get("why") or {}
        drift, perf = res.get("drift") or {}, res.get("performance") or {}
        verdict = "DRIFT" if drift.get("drift") else "quiet"
        if perf.get("live") is not None:
            ref = "mean test day" if perf.get("reference_kind") == "per_interval" else "test"
            metric = f"live {perf['metric']} {perf['live']:.3f} ({ref} {perf['reference']:.3f})"
        else:
            metric = f"performance: {perf.get('status') or tasks.get('performance', '-')}"
        if tasks.get("retrain_on_drift") == "success":
            action = "-> retraining started"
        elif drift.get("drift"):
            action = f"-> {why.get('retrain_on_drift', 'no retrain')}"
        else:
            action = ""
        print(f"  ds={run['ds']} v{drift.get('model_version', '?')}  {verdict:5s}  {metric}  {action}")
        if drift.get("drift"):
            for reason in (drift.get("reasons") or [])[:2]:
                print(f"      {reason}")
    drifted = [r for r in runs if ((r.get("results") or {}).get("drift") or {}).get("drift")]
    if drifted:
        print(f"  drift reports: {lake.uri('reports/loans/drift')}/ds=*/drift.html")
    if learned and drifted and drifted[0]["ds"] <= learned[-1][0] < drifted[-1]["ds"]:
        cfg = get_model_config("loans")
        first = next(r["ds"] for r in drifted)
        end, through = learned[-1]
        print(
            f"  why the drift goes on after the retrain: the retrain of {end} was fitted on rows up to {through} "
            f"(labels arrive late, the newest are held out for testing); the shift began on {first}. Against the "
            f"new champion's reference the new applicants are still new, so monitoring keeps saying so, and the "
            f"{cfg.monitoring.cooldown_days}-day "
            f"cooldown holds the next retrain until their labels ({cfg.labels.delay_days} days late) have arrived."
        )


def _print_delivery(s: embedded.Settings, lake, steps: list) -> None:
    from sluice.deployment import ledger
    from sluice.registry.mlflow_registry import Registry

    print("\ncontinuous training and delivery (loans):")
    served: dict[str, list[str]] = {}
    monitored: list[dict] = []
    learned: list[tuple[str, str]] = []
    for kind, what, run in steps:
        if kind == "training":
            plan = (run.get("results") or {}).get("plan") or {}
            print(f"  train  ({what}): {_describe_training(run)}")
            if plan.get("why"):
                print(f"      why it trained: {plan['why']}")
            trained = (run.get("results") or {}).get("train") or {}
            if trained.get("labelled_through"):
                learned.append((trained["end_ds"], trained["labelled_through"]))
                print(
                    f"      learned from: rows to {trained['labelled_through']} in the {trained['window_days']}-day "
                    f"window to {trained['end_ds']} (labels arrive {get_model_config('loans').labels.delay_days} "
                    "days late; the newest labelled rows are held out for validation and test)"
                )
        elif kind == "deployment":
            print(f"  deploy ({what}): {_describe_deployment(run)}")
        elif kind == "monitoring":
            monitored.append(run)
        elif run["state"] == "success":
            served.setdefault(run["results"]["score"]["model_version"], []).append(run["ds"])
        else:
            print(f"  score ds={run['ds']}: {run['state']} {run['tasks']}")
    print("\nwhich version scored which days (predictions/loans/ds=*/, version and run id in every row):")
    for version, ds in served.items():
        print(f"  v{version}: {len(ds)} days, {ds[0]}..{ds[-1]}")
    print(f"  {lake.uri('predictions/loans')}/")
    _print_monitoring(monitored, lake, learned)
    _print_live_request(cfg_name="loans", lake=lake)
    print("\nalias ledger (python -m sluice models history loans):")
    for line in ledger.format_history(ledger.history(Registry(s.mlflow_url), "loans")).splitlines():
        print(f"  {line}")
    print(f"  MLflow: {s.mlflow_url}/#/models/loans")


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
    _print_delivery(s, lake, trainings)
    mails = sorted(s.outbox.glob("*.eml"))[mails_before:]
    print(f"\n{len(mails)} alert mails in {s.outbox}:")
    for m in mails:
        print(f"  {m.name}")
