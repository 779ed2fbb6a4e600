"""Fault injection for the distributed topology's tests: each helper breaks one real part and puts it back.

Nothing here mocks a service: a fault is a signal to a real process, a real TCP proxy in front of a real
endpoint that stops answering or answers late, a real tmpfs that fills up, a real server stopped and
started again. Each fault test records what it saw with :class:`FaultRecord` (records before and after, what
was lost, the time from the repair to the first good answer), prints it, and appends it to the JSON lines
file ``$SLUICE_FAULTS_LOG`` (default ``<tmp>/sluice-faults.jsonl``) from which docs/distributed-faults.md
takes its figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------------- records


#: every record this session emitted, for the summary at the end of the run (conftest's terminal summary)
RECORDED: list[dict[str, Any]] = []


def record(rec: dict[str, Any]) -> None:
    """Keep ``rec`` for the session's summary and append it to ``$SLUICE_FAULTS_LOG``."""
    RECORDED.append(rec)
    path = faults_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(rec, default=str, sort_keys=True) + "\n")


def faults_log() -> Path:
    return Path(os.environ.get("SLUICE_FAULTS_LOG", Path(tempfile.gettempdir()) / "sluice-faults.jsonl"))


@dataclasses.dataclass
class FaultRecord:
    """What one fault did: the evidence a fault test prints and the docs quote.

    ``lost`` lists what is gone for good (a record, a mail, a run): every fault test asserts it is empty.
    ``recovery_s`` runs from the repair (the service back, the space freed) to the first complete good result.
    """

    fault: str
    what: str
    before: Any = None
    after: Any = None
    lost: list[str] = dataclasses.field(default_factory=list)
    recovery_s: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def emit(self) -> None:
        rec = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **dataclasses.asdict(self)}
        print(f"\nFAULT {self.fault}: {self.what}")
        print(f"  before:   {json.dumps(self.before, default=str)[:600]}")
        print(f"  after:    {json.dumps(self.after, default=str)[:600]}")
        print(f"  lost:     {self.lost or 'nothing'}")
        recovery = "n/a" if self.recovery_s is None else f"{self.recovery_s:.1f}s"
        print(f"  recovery: {recovery}")
        for note in self.notes:
            print(f"  note:     {note}")
        record(rec)


class Stopwatch:
    """Seconds since ``start()`` (monotonic)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def start(self) -> Stopwatch:
        self.t0 = time.monotonic()
        return self

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def wait_for(check: Callable[[], Any], what: str, timeout: float, interval: float = 0.5) -> Any:
    """Poll until ``check()`` is truthy; its value is returned. The error names what did not happen."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a service that is still coming back
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s" + (f" (last error: {last_exc!r})" if last_exc else ""))


# --------------------------------------------------------------------------------------------- processes


def sigkill(pid: int, *, group: bool = False) -> None:
    """SIGKILL a process (or its whole process group): no handler runs, no cleanup, like a lost machine."""
    if group:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGKILL)


def wait_gone(pid: int, timeout: float = 30) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=timeout)


def children_named(pid: int, needle: str) -> list[int]:
    """Descendants of ``pid`` whose command line contains ``needle`` (e.g. a worker's task process)."""
    import psutil

    out = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if needle in " ".join(child.cmdline()):
                    out.append(child.pid)
    return out


def rss_mb(pid: int, *, tree: bool = True) -> float:
    """Resident memory of a process (and its descendants), in MB."""
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *(proc.children(recursive=True) if tree else [])]
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total / 2**20


def kill_service(settings: Any, name: str) -> int:
    """SIGKILL the process group a stack started as ``name`` (its PID file under ``run/``); returns the PID."""
    from sluice.runtime import running_pid

    pid = running_pid(settings, name)
    if pid is None:
        raise AssertionError(f"{name} is not running under {settings.home} (no live PID file run/{name}.pid)")
    sigkill(pid, group=True)
    wait_gone(pid)
    return pid


# --------------------------------------------------------------------------------------------- network


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``: up, down (connections refused and cut), or slow.

    ``down()`` closes the listening socket and resets every open connection, as a crashed endpoint does;
    ``up()`` listens again on the same port. ``latency`` seconds are added before every chunk forwarded in
    either direction. Clients are pointed at :attr:`url`; the target never knows the proxy exists.
    """

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.latency = 0.0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self.port = port
        self.connections = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        if self._listener is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stop.clear()
        threading.Thread(target=self._accept, args=(sock,), daemon=True, name=f"proxy-{self.port}").start()

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
                c.close()

    def close(self) -> None:
        self._stop.set()
        self.down()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if self.latency:
                        time.sleep(self.latency)
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            with self._lock:
                self._conns -= {a, b}
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


@contextlib.contextmanager
def proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    p = TcpProxy(target_host, target_port)
    try:
        yield p
    finally:
        p.close()


def port_of(url: str) -> int:
    from urllib.parse import urlsplit

    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url!r} names no port")
    return port


# --------------------------------------------------------------------------------------------- disk


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A real, small tmpfs at ``path`` (root only): writes beyond ``size_kb`` fail with ENOSPC."""
    if os.geteuid() != 0:
        raise PermissionError(f"mounting a tmpfs at {path} needs root (for disk-full faults); run the test as root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system of ``path`` until ``leave_bytes`` are free; returns the ballast file."""
    ballast = path / ".ballast"
    with open(ballast, "wb") as fh:
        chunk = b"\0" * 4096
        try:
            while True:
                st = os.statvfs(path)
                free = st.f_bavail * st.f_frsize
                if free < leave_bytes + len(chunk):
                    break
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return ballast


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# --------------------------------------------------------------------------------------------- redis


def redis_cli(port: int, password: str | None, *args: str, timeout: float = 10) -> str:
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--no-auth-warning"]
    if password:
        cmd += ["-a", password]
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, check=False)
    return (out.stdout + out.stderr).strip()


def redis_ping(port: int, password: str | None) -> bool:
    try:
        return redis_cli(port, password, "PING", timeout=3) == "PONG"
    except subprocess.TimeoutExpired:
        return False
