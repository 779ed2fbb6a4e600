"""``python -m sluice.stack.embedded env`` prints what the stack's processes run with, connections included,
from one source (no second copy in the Makefile), and fails with a sentence, not a traceback, without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sluice.runtime import REPO_ROOT, Settings
from sluice.stack import embedded

pytestmark = pytest.mark.unit

CONNS = ("AIRFLOW_CONN_MLFLOW_DEFAULT", "AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT")


def test_airflow_env_carries_the_connections_on_the_stack_ports(tmp_path, monkeypatch) -> None:
    for name in CONNS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(embedded, "postgres_uri", lambda s, db: f"postgresql+psycopg2://postgres@/{db}")
    s = Settings(home=tmp_path, airflow_port=58080, mlflow_port=55000, smtp_port=58025)
    env = embedded.airflow_env(s)
    assert env["AIRFLOW_CONN_MLFLOW_DEFAULT"] == "http://127.0.0.1:55000"
    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (smtp["conn_type"], smtp["host"], smtp["port"]) == ("smtp", "127.0.0.1", 58025)
    assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["conn_type"] == "aws"
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", '{"conn_type":"smtp","host":"relay.example"}')
    assert embedded.airflow_env(s)["AIRFLOW_CONN_SMTP_DEFAULT"] == '{"conn_type":"smtp","host":"relay.example"}'


def test_the_makefile_keeps_no_second_copy_of_the_connections() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    copies = [line for line in makefile.splitlines() if "AIRFLOW_CONN_" in line and not line.startswith("#")]
    assert not copies, copies


def test_env_without_a_running_stack_says_what_to_do(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"SLUICE_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-m", "sluice.stack.embedded", "env"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert "PostgreSQL is not running" in out.stderr and "make up" in out.stderr
    assert "Traceback" not in out.stderr
