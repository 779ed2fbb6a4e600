"""Continuous delivery as plain Python: resolve a release, infra-validate it, deploy it, smoke-test it, and
only then move ``champion``; on a failed smoke test, redeploy the previous champion and leave the alias.

The Airflow operators and ``python -m sluice models rollback`` call these same functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from sluice.config import ModelConfig
from sluice.deployment import shadow
from sluice.deployment.infra import infra_validate, prediction_problems, sample_records
from sluice.deployment.targets import DeploymentError, DeploymentTarget, Endpoint, Release
from sluice.lake import Lake
from sluice.registry import ledger
from sluice.registry.artifact import release_of
from sluice.registry.ledger import promotion_lock
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

log = logging.getLogger(__name__)

DEPLOYED_TAG = "sluice.deployed"


class InfraValidationFailed(DeploymentError):
    def __init__(self, report: Mapping[str, Any]) -> None:
        self.report = dict(report)
        super().__init__(
            f"{report['model']} v{report['version']} failed infra validation: " + "; ".join(report["failed"])
        )


class SmokeTestFailed(DeploymentError):
    """The live address did not serve the new version correctly; the previous champion was redeployed."""


class ShadowRefused(DeploymentError):
    """The version's live shadow comparison says it is worse than the champion (or says nothing while
    ``deploy.require_shadow_days`` asks for it): it is not deployed and stays where it is."""

    def __init__(self, model: str, version: str, reason: str, evidence: Mapping[str, Any] | None) -> None:
        self.evidence = dict(evidence) if evidence else None
        self.reason = reason
        super().__init__(f"{model} v{version} refused by its shadow comparison: {reason}")


def resolve(
    cfg: ModelConfig, registry: Registry, *, action: str = "deploy", version: str | None = None
) -> dict[str, Any]:
    """Which release to deploy: the given version, the challenger, or (rollback) the previous champion."""
    champ = registry.by_alias(cfg.name, CHAMPION)
    current = champ.version if champ else None
    if action == "rollback":
        target, why = _rollback_target(cfg, registry, current, version)
    elif action == "deploy":
        if version:
            target, why = str(version), f"version {version} requested"
        else:
            chall = registry.by_alias(cfg.name, CHALLENGER)
            if chall is None:
                return {"deploy": False, "why": f"{cfg.name} has no '{CHALLENGER}' to deploy", "champion": current}
            target, why = str(chall.version), f"new challenger v{chall.version}"
    else:
        raise ValueError(f"unknown action {action!r}; expected 'deploy' or 'rollback'")
    release = release_of(registry, cfg.name, target)
    log.info("%s: %s chooses v%s: %s", cfg.name, action, target, why)
    return {
        "deploy": True,
        "release": release.to_dict(),
        "version": target,
        "champion": current,
        "action": action,
        "why": why,
    }


def shadow_check(
    cfg: ModelConfig,
    lake: Lake,
    registry: Registry,
    plan: Mapping[str, Any],
    *,
    who: str = "",
    dag_id: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """The plan with the version's live shadow evidence (``plan["shadow"]``) and what
    ``deploy.require_shadow_days`` makes of it: unchanged to deploy, ``deploy: False`` while the version waits
    for labelled shadow days, :class:`ShadowRefused` (after a ledger entry and the ``shadow.verdict`` tag) when
    it is worse live. Rollbacks go back to a version that already served, and are not checked."""
    if not plan.get("deploy") or plan.get("action") != "deploy":
        return dict(plan)
    version = str(plan["version"])
    evidence = None
    uri = ""
    if lake.partitions(shadow.ZONE, shadow.shadow_name(cfg.name, version)):
        try:
            evidence = shadow.compare(cfg, lake, version)
            uri = shadow.write_evidence(lake, evidence)
        except (OSError, ValueError) as exc:
            if cfg.deploy.require_shadow_days:
                raise  # required evidence that cannot be read fails the deployment, with the reason
            log.warning("%s v%s: shadow evidence unreadable, not required, deploying: %s", cfg.name, version, exc)
    verdict = shadow.decide(cfg, evidence)
    log.info("%s v%s shadow: %s (%s)", cfg.name, version, verdict["decision"], verdict["reason"])
    out = {**plan, "shadow": {**verdict, "evidence": evidence, "evidence_uri": uri}}
    if evidence is not None:
        registry.client.set_model_version_tag(cfg.name, version, shadow.VERDICT_TAG, evidence["verdict"])
    if verdict["decision"] == shadow.WAIT:
        return {**out, "deploy": False, "why": verdict["reason"]}
    if verdict["decision"] == shadow.REFUSE:
        with promotion_lock(cfg.name):
            ledger.append(
                registry,
                cfg.name,
                alias=CHALLENGER,
                from_version=version,
                to_version=version,
                why=f"not deployed: {verdict['reason']}",
                who=who or "sluice",
                dag_id=dag_id,
                run_id=run_id,
                evidence=uri,
                extra={"decision": "refused by shadow"},
            )
        raise ShadowRefused(cfg.name, version, verdict["reason"], evidence)
    return out


def _rollback_target(cfg: ModelConfig, registry: Registry, current: str | None, version: Any) -> tuple[str, str]:
    """The version a rollback goes to: the one asked for (an earlier champion of this model, not the current one),
    else the previous champion in the ledger."""
    earlier = [v for v in ledger.former_champions(registry, cfg.name) if v != current]
    if version in (None, ""):
        target = ledger.previous_champion(registry, cfg.name)
        if target is None:
            raise DeploymentError(
                f"{cfg.name}: the ledger records no earlier champion, so there is nothing to roll back to "
                f"(champion is {'v' + current if current else 'unset'}); deploy a version explicitly instead"
            )
        return target, f"rollback from v{current} to the previous champion v{target}"
    wanted = str(version).strip().removeprefix("v")
    allowed = ", ".join(f"v{v}" for v in earlier) or "none"
    if wanted == current:
        raise DeploymentError(
            f"{cfg.name}: rollback version {version!r} is the current champion; roll back to an earlier "
            f"champion instead (allowed: {allowed})"
        )
    if wanted not in earlier:
        registered = {str(v.version) for v in registry.versions(cfg.name)}
        what = "was never champion" if wanted in registered else "is not a registered version of this model"
        raise DeploymentError(
            f"{cfg.name}: rollback version {version!r} {what}; allowed: {allowed} (earlier champions in the ledger)"
        )
    return wanted, f"rollback from v{current} to v{wanted} (requested version)"


def previous_release(registry: Registry, model: str, version: str | None) -> Release | None:
    return release_of(registry, model, version) if version else None


def validate(
    cfg: ModelConfig, lake: Lake, registry: Registry, release: Release, **kwargs: Any
) -> tuple[dict[str, Any], str]:
    """Infra validation with its report stored in the lake and on the version's MLflow run; raises on FAIL."""
    report = infra_validate(cfg, lake, release, **kwargs)
    key = f"reports/{cfg.name}/deployments/v{release.version}/infra_validation.json"
    lake.put_files(key.rsplit("/", 1)[0], {"infra_validation.json": json.dumps(report, indent=1).encode()})
    if release.run_id:
        registry.client.log_dict(release.run_id, report, f"deployment/infra_validation_v{release.version}.json")
    registry.client.set_model_version_tag(
        cfg.name, release.version, "infra.validation", "PASS" if report["passed"] else "FAIL"
    )
    if not report["passed"]:
        raise InfraValidationFailed(report)
    return report, lake.uri(key)


