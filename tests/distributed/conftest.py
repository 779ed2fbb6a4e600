"""The distributed topology (``make up-distributed``) for tests: one stack per session, own state and ports.

PostgreSQL (TCP, passwords), Redis (password), moto's S3 server, MLflow on PostgreSQL + S3, the SMTP sink and
Airflow with the CeleryExecutor and two Celery workers, started by ``sluice.stack.distributed`` under a fresh
``/tmp/sld-*`` home on free loopback ports, and stopped at the end of the session (nothing may be left).

The tier runs only when asked for (``make test-distributed`` or ``pytest tests/distributed/...``): ``make test``
collects the other tiers and skips this folder, which starts a stack of its own for minutes.

Fixtures:
- ``dstack``: a :class:`DistributedStack` (settings, REST client, lake, outbox, per-service stop/start/kill);
- ``dapi``: its Airflow REST client (:class:`sluice.stack.rest.AirflowClient`);
- ``dlake``: the lake on ``s3://`` (:func:`sluice.lake.open_lake`).

The models of the stack are the repository's, with the loans config made fast for a test (``FAST_LOANS``) in
the stack's own ``SLUICE_MODELS_DIR``; ``dstack.models_dir`` is that folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent

#: what the test process needs to reach the stack as its tasks do (lake, S3, MLflow, connections)
CLIENT_VARIABLES = (
    "SLUICE_LAKE",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "AIRFLOW_CONN_MLFLOW_DEFAULT",
    "AIRFLOW_CONN_SMTP_DEFAULT",
    "AIRFLOW_CONN_AWS_DEFAULT",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distributed: on the native distributed topology (make test-distributed)")


def _asked_for(config: pytest.Config) -> bool:
    """True when the command line names this folder or a file in it."""
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.resolve() != HERE and HERE not in collection_path.resolve().parents:
        return None
    return None if _asked_for(config) else True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.distributed)
            item.add_marker(pytest.mark.timeout(1800))


def fast_loans() -> dict[str, Any]:
    """The loans config with a short window and labels one day late: the loop fits in minutes. Its data window
    runs to April (the drift storm's days) and retrains are held 10 days apart (the storm's length)."""
    from machine import shared_machine_budgets

    from sluice.config import MODELS_DIR

    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["end_date"] = "2025-04-30"  # April: the drift storm's days (test_races.py), apart from the others
    data["labels"]["delay_days"] = 1
    data["training"].update(window_days=3, min_new_partitions=1, min_rows=2000)
    data["gate"]["floors"] = {"roc_auc": 0.6}
    shared_machine_budgets(data)
    # a cooldown as long as test_races.py's ten-day drift storm: one retraining in it is the rule, not luck
    data["monitoring"] = {"persistence": {"k": 3, "n": 3}, "cooldown_days": 10, "performance": {"min_rows": 10**9}}
    return data


class DistributedStack:
    """A running distributed stack: where things are, and the handles a fault test needs."""

    def __init__(self, d, models_dir: Path) -> None:
        from sluice.stack import compose_env, distributed

        self.d = d
        self.s = d.base
        self.models_dir = models_dir
        self.values = compose_env.read_env_file(d.env_file)
        self.env = distributed.airflow_env(d, self.values)
        self._api = None

    # ---------------------------------------------------------------------------------------- clients

    @property
    def api(self):
        """A REST client, logged in afresh when the api-server was restarted (its token survives that)."""
        from sluice.stack.rest import AirflowClient

        if self._api is None:
            self._api = AirflowClient(self.s.airflow_url, self.values["AIRFLOW_ADMIN_PASSWORD"])
        return self._api

    def lake(self):
        from sluice.lake import open_lake

        return open_lake(self.env["SLUICE_LAKE"])

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.d.s3_url,
            aws_access_key_id=self.values["MINIO_ROOT_USER"],
            aws_secret_access_key=self.values["MINIO_ROOT_PASSWORD"],
            region_name="us-east-1",
        )

    @property
    def outbox(self) -> Path:
        return self.s.outbox

    @property
    def log_dir(self) -> Path:
        return self.s.log_dir

    # ---------------------------------------------------------------------------------------- processes

    def services(self) -> list[str]:
        from sluice.stack import distributed

        return distributed.service_names(self.d)

    def pid(self, name: str) -> int | None:
        """The PID of a service (``postgres``, ``redis``, ``s3``, ``mailsink``, ``mlflow``, ``airflow-*``)."""
        from sluice.stack import distributed

        return distributed.status(self.d).get(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal a service's whole process group (a Celery worker and its forked task processes)."""
        pid = self.pid(name)
        if pid is None:
            raise AssertionError(f"{name} is not running: {self.status()}")
        os.killpg(os.getpgid(pid), sig)
        return pid

    def stop(self, name: str) -> bool:
        from sluice.stack import distributed

        return distributed.stop_service(self.d, name)

    def start(self, name: str) -> None:
        from sluice.stack import distributed

        distributed.start_service(self.d, name)
        if name == "airflow-apiserver":
            self._api = None

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def status(self) -> dict[str, int | None]:
        from sluice.stack import distributed

        return distributed.status(self.d)

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of each service with its children (MB): the figure issue 15 asks for."""
        import psutil

        out = {}
        for name, pid in self.status().items():
            if not pid:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
                out[name] = round(sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20, 1)
        return out


@pytest.fixture(scope="session")
def dstack(free_port):
    """The distributed stack, up for the whole session; stopped (and checked stopped) at its end."""
    from sluice.stack import distributed

    home = Path(tempfile.mkdtemp(prefix="sld-", dir="/tmp"))  # short: the PostgreSQL socket path is limited
    models = home / "models"
    models.mkdir()
    (models / "loans.yaml").write_text(yaml.safe_dump(fast_loans()))
    env = {
        "SLUICE_HOME": str(home),
        "SLUICE_MODELS_DIR": str(models),
        "SLUICE_AIRFLOW_PORT": str(free_port()),
        "SLUICE_MLFLOW_PORT": str(free_port()),
        "SLUICE_SMTP_PORT": str(free_port()),
        "SLUICE_PG_PORT": str(free_port()),
        "SLUICE_REDIS_PORT": str(free_port()),
        "SLUICE_S3_PORT": str(free_port()),
        "SLUICE_SCHEDULER_HEALTH_PORT": str(free_port()),
        "SLUICE_SERVING_PORT_LOANS": str(free_port()),
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    d = distributed.DistSettings.from_env()
    t0 = time.monotonic()
    try:
        distributed.up(d)
        stack = DistributedStack(d, models)
        print(f"\ndistributed stack up in {time.monotonic() - t0:.0f}s under {d.home}")
        for k in CLIENT_VARIABLES:
            mp.setenv(k, stack.env[k])
        yield stack
    finally:
        distributed.down(d)
        left = {k: v for k, v in distributed.status(d).items() if v}
        mp.undo()
        assert not left, f"processes left after down: {left}"
        shutil.rmtree(home, ignore_errors=True)  # kept when something was left running, to look at


@pytest.fixture(scope="session")
def dapi(dstack):
    return dstack.api


@pytest.fixture
def dlake(dstack):
    return dstack.lake()


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per fault and concurrency record of the session: the figures CI's log keeps (the full records
    are in ``$SLUICE_FAULTS_LOG``)."""
    import faults

    if not faults.RECORDED:
        return
    tr = terminalreporter
    tr.section(f"fault and concurrency records (full JSON lines: {faults.faults_log()})")
    for rec in faults.RECORDED:
        name = rec.get("fault")
        if name == "concurrency":
            tr.write_line(
                f"{name}: 1 worker {rec['one_worker_s']} s, 2 workers {rec['two_workers_s']} s, speed-up "
                f"{rec['speedup']}x; tasks per worker {rec['tasks_per_worker_two_workers']}; "
                f"memory MB (2 workers) {rec['memory_mb_two_workers']}"
            )
            continue
        if name == "loop":
            tr.write_line(
                f"loop: seconds {rec['seconds']}; tasks per worker {rec['tasks_per_worker']}; "
                f"memory MB {rec['memory_mb']}"
            )
            continue
        recovery = "n/a" if rec.get("recovery_s") is None else f"{rec['recovery_s']:.1f} s"
        tr.write_line(f"{name}: {rec['what']}")
        tr.write_line(f"    lost: {rec['lost'] or 'nothing'}; recovery {recovery}")
        tr.write_line(f"    before: {json.dumps(rec['before'], default=str)[:300]}")
        tr.write_line(f"    after:  {json.dumps(rec['after'], default=str)[:300]}")
