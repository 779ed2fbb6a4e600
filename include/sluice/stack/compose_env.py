"""Write the ``.env`` file that docker-compose.yaml reads, with fresh random secrets.

docker-compose.yaml ships no secret and no default for one: every credential is a
``${VAR:?...}`` reference, so ``docker compose`` refuses to start until this file exists.
Run ``python -m sluice.stack.compose_env`` (or ``make compose-env``) once per checkout.

The file is created with mode 600 and is never overwritten without ``--force``: the
Postgres and MinIO containers keep the passwords they were first initialised with, so
rotating them under a stack that already has data locks the services out of their stores.

Pure python on purpose (no airflow import): it runs before any Airflow exists.
"""

from __future__ import annotations

import argparse
import os
import secrets
import string
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet

# Alphanumerics only: the values are embedded in URLs (postgresql://user:pw@host),
# JSON connection strings and shell lines, where "@", ":", "/", quotes or "%" would need escaping.
_ALPHABET = string.ascii_letters + string.digits
_PASSWORD_LENGTH = 32

#: Variables that are not secret, with the value written to a fresh ``.env``.
PLAIN_VARIABLES: dict[str, str] = {
    "AIRFLOW_ADMIN_USER": "admin",
    "SLUICE_LAKE_BUCKET": "sluice-lake",
    "MLFLOW_BUCKET": "sluice-mlflow",
    "MLFLOW_ADMIN_USER": "admin",
    "MLFLOW_SLUICE_USER": "sluice",
}

#: One line of documentation per variable, written above it in the ``.env`` file.
DESCRIPTIONS: dict[str, str] = {
    "AIRFLOW_UID": "uid the Airflow containers run as (group 0); your uid, so bind mounts stay readable",
    "AIRFLOW_FERNET_KEY": "encrypts connection passwords and variables in the Airflow metadata DB",
    "AIRFLOW_JWT_SECRET": "signs the JWTs between api-server, scheduler, workers and triggerer",
    "AIRFLOW_API_SECRET_KEY": "api-server session secret; also authenticates log fetches from workers",
    "AIRFLOW_ADMIN_USER": "login of the single admin user of Airflow's simple auth manager",
    "AIRFLOW_ADMIN_PASSWORD": "password of that user (http://127.0.0.1:8080)",
    "POSTGRES_PASSWORD": "password of the 'airflow' Postgres role (owner of the Airflow metadata DB)",
    "MLFLOW_DB_PASSWORD": "password of the 'mlflow' Postgres role (MLflow tracking + registry DB)",
    "REDIS_PASSWORD": "password of the Celery broker (Redis requirepass)",
    "MINIO_ROOT_USER": "MinIO root access key; also the S3 access key of Airflow and MLflow",
    "MINIO_ROOT_PASSWORD": "MinIO root secret key; also the S3 secret key of Airflow and MLflow",
    "SLUICE_LAKE_BUCKET": "MinIO bucket of the lake (SLUICE_LAKE=s3://<bucket>/lake)",
    "MLFLOW_BUCKET": "MinIO bucket of the MLflow artifact store (s3://<bucket>/mlflow)",
    "MLFLOW_ADMIN_USER": "admin of MLflow's basic-auth app (created on its first start)",
    "MLFLOW_ADMIN_PASSWORD": "password of the MLflow admin (http://127.0.0.1:5000)",
    "MLFLOW_SLUICE_USER": "Sluice's service account on MLflow: the account the Airflow services write with",
    "MLFLOW_SLUICE_PASSWORD": "password of Sluice's MLflow service account",
    "MLFLOW_SECRET_KEY": "MLflow server's session/CSRF secret (the same in every worker)",
}


