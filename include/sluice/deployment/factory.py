"""The deployment target a model's config chooses; the targets import the interface, never this module."""

from __future__ import annotations

from sluice.config import ModelConfig
from sluice.deployment.targets import DeploymentTarget


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
