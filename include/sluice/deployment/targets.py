"""The one small interface every deployment target implements, and the target chosen by a model's config.

A target puts a :class:`Release` (an exact registered version with the sha256 of its artifact) behind an
address. ``deploy`` switches traffic to the release and returns the new :class:`Endpoint`; it raises
:class:`DeploymentError` and leaves the previous release serving when the new one cannot be brought up.
``health`` says whether the live address answers; ``current`` what it serves; ``undeploy`` takes it down;
``invoke`` scores records through the live address (the smoke test's path).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from sluice.config import ModelConfig


class DeploymentError(RuntimeError):
    """A release could not be deployed; the message says why and what still serves."""


@dataclass(frozen=True)
class Release:
    model: str
    version: str
    model_uri: str  # models:/<model>/<version>
    sha256: str  # of the serialized model file, recorded at training
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Endpoint:
    target: str
    model: str
    version: str | None
    address: str | None  # the stable URL clients call (local) or the endpoint name (sagemaker)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class DeploymentTarget(Protocol):
    name: str

    def deploy(self, release: Release) -> Endpoint: ...

    def health(self) -> bool: ...

    def current(self) -> Endpoint | None: ...

    def undeploy(self) -> None: ...

    def invoke(self, records: list[dict[str, Any]]) -> list[float]: ...


def target_for(cfg: ModelConfig) -> DeploymentTarget:
    """The deployment target the model's config chooses (``deploy.target``)."""
    kind = cfg.deploy.target
    if kind == "local":
        from sluice.deployment.local import LocalTarget

        return LocalTarget(cfg)
    if kind == "sagemaker":
        from sluice.deployment.sagemaker import SageMakerTarget

        return SageMakerTarget(cfg)
    if kind == "batch":
        from sluice.deployment.batch_target import BatchTarget

        return BatchTarget(cfg)
    raise ValueError(f"model {cfg.name!r}: unknown deploy.target {kind!r}; expected local, sagemaker or batch")