def _password(length: int = _PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _default_uid() -> str:
    getuid = getattr(os, "getuid", None)
    uid = getuid() if getuid is not None else 50000
    # Running the Airflow image as root is refused by design; fall back to the image's own user.
    return str(uid if uid != 0 else 50000)


def generate_values(uid: str | None = None) -> dict[str, str]:
    """Return every variable of the ``.env`` file, secrets freshly drawn."""
    return {
        "AIRFLOW_UID": uid if uid is not None else _default_uid(),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode("ascii"),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(48),
        "AIRFLOW_ADMIN_USER": PLAIN_VARIABLES["AIRFLOW_ADMIN_USER"],
        "AIRFLOW_ADMIN_PASSWORD": _password(24),
        "POSTGRES_PASSWORD": _password(),
        "MLFLOW_DB_PASSWORD": _password(),
        "REDIS_PASSWORD": _password(),
        # MinIO wants an access key of 3+ characters and a secret key of 8+.
        "MINIO_ROOT_USER": "sluice" + secrets.token_hex(6),
        "MINIO_ROOT_PASSWORD": _password(40),
        "SLUICE_LAKE_BUCKET": PLAIN_VARIABLES["SLUICE_LAKE_BUCKET"],
        "MLFLOW_BUCKET": PLAIN_VARIABLES["MLFLOW_BUCKET"],
        "MLFLOW_ADMIN_USER": PLAIN_VARIABLES["MLFLOW_ADMIN_USER"],
        "MLFLOW_ADMIN_PASSWORD": _password(),
        "MLFLOW_SLUICE_USER": PLAIN_VARIABLES["MLFLOW_SLUICE_USER"],
        "MLFLOW_SLUICE_PASSWORD": _password(),
        "MLFLOW_SECRET_KEY": secrets.token_urlsafe(48),
    }


def render(values: dict[str, str]) -> str:
    """Render ``values`` as a docker-compose ``.env`` file, one commented ``KEY=value`` per variable."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"# Generated by `python -m sluice.stack.compose_env` at {stamp}.",
        "# Secrets for docker-compose.yaml: keep this file private (mode 600) and out of git.",
        "# Postgres and MinIO keep the passwords they were initialised with: regenerating this file",
        "# for a stack that has data needs `docker compose down -v` (which deletes that data).",
        "",
    ]
    for key, value in values.items():
        if description := DESCRIPTIONS.get(key):
            lines.append(f"# {description}")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


class EnvFileExistsError(FileExistsError):
    """The target ``.env`` exists and ``--force`` was not given."""


def write_env_file(path: Path, content: str, *, force: bool = False) -> None:
    """Write ``content`` to ``path`` with mode 600; refuse to replace an existing file unless ``force``."""
    if path.exists() and not force:
        raise EnvFileExistsError(
            f"{path} already exists; refusing to overwrite it. Its secrets may already be baked into "
            f"the Postgres and MinIO volumes. Pass --force to replace it with new secrets."
        )
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with mode 600, so the secrets are never readable by others, not even briefly.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o600)
        if force:
            os.replace(tmp_name, path)
        else:
            # link() fails if the target appeared meanwhile: no silent overwrite in a race either.
            try:
                os.link(tmp_name, path)
            except FileExistsError as exc:
                raise EnvFileExistsError(
                    f"{path} already exists; refusing to overwrite it. Pass --force to replace it."
                ) from exc
            except OSError:
                # Filesystems without hard links: fall back to the existence check done above.
                os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    os.chmod(path, 0o600)


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of a ``.env`` file (comments and blank lines skipped), as compose reads them."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: write it with `python -m sluice.stack.compose_env -o {path}`")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path}:{number}: expected KEY=value, got a line without '=' (fix or delete it)")
        values[key.strip()] = value.strip()
    return values


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sluice.stack.compose_env",
        description="Write the .env file docker-compose.yaml needs, with fresh random secrets (mode 600).",
    )
    parser.add_argument("--output", "-o", default=".env", help="file to write (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing file (new secrets)")
    parser.add_argument("--uid", default=None, help="AIRFLOW_UID to write (default: the current user's uid)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    path = Path(args.output)
    try:
        write_env_file(path, render(generate_values(uid=args.uid)), force=args.force)
    except EnvFileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} (mode 600); start the stack with: docker compose up -d --build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
