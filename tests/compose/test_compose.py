"""Static checks of the distributed stack (docker-compose.yaml): no Docker needed.

Docker cannot run in CI, so what can be decided by reading the file is decided here: the services
and their health checks, scalability of the workers, the import path, no credential in the file,
loopback-only ports, compose-lint's verdict, and the generator of the .env file it needs.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
INCLUDE = REPO / "include"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT_SERVICES = {"airflow-init", "minio-init", "mlflow-init"}
REQUIRED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "mlflow", "mlflow-init", "minio", "minio-init", "mailpit"}

# Key names that hold a credential (checked on environment keys and on JSON connection fields).
SECRET_KEY_RE = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|FERNET|JWT|CREDENTIAL|KEY|_AUTH$|^AUTH_", re.IGNORECASE
)
# A value made only of required compose interpolations: ${VAR:?msg} or ${VAR?msg}. Not ${VAR} (which
# ships an empty secret when unset) and not ${VAR:-default} (which ships the default).
ONLY_REFS_RE = re.compile(r"^(?:\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\})+$")
# scheme://user:password@host, the password split outside of ${...} (an error message may hold ':').
URL_USERINFO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://((?:\$\{[^}]*\}|[^@/\s\"'])*)@")
# A credential passed on a command line: --password x, --requirepass=x, PASSWORD=x.
COMMAND_SECRET_RE = re.compile(
    r"(?i)(?:(?<![\w-])--?[\w-]*(?:password|passwd|secret|token|requirepass|auth)[\w-]*[= ]|"
    r"\b[\w]*(?:PASSWORD|SECRET|TOKEN)[\w]*=)\s*[\"']?([^\s\"']+)"
)
# Placeholders in Airflow's config template for secrets it otherwise generates per process (not shared).
KNOWN_DEFAULT_SECRETS = ("{JWT_SECRET_KEY}", "{SECRET_KEY}", "{FERNET_KEY}")
REQUIRED_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")
ANY_VAR_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict), "docker-compose.yaml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def command_strings(service: dict[str, Any]) -> list[str]:
    """command, entrypoint and healthcheck test, each as one string (list forms joined by spaces)."""
    values = [
        service.get("command"),
        service.get("entrypoint"),
        (service.get("healthcheck") or {}).get("test"),
    ]
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.append(" ".join(str(part) for part in value))
    return out


def is_only_refs(value: str) -> bool:
    return bool(ONLY_REFS_RE.match(value.strip()))


def url_password_problems(value: str) -> list[str]:
    """Userinfo passwords in URLs inside ``value`` that are not made only of ${...} references."""
    problems = []
    for match in URL_USERINFO_RE.finditer(value):
        userinfo = match.group(1)
        # Split user:password at the first ':' outside ${...}.
        depth, split_at = 0, None
        for index, char in enumerate(userinfo):
            if userinfo.startswith("${", index):
                depth += 1
            elif char == "}" and depth:
                depth -= 1
            elif char == ":" and not depth:
                split_at = index
                break
        if split_at is None:
            continue  # user only, no password
        password = userinfo[split_at + 1 :]
        if password and not is_only_refs(password):
            problems.append(password)
    return problems


def json_secret_problems(value: str) -> list[str]:
    """Secret-named fields of a JSON connection whose value is not a ${...} reference."""
    try:
        data = json.loads(value)
    except ValueError:
        return []
    problems: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                secret_named = SECRET_KEY_RE.search(key) or key == "login"
                if isinstance(item, str) and secret_named and item and not is_only_refs(item):
                    problems.append(f"{key}={item}")
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return problems


def literal_credentials(data: dict[str, Any]) -> list[str]:
    """Every place in a parsed compose file where a credential is written as a literal."""
    found: list[str] = []
    for name, service in (data.get("services") or {}).items():
        for key, value in environment_of(service).items():
            where = f"{name}.environment.{key}"
            is_path_to_secret = key.endswith("_FILE") and value.startswith("/")  # the *_FILE convention
            if SECRET_KEY_RE.search(key) and value and not is_only_refs(value) and not is_path_to_secret:
                found.append(f"{where}: literal value for a secret-named key")
            found.extend(f"{where}: password in URL {p!r}" for p in url_password_problems(value))
            found.extend(f"{where}: JSON field {p!r}" for p in json_secret_problems(value))
        for part in command_strings(service):
            for match in COMMAND_SECRET_RE.finditer(part):
                if not match.group(1).startswith("$"):
                    found.append(f"{name}: credential on the command line: {part!r}")
            found.extend(f"{name}: password in URL {p!r} in command" for p in url_password_problems(part))
    return found


def compose_lint_executable() -> Path:
    candidate = Path(sys.executable).parent / ("compose-lint.exe" if os.name == "nt" else "compose-lint")
    if not candidate.exists():
        pytest.fail(f"compose-lint not found next to {sys.executable}; install requirements-dev.txt")
    return candidate


def compose_lint(path: Path) -> dict[str, Any]:
    # --no-env: grade the file as committed, not as interpolated with a developer's .env.
    result = subprocess.run(
        [str(compose_lint_executable()), "check", "--format", "json", "--no-env", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=path.parent,
        check=False,
    )
    assert result.returncode in (0, 1), f"compose-lint failed to run:\n{result.stdout}\n{result.stderr}"
    report = json.loads(result.stdout)
    assert not report.get("errors"), f"compose-lint could not lint {path}: {report['errors']}"
    return report


def run_compose_env(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(INCLUDE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "sluice.stack.compose_env", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def referenced_variables(data: Any, *, required_only: bool = False) -> set[str]:
    """Variables the parsed compose file interpolates (``$$`` is an escaped dollar, not a reference)."""
    pattern = REQUIRED_VAR_RE if required_only else ANY_VAR_RE
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            found |= referenced_variables(key, required_only=required_only)
            found |= referenced_variables(value, required_only=required_only)
    elif isinstance(data, list):
        for item in data:
            found |= referenced_variables(item, required_only=required_only)
    elif isinstance(data, str):
        found |= set(pattern.findall(data.replace("$$", "")))
    return found


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


# --------------------------------------------------------------------------- the file


def test_compose_file_parses_with_anchors_resolved(compose: dict[str, Any]) -> None:
    assert "services" in compose
    worker_env = environment_of(compose["services"]["airflow-worker"])
    # Keys that only the x-airflow-common anchor provides reached the service.
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert compose["services"]["airflow-worker"]["volumes"]


def test_required_services_exist(services: dict[str, Any]) -> None:
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            continue
        health = service.get("healthcheck") or {}
        test = health.get("test")
        assert not health.get("disable"), f"{name}: healthcheck disabled"
        assert test, f"{name}: long-running service without a healthcheck test"
        if isinstance(test, list):
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: empty healthcheck {test}"


def test_one_shot_jobs_gate_their_dependents(services: dict[str, Any]) -> None:
    for name in ONE_SHOT_SERVICES:
        assert services[name].get("restart", "no") == "no", f"{name}: a one-shot job must not restart"
        conditions = {dep: spec.get("condition") for dep, spec in services[name]["depends_on"].items()}
        assert set(conditions.values()) <= {"service_healthy", "service_completed_successfully"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_commands(services: dict[str, Any]) -> None:
    def text(name: str) -> str:
        return " ".join(command_strings({"command": services[name].get("command")}))

    assert "airflow db migrate" in text("airflow-init")
    assert "api-server" in text("airflow-apiserver")
    assert text("airflow-scheduler").strip() == "scheduler"
    assert text("airflow-dag-processor").strip() == "dag-processor"
    assert text("airflow-triggerer").strip() == "triggerer"
    assert text("airflow-worker").strip() == "celery worker"
    mlflow = services["mlflow"]["command"]
    assert mlflow[:2] == ["mlflow", "server"]
    assert mlflow[mlflow.index("--workers") + 1] == "1"
    assert mlflow[mlflow.index("--artifacts-destination") + 1].startswith("s3://")
    mlflow_env = environment_of(services["mlflow"])
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mc mb" in text("minio-init")
    assert text("mlflow-init") == "python -m sluice.stack.distributed mlflow-account"


def test_mlflow_requires_a_login_and_only_sluice_writes(services: dict[str, Any]) -> None:
    """MLflow runs its basic-auth app: a generated admin, Sluice's service account for the pipelines, READ for
    everyone else; the workers wait for the account, and every Airflow service signs in with it."""
    mlflow = services["mlflow"]
    command = [str(x) for x in mlflow["command"]]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    env = environment_of(mlflow)
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "PGPASSWORD"):
        assert is_only_refs(env[key]) and ":?" in env[key], f"mlflow.{key} must be ${{VAR:?...}}"
    ini_mount = [str(v) for v in mlflow.get("volumes") or [] if "basic_auth.ini" in str(v)]
    assert ini_mount and ini_mount[0].endswith(":ro") and env["MLFLOW_AUTH_CONFIG_PATH"] in ini_mount[0]
    import configparser

    ini = configparser.ConfigParser()
    ini.read(REPO / "docker" / "mlflow" / "basic_auth.ini")
    assert ini["mlflow"]["default_permission"] == "READ"
    assert not url_password_problems(ini["mlflow"]["database_uri"]) and "admin_password" not in ini["mlflow"]
    for name in AIRFLOW_SERVICES:
        aenv = environment_of(services[name])
        assert aenv["MLFLOW_TRACKING_USERNAME"].startswith("${MLFLOW_SLUICE_USER:?"), name
        assert is_only_refs(aenv["MLFLOW_TRACKING_PASSWORD"]), name
    assert services["airflow-worker"]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"
    assert services["mlflow-init"]["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_worker_is_scalable(services: dict[str, Any]) -> None:
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "a container_name makes --scale airflow-worker=N impossible"
    for port in worker.get("ports") or []:
        if isinstance(port, dict):
            assert not port.get("published"), f"fixed host port on the worker: {port}"
        else:
            parts = str(port).split(":")
            assert len(parts) == 1, f"fixed host port on the worker: {port}"


def test_airflow_services_import_include(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = environment_of(services[name])
        assert "/opt/airflow/include" in env.get("PYTHONPATH", "").split(":"), f"{name}: PYTHONPATH"
        mounts = [str(v) for v in services[name].get("volumes") or []]
        assert any(m.split(":")[:2] == ["./include", "/opt/airflow/include"] for m in mounts), (
            f"{name}: ./include is not mounted at /opt/airflow/include ({mounts})"
        )
        assert any(m.startswith("./dags:/opt/airflow/dags") for m in mounts), f"{name}: ./dags"
        assert any(m.startswith("./plugins:/opt/airflow/plugins") for m in mounts), f"{name}: ./plugins"


def test_airflow_environment(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = environment_of(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["SLUICE_LAKE"].startswith("s3://${SLUICE_LAKE_BUCKET")
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert is_only_refs(env[key]) and ":?" in env[key], f"{name}.{key} must be ${{VAR:?...}}"
        smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
        assert (smtp["host"], smtp["port"]) == ("mailpit", 1025)
        assert smtp["extra"]["disable_tls"] is True and smtp["extra"]["disable_ssl"] is True
        aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert aws["extra"]["endpoint_url"] == "http://minio:9000"
        assert env["AIRFLOW_CONN_MLFLOW_DEFAULT"] == "http://mlflow:5000"
        # checked from inside the container only: not bound to every interface
        assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"


def test_airflow_config_variables_exist() -> None:
    """Every AIRFLOW__SECTION__KEY names a real option: a typo is otherwise silently ignored."""
    spec = importlib.util.find_spec("airflow")  # locates the package without importing it
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    core = yaml.safe_load((root / "config_templates" / "config.yml").read_text(encoding="utf-8"))
    known = {(s.lower(), o.lower()) for s, section in core.items() for o in (section.get("options") or {})}
    provider = ast.parse((root / "providers" / "celery" / "get_provider_info.py").read_text(encoding="utf-8"))
    for node in ast.walk(provider):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            info = ast.literal_eval(node.value)
            for section, body in info.get("config", {}).items():
                known |= {(section.lower(), option.lower()) for option in body.get("options", {})}
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    unknown = set()
    for name, service in data["services"].items():
        for key in environment_of(service):
            if key.startswith("AIRFLOW__"):
                section, _, option = key[len("AIRFLOW__") :].partition("__")
                if (section.lower(), option.lower()) not in known:
                    unknown.add(f"{name}: {key}")
    assert not unknown, f"unknown Airflow options: {sorted(unknown)}"


# --------------------------------------------------------------------------- secrets and ports


def test_no_literal_credentials(compose: dict[str, Any]) -> None:
    found = literal_credentials(compose)
    assert not found, "credentials written into docker-compose.yaml:\n" + "\n".join(found)


def test_literal_credential_detector_catches_planted_secrets(compose: dict[str, Any]) -> None:
    """The detector itself must fail on each shape it claims to catch."""
    plants = {
        "environment": {"POSTGRES_PASSWORD": "hunter2"},
        "url": {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:hunter2@postgres/airflow"},
        "json": {"AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "password": "hunter2"}'},
        "defaulted": {"AIRFLOW__API_AUTH__JWT_SECRET": "${AIRFLOW_JWT_SECRET:-hunter2}"},
    }
    for shape, env in plants.items():
        broken = {"services": {"x": {"environment": env}}}
        assert literal_credentials(broken), f"detector missed a literal credential ({shape})"
    broken = {"services": {"x": {"command": ["redis-server", "--requirepass", "hunter2"]}}}
    assert literal_credentials(broken), "detector missed a credential on the command line"
    ok = {"services": {"x": {"command": ["sh", "-c", 'redis-server --requirepass "$$REDIS_PASSWORD"']}}}
    assert not literal_credentials(ok)
    # an option *value* that merely contains "auth" is no credential flag
    assert not literal_credentials({"services": {"x": {"command": ["mlflow", "server", "--app-name", "basic-auth"]}}})


def test_jwt_secret_comes_from_env_and_no_default_secret(compose_text: str, services: dict[str, Any]) -> None:
    for placeholder in KNOWN_DEFAULT_SECRETS:
        assert placeholder not in compose_text, f"Airflow's default secret placeholder {placeholder!r} found"
    for name in AIRFLOW_SERVICES:
        value = environment_of(services[name]).get("AIRFLOW__API_AUTH__JWT_SECRET", "")
        message = f"{name}: JWT secret not from ${{VAR:?...}}: {value}"
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), message


def test_published_ports_bound_to_loopback(services: dict[str, Any]) -> None:
    published = []
    for name, service in services.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port} not bound to 127.0.0.1"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} not bound to 127.0.0.1"
            published.append(name)
        assert "network_mode" not in service or service["network_mode"] != "host", name
    assert {"airflow-apiserver", "mlflow", "minio", "mailpit"} <= set(published)
    assert "postgres" not in published and "redis" not in published


def test_hardening(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert "no-new-privileges:true" in (service.get("security_opt") or []), name
        assert "ALL" in (service.get("cap_drop") or []), name
        assert not service.get("privileged"), name
        for volume in service.get("volumes") or []:
            assert "docker.sock" not in str(volume), f"{name}: docker socket mounted"
        image = str(service.get("image", ""))
        assert ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} not pinned"


def test_compose_lint_reports_no_high_findings() -> None:
    report = compose_lint(COMPOSE_FILE)
    severe = [
        f"{f['service']}: {f['rule_id']} {f['message']}"
        for f in report["findings"]
        if f["severity"].lower() in ("high", "critical") and not f.get("suppressed")
    ]
    assert not severe, "compose-lint HIGH/CRITICAL findings:\n" + "\n".join(severe)


def test_compose_lint_check_can_fail(tmp_path: Path, compose_text: str) -> None:
    """Sanity check of the check above: a planted credential must produce a HIGH finding."""
    planted = compose_text.replace(
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set, run make compose-env}",
        "POSTGRES_PASSWORD: hunter2",
        1,
    )
    assert planted != compose_text
    (tmp_path / "docker-compose.yaml").write_text(planted, encoding="utf-8")
    report = compose_lint(tmp_path / "docker-compose.yaml")
    assert any(f["severity"] == "high" for f in report["findings"])


# --------------------------------------------------------------------------- compose_env


def test_compose_env_writes_every_required_variable(tmp_path: Path, compose: dict[str, Any]) -> None:
    required = referenced_variables(compose, required_only=True)
    assert "AIRFLOW_FERNET_KEY" in required and "AIRFLOW_JWT_SECRET" in required
    result = run_compose_env("--output", str(tmp_path / ".env"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    values = read_env_file(tmp_path / ".env")
    missing = required - set(values)
    assert not missing, f"compose_env does not write {sorted(missing)}"
    assert all(values[name] for name in required), "empty value written"
    assert values["AIRFLOW_UID"].isdigit() and values["AIRFLOW_UID"] != "0"


def test_compose_env_values_are_random_and_valid(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    first, second = tmp_path / "a.env", tmp_path / "b.env"
    for path in (first, second):
        assert run_compose_env("--output", str(path), cwd=tmp_path).returncode == 0
    a, b = read_env_file(first), read_env_file(second)
    secrets = [key for key in a if SECRET_KEY_RE.search(key) or key == "MINIO_ROOT_USER"]
    assert len(secrets) >= 8
    for key in secrets:
        assert a[key] != b[key], f"{key} is the same in two runs"
        assert len(a[key]) >= 16, f"{key} is too short"
    Fernet(a["AIRFLOW_FERNET_KEY"].encode())  # raises if the key is not a valid Fernet key
    for path in (first, second):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_compose_env_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    assert run_compose_env("--output", str(target), cwd=tmp_path).returncode == 0
    before = target.read_text(encoding="utf-8")
    again = run_compose_env("--output", str(target), cwd=tmp_path)
    assert again.returncode != 0
    assert str(target) in again.stderr and "--force" in again.stderr
    assert target.read_text(encoding="utf-8") == before, "the existing file was modified"
    forced = run_compose_env("--output", str(target), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert target.read_text(encoding="utf-8") != before
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_compose_env_default_output_is_dot_env_in_cwd(tmp_path: Path) -> None:
    assert run_compose_env(cwd=tmp_path).returncode == 0
    assert (tmp_path / ".env").exists()


def test_compose_env_does_not_import_airflow(tmp_path: Path) -> None:
    loaded = "[m for m in sys.modules if m.split('.')[0] == 'airflow']"
    code = f"import sys, sluice.stack.compose_env\nassert not {loaded}, {loaded}"
    env = {**os.environ, "PYTHONPATH": str(INCLUDE)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_env_example_documents_every_variable(compose: dict[str, Any]) -> None:
    example = REPO / ".env.example"
    lines = example.read_text(encoding="utf-8").splitlines()
    documented = {}
    for index, line in enumerate(lines):
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            documented[match.group(1)] = (match.group(2), lines[index - 1] if index else "")
    referenced = referenced_variables(compose)
    missing = referenced - set(documented)
    assert not missing, f".env.example does not document {sorted(missing)}"
    for name, (value, previous) in documented.items():
        is_comment = previous.startswith("#") and not re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", previous)
        assert is_comment, f".env.example: {name} has no comment of its own above it"
        if SECRET_KEY_RE.search(name) or name == "MINIO_ROOT_USER":
            assert "change-me" in value, f".env.example: {name} must hold a change-me placeholder"
