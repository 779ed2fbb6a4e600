"""The exact bytes of a model version: its sha256 recorded at training, checked wherever it is loaded.

Training hashes the serialized model file (``model.skops``, named by the MLmodel file) right after logging
and tags the run and, on registration, the version with ``model.sha256``. Every consumer -- infra
validation, the model server, batch scoring -- goes through :func:`fetch_release`, which downloads the
version into a local cache and refuses it if the bytes are not the ones training wrote (an artifact
changed after registration, a truncated download, a tampered store).

It lives in the registry because both sides of a version meet here: training (which writes the hash) and
serving, deployment and batch scoring (which check it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

SHA_TAG, FILE_TAG = "model.sha256", "model.file"
#: mlflow's switch for deserializing models (default on); when it is set, mlflow loads and decides.
ALLOW_DESERIALIZATION = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


class DeploymentError(RuntimeError):
    """A release could not be loaded or deployed; the message says why and what still serves."""


@dataclass(frozen=True)
class Release:
    """An exact registered version with the sha256 of its serialized model file."""

    model: str
    version: str
    model_uri: str  # models:/<model>/<version>
    sha256: str  # of the serialized model file, recorded at training
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ArtifactMismatch(DeploymentError):
    """The model file's bytes are not the ones recorded at training."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sklearn_flavor(model_dir: Path) -> dict[str, Any]:
    """The ``sklearn`` flavor of an MLflow model directory's MLmodel file (it names the model file)."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.exists():
        raise DeploymentError(f"{model_dir} is not an MLflow model directory: it has no MLmodel file")
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    flavor = flavors.get("sklearn") or {}
    if not flavor.get("pickled_model"):
        raise DeploymentError(f"{mlmodel}: no sklearn flavor with a 'pickled_model' entry (flavors: {sorted(flavors)})")
    return dict(flavor)


def model_file(model_dir: Path) -> Path:
    """The serialized model inside an MLflow model directory, as its MLmodel file names it."""
    return model_dir / str(sklearn_flavor(model_dir)["pickled_model"])


def model_dir_sha256(model_dir: Path) -> tuple[str, str]:
    """(file name, sha256) of the serialized model in ``model_dir``."""
    path = model_file(model_dir)
    if not path.exists():
        raise DeploymentError(f"{model_dir}: the model file {path.name} named by MLmodel is missing")
    return path.name, file_sha256(path)


def release_of(registry: Any, model: str, version: str | int) -> Release:
    """The :class:`Release` of a registered version, with the sha256 recorded at training."""
    mv = registry.client.get_model_version(model, str(version))
    sha = mv.tags.get(SHA_TAG) or ""
    if not sha and mv.run_id:
        sha = registry.run(mv.run_id).data.tags.get(SHA_TAG, "")
    if not sha:
        raise DeploymentError(
            f"{model} v{mv.version} has no {SHA_TAG} tag: it was not registered by a Sluice training run, so its "
            "bytes cannot be checked; retrain it with the training DAG"
        )
    return Release(
        model=model,
        version=str(mv.version),
        model_uri=f"models:/{model}/{mv.version}",
        sha256=sha,
        run_id=mv.run_id or "",
    )


def cache_root() -> Path:
    return Path(os.environ.get("SLUICE_HOME", ".sluice")).resolve() / "models"


def fetch_release(release: Release, cache: Path | None = None) -> Path:
    """A local directory holding exactly the release's model files; raises :class:`ArtifactMismatch`.

    Downloads into a temporary directory next to the cache and renames it into place, so a killed
    download never leaves a half-written model in the cache. A cached copy is re-hashed on every use.
    """
    import mlflow.artifacts

    root = cache or cache_root()
    dest = root / release.model / f"v{release.version}-{release.sha256[:16]}"
    if dest.exists():
        _check(release, dest)
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{release.model}-v{release.version}-", dir=root))
    try:
        log.info("downloading %s into %s", release.model_uri, dest)
        mlflow.artifacts.download_artifacts(artifact_uri=release.model_uri, dst_path=str(tmp))
        _check(release, tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(dest)
        except OSError:  # another process put the same verified bytes there first
            if not dest.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check(release: Release, model_dir: Path) -> None:
    name, got = model_dir_sha256(model_dir)
    if got != release.sha256:
        raise ArtifactMismatch(
            f"{release.model} v{release.version}: {name} has sha256 {got[:16]}..., but training recorded "
            f"{release.sha256[:16]}...; the artifact changed after registration. Refusing to load it: "
            "retrain, or restore the artifact from a backup"
        )


def load_model(model_dir: Path) -> Any:
    """The fitted pipeline of a verified model directory (skops, with the types trusted at training).

    A skops file is loaded with skops itself, as ``mlflow.sklearn.load_model`` does it -- the same
    ``skops.io.load(file, trusted=<the flavor's skops_trusted_types>)``, so a type outside skops' defaults
    and that list is refused the same way -- without importing mlflow, which took a third of a model
    server's start. Anything else (pickle, code paths, ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` set) goes
    through mlflow, which decides as it always did.
    """
    flavor = sklearn_flavor(model_dir)
    if flavor.get("serialization_format") != "skops" or flavor.get("code") or ALLOW_DESERIALIZATION in os.environ:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(model_dir))
    import skops.io

    return skops.io.load(model_dir / str(flavor["pickled_model"]), trusted=flavor.get("skops_trusted_types"))
