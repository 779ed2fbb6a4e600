"""The one small interface every deployment target implements (``sluice.deployment.factory`` picks one).

A target puts a :class:`Release` (an exact registered version with the sha256 of its artifact) behind an
address. ``deploy`` switches traffic to the release and returns the new :class:`Endpoint`; it raises
:class:`DeploymentError` and leaves the previous release serving when the new one cannot be brought up.
``health`` says whether the live address answers; ``current`` what it serves; ``undeploy`` takes it down;
``invoke`` scores records through the live address (the smoke test's path).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from sluice.registry.artifact import DeploymentError, Release

__all__ = ["DeploymentError", "DeploymentTarget", "Endpoint", "Release"]


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
