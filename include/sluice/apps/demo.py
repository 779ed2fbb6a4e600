"""``make demo``: the loop on the embedded stack, start to end, with a summary a person can read.

It starts what it needs (PostgreSQL, the SMTP sink), lands generated data (a month of loan applications
with two broken deliveries, and a week of real NYC flights), runs each model's DAGs over every day in
one Airflow process, and prints what was published, what was quarantined and why, and which mails
went out. Services it started are stopped at the end; a stack already up (``make up``) is left running,
and the runs then show in its UI.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

from sluice.config import get_model_config
from sluice.datagen.writer import generate_into_lake
from sluice.lake import open_lake
from sluice.runtime import REPO_ROOT
from sluice.stack import embedded
from sluice.stack.rest import AirflowClient, utcnow_iso

log = logging.getLogger("sluice.demo")
SCENARIO = REPO_ROOT / "include" / "scenarios" / "loans_demo.yaml"

#: model -> (first day, days): loans follows the scenario; flights replays a week of 2013
PLAN = {"loans": (dt.date(2025, 1, 1), None), "flights": (dt.date(2013, 7, 1), 7)}
#: how many runs of one backfill the scheduler runs at once (LocalExecutor parallelism is 8)
FEATURE_RUNS, INFERENCE_RUNS = 4, 4
#: the longest the demo waits for one group of runs
WAIT_S = 900


def _start_stack(s: embedded.Settings) -> set[str]:
    """The full stack of ``make up`` unless it already runs; returns the services this call started."""
    before = {n for n, pid in embedded.status(s).items() if pid}
    missing = [
        svc
        for svc in embedded.SERVICES
        if not ({svc} if svc != "airflow" else set(embedded.AIRFLOW_COMPONENTS)) <= before
    ]
    if missing or "postgres" not in before:
        print(f"starting {', '.join(missing) or 'PostgreSQL'} of the embedded stack; logs in {s.log_dir}")
        embedded.up(s, services=missing)
    else:
        print("the embedded stack is up: the demo uses it and leaves it running")
    after = {n for n, pid in embedded.status(s).items() if pid}
    return after - before


class Driver:
    """Drives the demo's DAG runs through the REST API; the scheduler runs them."""

    def __init__(self, s: embedded.Settings, api: AirflowClient) -> None:
        self.s, self.api = s, api

    def backfill(
        self, dag_id: str, start: dt.date, end: dt.date, what: str = "", max_active_runs: int = 6
    ) -> list[dict]:
        t0, since = time.monotonic(), utcnow_iso()
        self.api.backfill(dag_id, start, end, max_active_runs=max_active_runs)
        print(f"[{dag_id}] backfill {start}..{end}{' (' + what + ')' if what else ''}")
        runs = self.api.wait_window(dag_id, start, end, since, timeout=WAIT_S)
        out = self.results(dag_id, runs)
        states = ", ".join(f"{n} {st}" for st, n in sorted(_count(r["state"] for r in out).items()))
        print(f"[{dag_id}] {len(out)} run(s) in {time.monotonic() - t0:.0f}s: {states}")
        return out

    def results(self, dag_id: str, runs: list[dict]) -> list[dict]:
        xcom = not dag_id.endswith("_features")
        return sorted((self.api.result(dag_id, r, with_xcom=xcom) for r in runs), key=lambda r: r["ds"] or "")

    def wait(self, dag_id: str, run_id: str, what: str) -> dict:
        t0 = time.monotonic()
        run = self.api.wait_run(dag_id, run_id, timeout=WAIT_S, human_ok=dag_id.endswith("_training"))
        res = self.api.result(dag_id, run)
        if res["awaiting"]:
            url = f"{self.s.airflow_url}/dags/{dag_id}/runs/{run_id}/tasks/{res['awaiting']}/required_actions"
            print(f"[{dag_id}] ({what}) awaits a person's decision: approve or reject in the UI at {url}")
        else:
            print(f"[{dag_id}] ({what}): {res['state']} in {time.monotonic() - t0:.0f}s")
        return res

    def trigger(self, dag_id: str, conf: dict, what: str) -> dict:
        run = self.api.trigger(dag_id, conf=conf, note=what)
        print(f"[{dag_id}] triggered {run['dag_run_id']} ({what})")
        return self.wait(dag_id, run["dag_run_id"], what)

    def deployment_after(self, dag_id: str, known: set[str], what: str) -> dict | None:
        """The deployment the model Asset started after a promotion (the scheduler creates it)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = [r for r in self.api.runs(dag_id) if r["dag_run_id"] not in known]
            if new:
                return self.wait(dag_id, new[0]["dag_run_id"], what)
            time.sleep(3)
        print(f"[{dag_id}] no deployment run was started within 120s of the promotion")
        return None


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def run_demo(days: int = 30) -> int:
    t_start = time.monotonic()
    s = embedded.Settings.from_env()
    print(f"Sluice demo: state in {s.home}; lake {s.lake}; Airflow {s.airflow_url}")
    started = _start_stack(s)
    os.environ["SLUICE_LAKE"] = s.lake
    lake = open_lake(s.lake)
    mails_before = len(list(s.outbox.glob("*.eml")))
    summary: dict[str, dict] = {}
    try:
        api = AirflowClient(s.airflow_url, embedded.airflow_password(s))
        drv = Driver(s, api)
        dags = [get_model_config(m).dag_id(k) for m in PLAN for k in ("features",)]
        loans = get_model_config("loans")
        dags += [loans.dag_id(k) for k in ("training", "deployment", "batch_inference", "monitoring")]
        api.wait_for_dags(dags)
        # training waits until the features are in: each published day would start one on the feature Asset
        api.set_paused(loans.dag_id("training"), True)
        for dag_id in dags:
            if dag_id != loans.dag_id("training"):
                api.set_paused(dag_id, False)
        pending = {}
        for model, (first, n) in PLAN.items():
            cfg = get_model_config(model)
            n = min(n or days, days)
            last = first + dt.timedelta(days=n - 1)
            scenario = SCENARIO if model == "loans" else None
            # loans: a week more of deliveries, so the labels of the month's last days (7 days late) are there
            extra = cfg.labels.delay_days if model == "loans" else 0
            gen = generate_into_lake(cfg, lake, first, n + extra, scenario_path=scenario)
            print(
                f"[{model}] landed {gen['landed']} days from {first} in {lake.root}/landing/{cfg.dataset.name}/; "
                f"the demo runs {first}..{last}"
            )
            pending[model] = (cfg, first, last, gen, utcnow_iso())
            api.backfill(cfg.dag_id("features"), first, last, max_active_runs=FEATURE_RUNS)
        for model, (cfg, first, last, gen, since) in pending.items():
            t0 = time.monotonic()
            runs = api.wait_window(cfg.dag_id("features"), first, last, since, timeout=WAIT_S)
            runs = drv.results(cfg.dag_id("features"), runs)
            print(f"[{model}] {cfg.dag_id('features')}: {len(runs)} runs done (waited {time.monotonic() - t0:.0f}s)")
            summary[model] = {"cfg": cfg, "runs": runs, "corrupted": gen["corrupted"]}
        api.set_paused(loans.dag_id("training"), False)
        steps = _deliver(drv, lake, days)
        _print_summary(s, lake, summary, mails_before, steps)
    finally:
        if started:
            print(f"\nstopping what the demo started ({', '.join(sorted(started))}); `make up` shows the runs")
            if set(embedded.AIRFLOW_COMPONENTS) <= started:
                embedded.down(s)  # its stack: model servers and strays included
            else:
                for name in sorted(started - {"postgres"}):
                    embedded.stop_process(s, name)
                if "postgres" in started:
                    embedded.stop_postgres(s)
    print(f"\ndemo finished in {time.monotonic() - t_start:.0f}s")
    bad = [r for m in summary.values() for r in m["runs"] if r["state"] != "success" and r["ds"] not in m["corrupted"]]
    return 1 if bad else 0


def _segments(days: list[dt.date]) -> list[list[dt.date]]:
    """Runs of consecutive days: ``[1, 2, 3, 5, 6]`` -> ``[[1, 2, 3], [5, 6]]``."""
    out: list[list[dt.date]] = []
    for d in sorted(days):
        if out and d - out[-1][-1] == dt.timedelta(days=1):
            out[-1].append(d)
        else:
            out.append([d])
    return out


def _shift_start() -> dt.date | None:
    import yaml

    shifts = (yaml.safe_load(SCENARIO.read_text()) or {}).get("covariate_shifts") or []
    return dt.date.fromisoformat(str(shifts[0]["start"])) if shifts else None


def _deliver(drv: Driver, lake, days: int) -> list[tuple[str, str, dict]]:
    """Training, delivery and monitoring over the month, in the order it happens in production:

    train on the first half -> deploy (infra validation, blue/green, smoke test, champion) -> score the first
    half -> each later day: score, monitor (drift against the serving version's reference; live performance
    once labels arrive) -> the scenario's covariate shift is detected -> the monitoring run triggers training
    (the scheduler runs it) -> gate -> deployment -> the rest of the month -> a hand-triggered training on a
    window with one labelled day, which the gate refuses (FAIL) and mails why.
    """
    cfg = get_model_config("loans")
    dag = cfg.dag_id
    first = PLAN["loans"][0]
    end, mid = first + dt.timedelta(days=days - 1), first + dt.timedelta(days=max(days // 2, 1) - 1)
    shift = _shift_start() or end + dt.timedelta(days=1)
    published = lake.partitions("features", cfg.features.feature_set)
    steps: list[tuple[str, str, dict]] = []

    def deployments() -> set[str]:
        return {r["dag_run_id"] for r in drv.api.runs(dag("deployment"))}

    def train(run: dict, what: str, known: set[str]) -> None:
        steps.append(("training", what, run))
        if ((run.get("results") or {}).get("promote") or {}).get("promoted"):
            dep = drv.deployment_after(dag("deployment"), known, "the new challenger")
            if dep:
                steps.append(("deployment", "the new challenger (started by the model Asset)", dep))

    def backfill_days(kind: str, when: list[dt.date], what: str) -> list[dict]:
        """Backfills over the published days only: a quarantined day has no features to score."""
        out = []
        for seg in _segments(when):
            for r in drv.backfill(dag(kind), seg[0], seg[-1], what, max_active_runs=INFERENCE_RUNS):
                steps.append((kind, what, r))
                out.append(r)
        return out

    def score_and_monitor(lo: dt.date, hi: dt.date, what: str) -> list[dict]:
        when = [d for d in published if lo <= d <= hi]
        backfill_days("batch_inference", when, what)
        return backfill_days("monitoring", when, what)

    def retrains(monitored: list[dict]) -> None:
        """Training runs the monitoring DAG started: the scheduler runs them; wait, then for their deployment."""
        for mon in monitored:
            for task in ("retrain_on_drift", "retrain_on_decay"):
                started = (mon.get("results") or {}).get(task)
                if started:
                    known = deployments()
                    what = f"triggered by monitoring of {mon['ds']} ({task})"
                    train(drv.wait(started["dag_id"], started["run_id"], what), what, known)

    known = deployments()
    what = f"first model, data to {mid}"
    train(drv.trigger(dag("training"), {"end_ds": mid.isoformat(), "note": "demo: first model"}, what), what, known)
    deployed = [r for k, _, r in steps if k == "deployment" and r["state"] == "success"]
    if not deployed:
        print(
            "[loans] the first model is not serving (see its training and deployment above): scoring and "
            "monitoring need a champion, so the demo skips them"
        )
        later = []
    else:
        backfill_days("batch_inference", [d for d in published if d <= mid], f"days to {mid}")
        retrains(score_and_monitor(mid + dt.timedelta(days=1), shift - dt.timedelta(days=1), f"days to {shift}"))
        later = [d for d in published if shift <= d <= end]
    while later:
        day, later = later[0], later[1:]
        (mon,) = score_and_monitor(day, day, f"ds={day}") or [{}]
        if any((mon.get("results") or {}).get(t) for t in ("retrain_on_drift", "retrain_on_decay")):
            retrains([mon])
            if later:
                retrains(score_and_monitor(later[0], later[-1], f"days after {day}"))
            break
    # a deliberately weak candidate: labels arrive labels.delay_days late, so a window of delay_days + 1 days
    # holds one labelled day (~2,000 rows), below the training-set suite's min_rows: the gate says FAIL (not
    # INCONCLUSIVE), deterministically, and mails why it was not promoted; the champion stays
    weak = end if published else mid
    window = cfg.labels.delay_days + 1
    conf = {
        "end_ds": weak.isoformat(),
        "window_days": window,
        "force": True,
        "note": f"demo: a {window}-day window with one labelled day; the gate must refuse it",
    }
    what = f"by hand, a {window}-day window to {weak} (one labelled day)"
    known = deployments()
    train(drv.trigger(dag("training"), conf, what), what, known)
    return steps


def _gate_mail(outbox: Path, mlflow_run_id: str | None) -> tuple[Path, str, list[str]] | None:
    """The "why not promoted" mail of a candidate (found by its MLflow run id): file, subject, failing rules."""
    from email import message_from_bytes, policy

    if not mlflow_run_id:
        return None
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        if "NOT promoted" not in str(msg["Subject"]):
            continue
        part = msg.get_body(preferencelist=("plain",))
        text = part.get_content() if part else ""
        if mlflow_run_id in text:
            lines = text.splitlines()
            why = lines[:1] + [line for line in lines if line.startswith(("Failing rules", "Note:"))]
            return path, str(msg["Subject"]), [line.strip() for line in why][:4]
    return None


def _describe_training(run: dict, outbox: Path) -> str:
    res, tasks = run.get("results") or {}, run["tasks"]
    if tasks.get("plan") == "skipped":
        return f"skipped by the plan ({(run.get('why') or {}).get('plan', 'see the task log')})"
    if run.get("awaiting"):
        return f"the gate was INCONCLUSIVE: waits for a person ({run['awaiting']} task), not awaited by the demo"
    gate, promote = res.get("gate"), res.get("promote")
    if gate:
        rules = ", ".join(f"{r['rule']} {r['verdict']}" for r in gate.get("rules", []))
        what = f"gate {gate['decision']} ({rules})"
        if promote and promote.get("promoted"):
            return f"{what}; registered version {promote['version']} as '{promote['alias']}'"
        return f"{what}; not promoted: {(promote or {}).get('why', 'see the task log')}"
    mail = _gate_mail(outbox, (res.get("train") or {}).get("run_id"))
    if tasks.get("gate") == "failed" and mail:
        path, subject, fails = mail
        why = "".join(f"\n      {line}" for line in fails)
        return f"{subject}; champion untouched{why}\n      the mail: {path}"
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
    from sluice.deployment.factory import target_for
    from sluice.deployment.infra import sample_records

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
    from sluice.registry import ledger
    from sluice.registry.mlflow_registry import Registry

    print("\ncontinuous training and delivery (loans):")
    served: dict[str, list[str]] = {}
    monitored: list[dict] = []
    learned: list[tuple[str, str]] = []
    for kind, what, run in steps:
        if kind == "training":
            plan = (run.get("results") or {}).get("plan") or {}
            print(f"  train  ({what}): {_describe_training(run, s.outbox)}")
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
