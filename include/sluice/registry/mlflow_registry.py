"""A small typed layer over ``MlflowClient``: aliases instead of stages, lineage on every run and version.

Registered model name = model name; one experiment per model (``sluice/<model>``). The ``champion`` alias
is what serves, ``challenger`` what passed the gate and waits for deployment.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from sluice.runtime import REPO_ROOT

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
#: what the serving environment needs to load a Sluice sklearn model (pinned from this environment)
SERVING_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow")


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """The code version for lineage: ``$SLUICE_GIT_SHA`` (images), else the checkout's HEAD."""
    if sha := os.environ.get("SLUICE_GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pip_requirements() -> list[str]:
    """Pinned requirements for logged models: avoids MLflow's slow inference (9 s) and drift between envs."""
    return [f"{p}=={metadata.version(p)}" for p in SERVING_PACKAGES]


class Registry:
    def __init__(self, tracking_uri: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def experiment_id(self, model: str) -> str:
        name = f"sluice/{model}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, tags={"sluice.model": model})
        except Exception:  # created concurrently by another run
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def by_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version behind ``alias``, or None (no registered model yet, or no such alias)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(model, alias)
        except MlflowException as exc:
            if "not found" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in str(exc):
                return None
            raise

    def register(self, model: str, model_uri: str, run_id: str, tags: Mapping[str, Any]) -> ModelVersion:
        """A new version of ``model`` from a logged model (``models:/m-<id>``), with its tags."""
        import mlflow

        version = mlflow.register_model(model_uri, model, tags=dict(tags))
        if version.run_id != run_id:
            raise RuntimeError(f"{model_uri} belongs to run {version.run_id}, not {run_id}")
        return version

    def set_alias(self, model: str, alias: str, version: str | int) -> None:
        self.client.set_registered_model_alias(model, alias, str(version))

    def delete_alias(self, model: str, alias: str) -> None:
        self.client.delete_registered_model_alias(model, alias)

    def versions(self, model: str) -> list[Any]:
        return sorted(self.client.search_model_versions(f"name='{model}'"), key=lambda v: int(v.version))

    def run(self, run_id: str) -> Run:
        return self.client.get_run(run_id)