def smoke_test(cfg: ModelConfig, lake: Lake, target: DeploymentTarget, release: Release) -> dict[str, Any]:
    """Score sampled rows through the live address: the right version answers, one sane prediction per row."""
    records, ds = sample_records(cfg, lake, cfg.deploy.smoke_rows, seed=int(release.version) + 1)
    problems: list[str] = []
    try:
        preds = target.invoke(records)
        problems = prediction_problems(cfg, {"predictions": preds}, len(records))
    except Exception as exc:  # any failure of the live path fails the smoke test, with its reason
        problems = [f"{type(exc).__name__}: {exc}"]
    live = target.current()
    if live is None or live.version != release.version:
        problems.append(f"the target reports v{live.version if live else None} live, expected v{release.version}")
    if not target.health():
        problems.append("the live address is not healthy")
    return {"passed": not problems, "problems": problems, "rows": len(records), "features_ds": ds}


def deploy_and_verify(
    cfg: ModelConfig, lake: Lake, target: DeploymentTarget, release: Release, previous: Release | None
) -> dict[str, Any]:
    """Deploy, smoke-test; on failure redeploy ``previous`` (if any) and raise SmokeTestFailed."""
    endpoint = target.deploy(release)
    smoke = smoke_test(cfg, lake, target, release)
    if smoke["passed"]:
        return {"endpoint": endpoint.to_dict(), "smoke": smoke}
    return rollback_after_failure(cfg, target, release, previous, "; ".join(smoke["problems"]))


