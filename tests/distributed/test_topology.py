"""The running distributed stack is the topology it claims: loopback only, passwords everywhere, Celery with two
workers, and MLflow's registry writable by Sluice's service account only."""

from __future__ import annotations

import socket
import subprocess
import uuid

import psutil
import pytest
import requests

from sluice.stack.distributed import WORKERS, pgdata


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_every_service_listens_on_loopback_only(dstack) -> None:
    listening: dict[str, set[str]] = {}
    for name, pid in dstack.status().items():
        assert pid, f"{name} is not running: {dstack.status()}"
        for proc in _tree(pid):
            try:
                conns = proc.net_connections(kind="inet")
            except psutil.Error:
                continue
            for c in conns:
                if c.status == psutil.CONN_LISTEN:
                    listening.setdefault(name, set()).add(f"{c.laddr.ip}:{c.laddr.port}")
    print(f"\nlistening sockets per service: {listening}")
    wide = {n: a for n, a in listening.items() if any(not x.startswith("127.0.0.1:") for x in a)}
    assert not wide, f"bound beyond 127.0.0.1: {wide}"
    for name in ("postgres", "redis", "s3", "mlflow", "mailsink", "airflow-apiserver"):
        assert name in listening, f"{name} listens nowhere: {listening}"


def test_secrets_are_private_and_required(dstack) -> None:
    for path in (dstack.d.env_file, dstack.d.home / "redis" / "redis.conf"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    # Redis: no command without the password
    with socket.create_connection(("127.0.0.1", dstack.d.redis_port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(200).startswith(b"-NOAUTH"), "Redis answered without a password"
    # PostgreSQL: scram-sha-256 on TCP; a wrong password is refused
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=dstack.d.pg_port, user="airflow", password="wrong", dbname="airflow")
    conf = (pgdata(dstack.d) / "pg_hba.conf").read_text()
    assert "trust" not in [line.split()[-1] for line in conf.splitlines() if line.strip() and line[0] != "#"]


def test_celery_executor_with_two_workers(dstack) -> None:
    env = {**dstack.env}
    app = "airflow.providers.celery.executors.celery_executor.app"
    out = subprocess.run(
        [f"{dstack.env['PATH'].split(':')[0]}/celery", "--app", app, "inspect", "ping", "--timeout", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(out.stdout[-1500:])
    for name in WORKERS:
        assert f"{name}@" in out.stdout, f"{name} did not answer the ping:\n{out.stdout}\n{out.stderr[-1500:]}"
    assert dstack.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert dstack.env["SLUICE_LAKE"].startswith("s3://")


def test_mlflow_needs_a_login_and_only_sluice_writes_its_models(dstack) -> None:
    url = dstack.s.mlflow_url
    v = dstack.values
    admin = (v["MLFLOW_ADMIN_USER"], v["MLFLOW_ADMIN_PASSWORD"])
    sluice = (v["MLFLOW_SLUICE_USER"], v["MLFLOW_SLUICE_PASSWORD"])
    search = f"{url}/api/2.0/mlflow/registered-models/search"
    assert requests.get(search, timeout=30).status_code == 401, "MLflow answered without a login"
    name = f"topology-{uuid.uuid4().hex[:8]}"
    made = requests.post(f"{url}/api/2.0/mlflow/registered-models/create", json={"name": name}, auth=sluice, timeout=30)
    assert made.status_code == 200, made.text
    # someone else, signed in: reads, but cannot change what Sluice's account created
    other = (f"reader{uuid.uuid4().hex[:6]}", uuid.uuid4().hex + "A1")
    r = requests.post(
        f"{url}/api/2.0/mlflow/users/create", json={"username": other[0], "password": other[1]}, auth=admin, timeout=30
    )
    assert r.status_code == 200, r.text
    got = requests.get(f"{url}/api/2.0/mlflow/registered-models/get", params={"name": name}, auth=other, timeout=30)
    assert got.status_code == 200, got.text
    for method, path, body in (
        ("POST", "registered-models/alias", {"name": name, "alias": "champion", "version": "1"}),
        ("PATCH", "registered-models/update", {"name": name, "description": "hijacked"}),
        ("DELETE", "registered-models/delete", {"name": name}),
    ):
        resp = requests.request(method, f"{url}/api/2.0/mlflow/{path}", json=body, auth=other, timeout=30)
        assert resp.status_code == 403, f"{method} {path} by another user -> {resp.status_code} {resp.text[:200]}"
    requests.delete(f"{url}/api/2.0/mlflow/registered-models/delete", json={"name": name}, auth=sluice, timeout=30)
