"""The embedded stack keeps its secrets, bounds backfills and leaves no process behind.

On a real stack (PostgreSQL, SMTP sink, Airflow api-server/scheduler/dag-processor/triggerer):
- secrets are 0600, state folders 0700, the admin password is in no log and shown only on a first start;
- the pools of ``include/pools.json`` exist as written there (created by the process that migrates);
- the API server refuses a backfill outside the DAG's start/end dates or over the run cap, with a 422 that
  names the DAG, its range and what was asked, and says nothing to a caller without a token;
- after ``kill -9`` of the scheduler, its orphaned LocalExecutor workers are reported as strays, and
  ``up`` + ``down`` leave no process of any generation carrying the stack's mark.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import psutil
import pytest
import requests

CAP = 100


@pytest.fixture(scope="module", autouse=True)
def capped(monkeypatch_module):
    """Set before the stack starts (autouse fixtures come first): the API server reads it."""
    monkeypatch_module.setenv("SLUICE_BACKFILL_MAX_RUNS", str(CAP))


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def marked(home, pgids: set[int]) -> list[psutil.Process]:
    """Every process whose environment or command line belongs to the stack's state folder, or that is in
    a process group the stack started (LocalExecutor workers overwrite their environment with their title)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            env, cmd, pgid = p.environ(), " ".join(p.cmdline()), os.getpgid(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if env.get("SLUICE_STACK_HOME") == str(home) or str(home) in cmd or pgid in pgids:
            found.append(p)
    return found


def test_secrets_are_private_and_in_no_log(stack, capsys) -> None:
    from sluice.stack import embedded

    settings, api = stack
    password = embedded.airflow_password(settings)
    pw_file = embedded.passwords_file(settings)
    assert mode(pw_file) == 0o600, oct(mode(pw_file))
    assert mode(settings.home / "secrets.json") == 0o600
    # as root, the embedded PostgreSQL runs as its own user, which must traverse the state folder
    assert mode(settings.home) == (0o711 if os.geteuid() == 0 else 0o700), oct(mode(settings.home))
    for folder in (settings.run_dir, settings.log_dir, settings.airflow_home, settings.outbox):
        assert mode(folder) == 0o700, f"{folder}: {oct(mode(folder))}"
    # a task log too: trigger a run so the scheduler writes one (its folders and files are private)
    api.wait_for_dag("loans_features")
    api.call("PATCH", "/dags/loans_features", json={"is_paused": False})
    api.call("POST", "/dags/loans_features/dagRuns", json={"logical_date": "2025-01-02T00:00:00Z"})
    deadline = time.monotonic() + 300
    task_logs: list = []
    while time.monotonic() < deadline and not task_logs:
        task_logs = [p for p in (settings.airflow_home / "logs").rglob("attempt=*.log")]
        time.sleep(1)
    assert task_logs, "no task log was written within 300s"
    for p in task_logs:
        assert mode(p) == 0o600, f"{p}: {oct(mode(p))}"
        assert mode(p.parent) == 0o700, f"{p.parent}: {oct(mode(p.parent))}"
    leaks = [
        p
        for root in (settings.log_dir, settings.airflow_home / "logs", settings.run_dir)
        for p in root.rglob("*")
        if p.is_file() and password.encode() in p.read_bytes()
    ]
    assert leaks == [], f"the admin password is written in {leaks}"
    group_or_world = [p for p in settings.log_dir.rglob("*") if p.is_file() and mode(p) & (stat.S_IRWXG | stat.S_IRWXO)]
    assert group_or_world == [], group_or_world
    # the password is generated once; later starts say where it is, not what it is
    assert embedded.ensure_airflow_password(settings) is False
    embedded.print_urls(settings, first_start=False)
    out = capsys.readouterr().out
    assert password not in out and str(pw_file) in out
    embedded.print_urls(settings, first_start=True)
    assert password in capsys.readouterr().out


def test_the_pools_are_those_of_pools_json(stack) -> None:
    from sluice.stack import embedded

    _, api = stack
    for name, want in json.loads(embedded.POOLS.read_text()).items():
        pool = api.call("GET", f"/pools/{name}")
        got = {k: pool[k] for k in ("slots", "description", "include_deferred")}
        assert got == {k: want[k] for k in got}, f"pool {name}: {got}, {embedded.POOLS} says {want}"


def test_backfill_outside_the_dag_dates_is_refused(stack) -> None:
    settings, api = stack
    api.wait_for_dag("loans_features")
    url = f"{settings.airflow_url}/api/v2/backfills/dry_run"
    ten_years = {
        "dag_id": "loans_features",
        "from_date": "2016-01-01T00:00:00Z",
        "to_date": "2025-12-31T00:00:00Z",
        "reprocess_behavior": "none",
        "max_active_runs": 4,
    }
    r = api.session.post(url, json=ten_years, timeout=60)
    assert r.status_code == 422, r.text[:500]
    detail = r.json()["detail"]
    assert "loans_features" in detail and "2025-01-01" in detail and "2016-01-01" in detail, detail
    r = api.session.post(f"{settings.airflow_url}/api/v2/backfills", json=ten_years, timeout=60)
    assert r.status_code == 422, r.text[:500]
    assert api.call("GET", "/backfills", params={"dag_id": "loans_features"})["total_entries"] == 0
    # past the end_date (2025-03-31)
    late = {**ten_years, "from_date": "2025-03-01T00:00:00Z", "to_date": "2025-04-30T00:00:00Z"}
    r = api.session.post(url, json=late, timeout=60)
    assert r.status_code == 422 and "end_date" in r.json()["detail"], r.text[:500]
    # inside the bounds: Airflow answers as usual
    ok = {**ten_years, "from_date": "2025-02-01T00:00:00Z", "to_date": "2025-02-10T00:00:00Z"}
    r = api.session.post(url, json=ok, timeout=60)
    assert r.status_code == 200 and r.json()["total_entries"] == 10, r.text[:500]
    # inside the bounds but over the cap: flights has a whole year (365 runs) and the stack caps at 100
    api.wait_for_dag("flights_features")
    year = {**ten_years, "dag_id": "flights_features", "from_date": "2013-01-01T00:00:00Z"}
    year["to_date"] = "2013-12-31T00:00:00Z"
    r = api.session.post(url, json=year, timeout=60)
    assert r.status_code == 422 and f"more than {CAP} runs" in r.json()["detail"], r.text[:500]
    # no token: Airflow's 401, and nothing about the DAG
    r = requests.post(url, json=ten_years, timeout=60)
    assert r.status_code == 401 and "2025-01-01" not in r.text, r.text[:500]
    r = requests.post(url, json=ten_years, headers={"Authorization": "Bearer forged"}, timeout=60)
    assert r.status_code in (401, 403) and "2025-01-01" not in r.text, r.text[:500]


@pytest.mark.ends_stack  # kills the scheduler and stops the module's stack: the other tests come first
def test_down_leaves_no_process_after_a_scheduler_kill(stack) -> None:
    from sluice.stack import embedded

    settings, api = stack
    scheduler = psutil.Process(embedded.running_pid(settings, "airflow-scheduler"))
    api.wait_for_dag("loans_features")
    api.call("PATCH", "/dags/loans_features", json={"is_paused": False})
    api.call("POST", "/dags/loans_features/dagRuns", json={"logical_date": "2025-01-03T00:00:00Z"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not scheduler.children():
        time.sleep(1)
    workers = scheduler.children()
    assert workers, "the scheduler started no LocalExecutor worker within 300s"

    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(30)
    time.sleep(2)
    orphans = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert orphans, "no worker outlived the scheduler: the scenario did not happen"
    assert {p.pid for p in embedded.strays(settings)} >= {w.pid for w in orphans}
    out = subprocess.run(
        [sys.executable, "-m", "sluice.stack.embedded", "status"], capture_output=True, text=True, check=True
    ).stdout
    assert "STRAY" in out and str(orphans[0].pid) in out, out

    embedded.up(settings, services=("mailsink", "airflow"))  # `make up` again: a new scheduler
    assert embedded.running_pid(settings, "airflow-scheduler") not in (None, scheduler.pid)
    assert not [w for w in orphans if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], "up left the orphans"
    # then a process of the stack that ignores SIGTERM and was orphaned on purpose: down must still stop it
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,signal,time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "if os.fork(): os._exit(0)\n"
            "time.sleep(600)",
        ],
        env={**os.environ, embedded.STACK_MARK: str(settings.home)},
        start_new_session=True,
    )
    stubborn.wait(10)

    pgids = set(embedded._groups(settings))
    assert scheduler.pid in pgids  # the killed scheduler's group, where its orphans still are
    embedded.down(settings)
    left = [p for p in marked(settings.home, pgids) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [(p.pid, p.ppid(), " ".join(p.cmdline())[:80]) for p in left]
