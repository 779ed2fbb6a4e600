"""docker-compose.yaml and the native distributed stack (``make up-distributed``) describe one topology.

The native stack reads its Airflow and MLflow environments from the compose file; these tests decide, without
starting anything, that the two cannot drift apart: the same services, the same variables (the values equal up
to the service addresses, except the overrides the native stack lists with a reason), the same commands, and
nothing the native stack starts listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.stack import compose_env, distributed

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
#: compose service names that must not survive localization (they do not resolve outside Docker)
COMPOSE_HOSTS = ("postgres", "redis", "minio", "mlflow", "mailpit", "airflow-apiserver")
#: variables compose hands an Airflow service for its start script only (the native stack does the same
#: work in Python: write_admin_password) or for Docker itself
START_SCRIPT_ONLY = {"SLUICE_ADMIN_USER", "SLUICE_ADMIN_PASSWORD", "DUMB_INIT_SETSID"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> distributed.DistSettings:
    home = tmp_path_factory.mktemp("native")
    env = {
        "SLUICE_HOME": str(home),
        "SLUICE_AIRFLOW_PORT": "18080",
        "SLUICE_MLFLOW_PORT": "15000",
        "SLUICE_SMTP_PORT": "18025",
        "SLUICE_PG_PORT": "15432",
        "SLUICE_REDIS_PORT": "16379",
        "SLUICE_S3_PORT": "19000",
    }
    return distributed.DistSettings.from_env(env)


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    return compose_env.generate_values(uid="1000")


@pytest.fixture(scope="module")
def native_env(dist, values) -> dict[str, str]:
    return distributed.airflow_env(dist, values)


def _words(command: Any) -> list[str]:
    return command.split() if isinstance(command, str) else [str(x) for x in command]


def test_every_compose_service_has_a_native_counterpart(compose) -> None:
    assert set(distributed.NATIVE_SERVICES) == set(compose["services"]), (
        "docker-compose.yaml and sluice.stack.distributed.NATIVE_SERVICES list different services: "
        f"only in compose {sorted(set(compose['services']) - set(distributed.NATIVE_SERVICES))}, "
        f"only native {sorted(set(distributed.NATIVE_SERVICES) - set(compose['services']))}"
    )


def test_airflow_commands_are_the_compose_commands(compose, dist) -> None:
    native = distributed.airflow_processes(dist)
    for service, words in distributed.AIRFLOW_COMMANDS.items():
        command = compose["services"][service]["command"]
        if service == "airflow-apiserver":  # a script that writes the password file, then execs the server
            assert f"exec airflow {' '.join(words)}\n" in command[-1], command
        else:
            assert _words(command) == words, service
        names = distributed.WORKERS if service == "airflow-worker" else (service,)
        for name in names:
            argv = native[name]
            # `airflow <words>` or `python -m sluice.airflow.preload <words>` (the preloader runs airflow's main)
            start = 1 if Path(argv[0]).name == "airflow" else argv.index("sluice.airflow.preload") + 1
            assert argv[start : start + len(words)] == words, (name, argv)
    assert len(distributed.WORKERS) == 2
    for name in distributed.WORKERS:  # two workers on one machine: their own Celery name and PID file
        argv = native[name]
        assert argv[argv.index("--celery-hostname") + 1].startswith(f"{name}@")
        assert argv[argv.index("--pid") + 1].endswith(f"{name}.celery.pid")


def test_every_compose_airflow_variable_is_set_natively_with_the_same_value(compose, dist, values, native_env) -> None:
    ports = distributed.service_ports(dist)
    for service in distributed.AIRFLOW_COMMANDS:
        block = compose["services"][service]["environment"]
        for key, raw in block.items():
            if key in START_SCRIPT_ONLY:
                continue
            assert key in native_env, f"{service}: {key} is not set by the native stack"
            if key in distributed.NATIVE_OVERRIDES or key == "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE":
                continue
            expected = distributed.interpolate(str(raw), values)
            for svc, (inner, host, port) in ports.items():
                expected = expected.replace(f"//{svc}:{inner}", f"//{host}:{port}")
                expected = expected.replace(f"@{svc}:{inner}", f"@{host}:{port}")
            if expected.startswith("{"):
                data = json.loads(expected)
                if data.get("host") in ports:
                    data["host"], data["port"] = ports[data["host"]][1:]
                assert json.loads(native_env[key]) == data, key
            else:
                assert native_env[key] == expected, key
    assert native_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_native_overrides_are_explained_and_real(compose, native_env, values, dist) -> None:
    block = compose["x-airflow-env"]
    for key, why in distributed.NATIVE_OVERRIDES.items():
        assert key in block, f"{key} is overridden natively but compose does not set it"
        assert len(why) > 20, f"{key}: say why the native value differs"


def test_no_compose_host_survives_in_the_native_environments(native_env, dist, values) -> None:
    envs = {"airflow": native_env, "mlflow": distributed.mlflow_service_env(dist, values)}
    for what, env in envs.items():
        for key, value in env.items():
            for host in COMPOSE_HOSTS:
                # an address (//host:port, @host:port, a JSON "host"), not a user name in user:password@
                pattern = rf"((//|@){re.escape(host)}:\d+(?![\w@])|\"host\": \"{re.escape(host)}\")"
                assert not re.search(pattern, value), (what, key, value[:120])
    ini = Path(distributed.mlflow_service_env(dist, values)["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert f"@127.0.0.1:{dist.pg_port}/mlflow" in ini and "@postgres" not in ini


def test_mlflow_command_and_environment_are_the_compose_ones(compose, dist, values) -> None:
    service = compose["services"]["mlflow"]
    theirs = [distributed.interpolate(str(x), values) for x in service["command"]]
    ours = distributed.mlflow_command(dist, values)
    assert Path(ours[0]).name == "mlflow" and ours[1:2] == theirs[1:2]

    def options(argv: list[str]) -> dict[str, str]:
        return {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--")}

    o_theirs, o_ours = options(theirs), options(ours)
    assert set(o_theirs) == set(o_ours)
    assert o_ours["--app-name"] == "basic-auth"
    local = {"--host", "--port", "--allowed-hosts"}
    assert {k: v for k, v in o_theirs.items() if k not in local} == {k: v for k, v in o_ours.items() if k not in local}
    assert o_ours["--host"] == "127.0.0.1" and o_ours["--port"] == str(dist.base.mlflow_port)
    assert set(service["environment"]) <= set(distributed.mlflow_service_env(dist, values))


def test_native_stack_binds_only_loopback(dist, values, native_env) -> None:
    argv = " ".join(" ".join(c) for c in distributed.airflow_processes(dist).values())
    argv += " " + " ".join(distributed.mlflow_command(dist, values))
    assert "0.0.0.0" not in argv
    assert native_env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert native_env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    for name in distributed.airflow_processes(dist):
        if name in ("airflow-scheduler", "airflow-triggerer", *distributed.WORKERS):
            # their log servers bind every interface in code: not started (logs are read from the shared folder)
            assert "--skip-serve-logs" in distributed.airflow_processes(dist)[name], name
    conf = distributed.redis_conf(dist, values).read_text()
    assert "bind 127.0.0.1\n" in conf and f"requirepass {values['REDIS_PASSWORD']}" in conf
    assert distributed.redis_conf(dist, values).stat().st_mode & 0o777 == 0o600


def test_env_file_gets_new_variables_and_keeps_old_values(dist) -> None:
    dist.home.mkdir(parents=True, exist_ok=True)
    first = distributed.ensure_env_file(dist)
    assert dist.env_file.stat().st_mode & 0o777 == 0o600
    trimmed = {k: v for k, v in first.items() if k != "MLFLOW_SECRET_KEY"}
    compose_env.write_env_file(dist.env_file, compose_env.render(trimmed), force=True)
    again = distributed.ensure_env_file(dist)
    assert {k: again[k] for k in trimmed} == trimmed, "existing secrets must be kept (they are in the databases)"
    assert again["MLFLOW_SECRET_KEY"], "a variable added since must be generated"


def test_interpolation_follows_compose_rules() -> None:
    vals = {"A": "x", "EMPTY": ""}
    assert distributed.interpolate("${A:?need A}-${B:-dflt}-$$HOME", vals) == "x-dflt-$HOME"
    with pytest.raises(KeyError, match="need B"):
        distributed.interpolate("${B:?need B}", vals)
    with pytest.raises(KeyError):
        distributed.interpolate("${EMPTY:?empty}", vals)
