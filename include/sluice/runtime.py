"""Where this checkout lives and how Sluice runs its own processes: the one low room both the dev stack
(``sluice.stack.embedded``) and the deployment targets use, so neither imports the other.

Every process is started in its own session with a PID file under ``$SLUICE_HOME/run`` that records the PID
and its start time, so stopping it never hits a recycled PID. Each carries ``SLUICE_STACK_HOME=<state
folder>`` in its environment (inherited by everything it forks), the mark the dev stack's ``down`` finds
leftovers by; every process group is also appended to ``run/groups.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("sluice.stack")

#: the checkout: ``<root>/include/sluice/runtime.py``; computed here only
REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
PLUGINS_DIR = REPO_ROOT / "plugins"
BIN = Path(sys.executable).parent
#: environment mark of every process of a stack: its state folder
STACK_MARK = "SLUICE_STACK_HOME"


@dataclass(frozen=True)
class Settings:
    """Where the state lives and which loopback ports the services take; read from the environment."""

    home: Path
    airflow_port: int
    mlflow_port: int
    smtp_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            home=Path(env.get("SLUICE_HOME", REPO_ROOT / ".sluice")).resolve(),
            airflow_port=int(env.get("SLUICE_AIRFLOW_PORT", "8080")),
            mlflow_port=int(env.get("SLUICE_MLFLOW_PORT", "5000")),
            smtp_port=int(env.get("SLUICE_SMTP_PORT", "8025")),
        )

    @property
    def pgdata(self) -> Path:
        return self.home / "pg"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def lake(self) -> str:
        return os.environ.get("SLUICE_LAKE") or str(self.home / "lake")

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"


def pythonpath() -> str:
    """``PYTHONPATH`` for a child process: this checkout's ``include`` and ``plugins``, then the caller's."""
    parts = [str(REPO_ROOT / "include"), str(PLUGINS_DIR), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700: state folders hold secrets, logs and data."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


# --------------------------------------------------------------------------------------------- processes


def pid_file(s: Settings, name: str) -> Path:
    return s.run_dir / f"{name}.pid"


def groups_file(s: Settings) -> Path:
    """Every process group ever started under ``s``, one JSON line each: its members outlive the leader."""
    return s.run_dir / "groups.jsonl"


def running_pid(s: Settings, name: str) -> int | None:
    """The PID from the PID file if that very process (same start time) is still alive."""
    import psutil

    path = pid_file(s, name)
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    try:
        proc = psutil.Process(rec["pid"])
        if abs(proc.create_time() - rec["create_time"]) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE:
            return int(rec["pid"])
    except psutil.NoSuchProcess:
        pass
    path.unlink(missing_ok=True)
    return None


def start_process(s: Settings, name: str, cmd: list[str], env: Mapping[str, str]) -> int:
    """Start ``cmd`` in its own session with its log in ``s.log_dir``, unless ``name`` already runs."""
    import psutil

    if pid := running_pid(s, name):
        log.info("%s already running (pid %s)", name, pid)
        return pid
    private_dir(s.log_dir)
    private_dir(s.run_dir)
    fd = os.open(s.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env, STACK_MARK: str(s.home)},
        stdout=fd,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        umask=0o077,
        cwd=REPO_ROOT,
    )
    os.close(fd)
    rec = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "cmd": cmd}
    pid_file(s, name).write_text(json.dumps(rec))
    with open(groups_file(s), "a") as fh:
        fh.write(json.dumps({"pgid": proc.pid, "create_time": rec["create_time"], "name": name}) + "\n")
    log.info("started %s (pid %s), log %s", name, proc.pid, s.log_dir / f"{name}.log")
    return proc.pid


def stop_process(s: Settings, name: str, timeout: float = 20.0) -> bool:
    """SIGTERM the process group we started, then SIGKILL what is left after ``timeout``."""
    import psutil

    pid = running_pid(s, name)
    if pid is None:
        return False
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        log.warning("%s: pid %s ignored SIGTERM, killing", name, p.pid)
        p.kill()
    psutil.wait_procs(alive, timeout=5)
    pid_file(s, name).unlink(missing_ok=True)
    return True


def log_tail(s: Settings, name: str, lines: int = 15) -> str:
    """The last lines of the log of the process started as ``name``."""
    path = s.log_dir / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------------------------- waiting


def wait_until(check: Callable[[], object], what: str, timeout: float, log_file: Path | None = None) -> None:
    """Poll ``check`` until it is truthy; after ``timeout`` raise with the last lines of ``log_file``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = ""
    if log_file and log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s; last lines of {log_file}:\n{tail}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def get_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The JSON body of a 200 answer, or None when nothing (healthy) answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read()) if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
