"""``embedded.stop_together``, what ``down`` stops the stack's services with: one SIGTERM to each recorded process
group at once, one wait for all, SIGKILL for what ignores it, and nothing it did not start."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from sluice.runtime import Settings, log_tail, pid_file, running_pid, start_process, wait_until
from sluice.stack.embedded import stop_together

pytestmark = pytest.mark.unit

# on SIGTERM: says so in a file, then waits for its peers to say so too (up to 15 s): a service stopped while
# the others still run without having been told writes "alone-<name>"
PEER = """
import os, pathlib, signal, sys, time
folder, me, peers = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
def on_term(*_):
    (folder / f"got-{me}").touch()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all((folder / f"got-{p}").exists() for p in peers):
        time.sleep(0.05)
    told = all((folder / f"got-{p}").exists() for p in peers)
    (folder / f"{'together' if told else 'alone'}-{me}").touch()
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(1)
"""

# ignores SIGTERM, and so does the child in its process group
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('x', flush=True); time.sleep(600)"
child = subprocess.Popen([sys.executable, "-c", code])
print("child", child.pid, flush=True)
time.sleep(600)
"""


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", airflow_port=1, mlflow_port=2, smtp_port=3)


def _running(procs: list[psutil.Process]) -> list[int]:
    """The PIDs of ``procs`` still running (the very processes: a recycled PID is another process object)."""
    return [p.pid for p in psutil.wait_procs(procs, timeout=0)[1] if p.status() != psutil.STATUS_ZOMBIE]


def test_every_service_is_told_before_any_is_waited_for(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    names = ["a", "b", "c"]
    procs = [
        psutil.Process(start_process(settings, n, [sys.executable, "-c", PEER, str(tmp_path), n, ",".join(names)], {}))
        for n in names
    ]
    other = psutil.Process(start_process(settings, "other", [sys.executable, "-c", "import time; time.sleep(600)"], {}))
    try:
        for n in names:
            wait_until(lambda n=n: "ready" in log_tail(settings, n), f"service {n}", 30)
        assert stop_together(settings, [*names, "not-started"], timeout=30) == names
        alone = sorted(p.name for p in tmp_path.glob("alone-*"))
        assert alone == [], f"{alone}: stopped while the others still ran untold"
        assert sorted(p.name for p in tmp_path.glob("together-*")) == [f"together-{n}" for n in names]
        assert _running(procs) == []
        assert not [n for n in names if pid_file(settings, n).exists()]
        assert running_pid(settings, "other") == other.pid, "a service it was not asked to stop was stopped"
    finally:
        stop_together(settings, ["other", *names], timeout=5)
    assert _running([other]) == []


def test_what_ignores_sigterm_is_killed_with_its_group(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    leader = psutil.Process(start_process(settings, "stubborn", [sys.executable, "-c", STUBBORN], {}))
    wait_until(lambda: "x" in log_tail(settings, "stubborn").splitlines(), "the stubborn child", 30)
    child = psutil.Process(int(log_tail(settings, "stubborn").split("child ")[1].split()[0]))
    assert stop_together(settings, ["stubborn"], timeout=1) == ["stubborn"]
    assert _running([leader, child]) == []
    assert running_pid(settings, "stubborn") is None
    assert stop_together(settings, ["stubborn"]) == [], "nothing left to stop"
