"""The embedded stack for end-to-end tests: its own state folder and free ports, torn down at the end."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests


class AirflowAPI:
    """A small REST v2 client with a token from the stack's generated login."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        r = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        r.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs) -> dict:
        r = self.session.request(method, f"{self.base}/api/v2{path}", timeout=60, **kwargs)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text[:2000]}")
        return r.json() if r.content else {}

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.session.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=30)
            if r.status_code == 200:
                return
            time.sleep(1)
        raise AssertionError(f"{dag_id} was not serialized by the dag-processor within {timeout}s")

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 500})["dag_runs"]

    def wait_runs(self, dag_id: str, predicate, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = self.runs(dag_id)
            if predicate(runs):
                return runs
            time.sleep(1)
        states = sorted((r["logical_date"], r["run_type"], r["state"]) for r in runs)
        raise AssertionError(f"{dag_id}: runs did not settle within {timeout}s: {states}")


@pytest.fixture(scope="module")
def stack(request, monkeypatch_module, free_port):
    """PostgreSQL, the SMTP sink and Airflow (api-server, scheduler, dag-processor, triggerer) on free ports;
    plus the stack's own MLflow server when the test module sets ``STACK_SERVICES`` to include it.

    The state folder (about 84 MB: the databases, logs, lake, artifacts) is deleted once the stack is down, unless
    it did not come up or a test of the module failed: then it stays for the post-mortem and the teardown says where."""
    from sluice.stack import embedded

    services = getattr(request.module, "STACK_SERVICES", ("mailsink", "airflow"))
    home = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))  # short: the PostgreSQL socket path is limited
    ports = {"SLUICE_AIRFLOW_PORT": free_port(), "SLUICE_MLFLOW_PORT": free_port(), "SLUICE_SMTP_PORT": free_port()}
    env = {"SLUICE_HOME": str(home), "SLUICE_LAKE": str(home / "lake"), **{k: str(v) for k, v in ports.items()}}
    models = getattr(request.module, "STACK_MODELS", None)  # {file name: config dict}: a stack of its own models
    if models:
        import yaml

        (home / "models").mkdir()
        for fname, data in models.items():
            (home / "models" / fname).write_text(yaml.safe_dump(data))
        env["SLUICE_MODELS_DIR"] = str(home / "models")
    if "mlflow" in services:
        url = f"http://127.0.0.1:{ports['SLUICE_MLFLOW_PORT']}"
        env |= {"MLFLOW_TRACKING_URI": url, "AIRFLOW_CONN_MLFLOW_DEFAULT": url}
        env["SLUICE_SERVING_PORT_LOANS"] = str(free_port())
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = (
        f'{{"conn_type":"smtp","host":"127.0.0.1","port":{ports["SLUICE_SMTP_PORT"]},'
        '"extra":{"disable_tls":true,"disable_ssl":true,"from_email":"sluice@localhost"}}'
    )
    for k, v in env.items():
        monkeypatch_module.setenv(k, v)
    settings = embedded.Settings.from_env()
    failed_before, broke = request.session.testsfailed, False
    try:
        embedded.up(settings, services=services)
        api = AirflowAPI(settings.airflow_url, embedded.airflow_password(settings))
        yield settings, api
    except BaseException:  # the stack did not come up: its logs say why
        broke = True
        raise
    finally:
        embedded.down(settings)
        assert all(pid is None for pid in embedded.status(settings).values()), embedded.status(settings)
        if not broke and request.session.testsfailed == failed_before:
            shutil.rmtree(home)
        else:
            print(f"\n{request.module.__name__}: the stack or a test failed; its state folder is kept: {home}")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.timeout(1500))
    # in any order (pytest-randomly shuffles first), a test that takes its module's stack down runs last in it
    for item in [i for i in items if i.get_closest_marker("ends_stack")]:
        items.remove(item)
        after = max((k for k, other in enumerate(items) if other.module is item.module), default=len(items) - 1)
        items.insert(after + 1, item)