def rollback_after_failure(
    cfg: ModelConfig, target: DeploymentTarget, release: Release, previous: Release | None, why: str
) -> dict[str, Any]:
    log.error("smoke test of %s v%s failed: %s", cfg.name, release.version, why)
    if previous is None:
        target.undeploy()
        raise SmokeTestFailed(
            f"{cfg.name} v{release.version} failed its smoke test ({why}); no earlier champion "
            "exists, so the target was taken down"
        )
    restored: Endpoint = target.deploy(previous)
    raise SmokeTestFailed(
        f"{cfg.name} v{release.version} failed its smoke test ({why}); rolled back: v{restored.version} serves "
        f"again at {restored.address or target.name}, the champion alias was not moved"
    )


def set_champion(
    cfg: ModelConfig,
    registry: Registry,
    release: Release,
    *,
    why: str,
    who: str,
    dag_id: str = "",
    run_id: str = "",
    evidence: str = "",
) -> dict[str, Any]:
    """Move ``champion`` to the release (and clear ``challenger`` if it pointed there), each move in the ledger."""
    with promotion_lock(cfg.name):
        champ = registry.by_alias(cfg.name, CHAMPION)
        old = champ.version if champ else None
        moves = []
        if old != release.version:
            registry.set_alias(cfg.name, CHAMPION, release.version)
            moves.append(
                ledger.append(
                    registry,
                    cfg.name,
                    alias=CHAMPION,
                    from_version=old,
                    to_version=release.version,
                    why=why,
                    who=who,
                    dag_id=dag_id,
                    run_id=run_id,
                    evidence=evidence,
                )
            )
        chall = registry.by_alias(cfg.name, CHALLENGER)
        if chall is not None and chall.version == release.version:
            registry.delete_alias(cfg.name, CHALLENGER)
            moves.append(
                ledger.append(
                    registry,
                    cfg.name,
                    alias=CHALLENGER,
                    from_version=chall.version,
                    to_version=None,
                    why=f"deployed as {CHAMPION}",
                    who=who,
                    dag_id=dag_id,
                    run_id=run_id,
                    evidence=evidence,
                )
            )
        registry.client.set_model_version_tag(cfg.name, release.version, DEPLOYED_TAG, "live")
        if old and old != release.version:
            registry.client.set_model_version_tag(cfg.name, old, DEPLOYED_TAG, "retired")
    log.info("%s: champion v%s -> v%s (%s)", cfg.name, old, release.version, why)
    return {"champion": release.version, "previous": old, "moves": moves}


def run_deployment(
    cfg: ModelConfig,
    lake: Lake,
    registry: Registry,
    target: DeploymentTarget,
    *,
    action: str = "deploy",
    version: str | None = None,
    who: str,
    dag_id: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """The whole path in one call (the CLI's rollback; tests): resolve, validate, deploy, smoke, champion."""
    plan = resolve(cfg, registry, action=action, version=version)
    plan = shadow_check(cfg, lake, registry, plan, who=who, dag_id=dag_id, run_id=run_id)
    if not plan["deploy"]:
        return plan
    release = Release(**plan["release"])
    report, evidence = validate(cfg, lake, registry, release)
    previous = previous_release(registry, cfg.name, plan["champion"])
    result = deploy_and_verify(cfg, lake, target, release, previous)
    moved = set_champion(
        cfg, registry, release, why=plan["why"], who=who, dag_id=dag_id, run_id=run_id, evidence=evidence
    )
    return {**plan, "infra_validation": report, **result, **moved}
