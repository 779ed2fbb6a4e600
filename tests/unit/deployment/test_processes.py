"""``sluice.runtime``'s process handling, which the local target's model servers and routers run on: a PID file
that names exactly the process started, a stop that ends its whole group, waits that say what did not come up."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from sluice.runtime import (
    STACK_MARK,
    Settings,
    free_port,
    groups_file,
    log_tail,
    pid_file,
    running_pid,
    start_process,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.unit

# prints its stack mark, then starts a child (in its process group) and waits: stop must end both
SCRIPT = f"""
import os, subprocess, sys, time
print(os.environ["{STACK_MARK}"], flush=True)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", airflow_port=1, mlflow_port=2, smtp_port=3)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_start_records_the_process_and_stop_ends_its_group(settings: Settings) -> None:
    pid = start_process(settings, "probe", [sys.executable, "-c", SCRIPT], {})
    try:
        assert running_pid(settings, "probe") == pid
        assert start_process(settings, "probe", [sys.executable, "-c", SCRIPT], {}) == pid, "started twice"
        wait_until(lambda: "child" in log_tail(settings, "probe"), "the probe's child", 10)
        child = int(log_tail(settings, "probe").split("child ")[1].split()[0])
        assert log_tail(settings, "probe").splitlines()[0] == str(settings.home)  # the stack mark
        groups = [json.loads(line) for line in groups_file(settings).read_text().splitlines()]
        assert [(g["pgid"], g["name"]) for g in groups] == [(pid, "probe")]
    finally:
        assert stop_process(settings, "probe", timeout=5)
    assert not _alive(pid) and not _alive(child)
    assert running_pid(settings, "probe") is None and not pid_file(settings, "probe").exists()
    assert stop_process(settings, "probe") is False, "nothing left to stop"


def test_a_recycled_pid_is_not_ours(settings: Settings) -> None:
    """A PID file whose process has another start time (the PID was reused) names nothing running."""
    settings.run_dir.mkdir(parents=True)
    pid_file(settings, "old").write_text(json.dumps({"pid": 1, "create_time": time.time() - 10_000, "cmd": []}))
    assert running_pid(settings, "old") is None
    assert not pid_file(settings, "old").exists()


def test_wait_until_names_what_failed_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("starting\nport in use\n")
    with pytest.raises(RuntimeError, match=r"(?s)svc did not come up within 1s.*port in use"):
        wait_until(lambda: False, "svc", 1, log)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
