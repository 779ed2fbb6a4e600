"""Deployment on the local target against a real MLflow server: infra validation, blue/green under load,
a refused artifact, a smoke-test rollback, the ledger and a one-step rollback.

Every process here is real: model servers and the router are ``python -m sluice.serving.*`` on loopback.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import pytest
from machine import shared_machine_config

from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.deployment import job
from sluice.deployment.infra import LATENCY_ROUNDS, infra_validate
from sluice.deployment.local import LocalTarget
from sluice.deployment.targets import DeploymentError
from sluice.lake import Lake, LocalStorage
from sluice.registry import ledger
from sluice.registry.artifact import release_of
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from sluice.runtime import Settings, running_pid
from sluice.serving.client import LoadLoop
from sluice.training.model import feature_columns, fit

pytestmark = pytest.mark.integration

START, DAYS = dt.date(2025, 1, 1), 8


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    lake = Lake(LocalStorage(tmp_path_factory.mktemp("lake")))
    cfg = get_model_config("loans")
    seed_feature_store(cfg, lake, START, DAYS, rows_per_day=700)
    return lake


@pytest.fixture(scope="module")
def frame(lake):
    from sluice.training.snapshot import build_snapshot

    return build_snapshot(get_model_config("loans"), lake, START + dt.timedelta(days=DAYS - 1), DAYS).frame


@pytest.fixture
def cfg(free_port):
    base = shared_machine_config(get_model_config("loans"))
    local = base.deploy.local.model_copy(update={"port": free_port(), "drain_seconds": 1.0})
    return base.model_copy(
        update={"name": f"loans_{uuid.uuid4().hex[:8]}", "deploy": base.deploy.model_copy(update={"local": local})}
    )


@pytest.fixture
def target(cfg, tmp_path):
    settings = Settings(home=tmp_path / "home", airflow_port=0, mlflow_port=0, smtp_port=0)
    t = LocalTarget(cfg, settings=settings)
    yield t
    t.undeploy()
    for pid_file in (settings.run_dir).glob("*.pid"):
        from sluice.runtime import stop_process

        stop_process(settings, pid_file.stem)


def deploy(cfg, lake, registry, target, **kw):
    return job.run_deployment(cfg, lake, registry, target, who="test", **kw)


def test_blue_green_switch_under_load_drops_no_request(cfg, lake, frame, target, register_model, mlflow_server):
    registry = Registry(mlflow_server)
    model = fit(cfg, frame)
    example = frame[feature_columns(cfg)].head(3)
    v1, _ = register_model(cfg, model, example)
    registry.set_alias(cfg.name, CHALLENGER, v1)

    first = deploy(cfg, lake, registry, target)
    assert first["champion"] == v1 and first["previous"] is None
    assert first["infra_validation"]["passed"], first["infra_validation"]["failed"]
    assert {c["check"] for c in first["infra_validation"]["checks"]} >= {
        "artifact_sha256", "starts", "input_example", "output_schema", "latency_p95_ms", "memory_mb"
    }  # fmt: skip
    assert registry.by_alias(cfg.name, CHALLENGER) is None, "deploying the challenger clears the alias"
    assert target.health() and target.current().version == v1
    old_process = target.live()["process"]

    v2, _ = register_model(cfg, model, example)
    registry.set_alias(cfg.name, CHALLENGER, v2)
    record = example.head(1).to_dict(orient="records")[0]
    loop = LoadLoop(target.port, [record])
    loop.start()
    time.sleep(1.0)
    second = deploy(cfg, lake, registry, target)
    time.sleep(1.0)
    loop.stop()

    assert second["champion"] == v2 and second["previous"] == v1
    assert loop.failed == [], loop.failed[:5]
    assert len(loop.ok) > 50, f"the load loop only got {len(loop.ok)} answers"
    assert loop.ok[0] == v1 and loop.ok[-1] == v2, "traffic moved from v1 to v2"
    assert v1 not in loop.ok[loop.ok.index(v2) :], "once switched, no request goes back to the old version"
    assert running_pid(target.settings, old_process) is None, "the blue server is stopped after the switch"
    assert registry.by_alias(cfg.name, CHAMPION).version == v2

    moves = [(e["alias"], e["from"], e["to"]) for e in ledger.history(registry, cfg.name)]
    assert moves == [
        (CHAMPION, None, v1), (CHALLENGER, v1, None), (CHAMPION, v1, v2), (CHALLENGER, v2, None)
    ]  # fmt: skip
    assert all(e["who"] == "test" and e["evidence"].endswith("infra_validation.json") for e in ledger.history(
        registry, cfg.name))  # fmt: skip
    # one step back to v1 is tests/e2e/test_delivery.py's (the CLI's and the DAG's rollback: v1 serves again, the
    # ledger says why) and the rollback rules are test_rollback_goes_to_the_requested_earlier_champion_...'s


def test_a_corrupted_artifact_is_refused_and_the_champion_keeps_serving(
    cfg, lake, frame, target, register_model, mlflow_server, mlflow_artifact_root
):
    registry = Registry(mlflow_server)
    model = fit(cfg, frame)
    example = frame[feature_columns(cfg)].head(3)
    v1, _ = register_model(cfg, model, example)
    deploy(cfg, lake, registry, target, version=v1)

    v2, info = register_model(cfg, fit(cfg, frame.sample(frac=0.8, random_state=1)), example)
    registry.set_alias(cfg.name, CHALLENGER, v2)
    [stored] = [p for p in mlflow_artifact_root.rglob("model.skops") if info["model_id"] in str(p)]
    stored.write_bytes(stored.read_bytes()[:-100] + b"\0" * 100)  # bit rot after registration

    with pytest.raises(job.InfraValidationFailed) as err:
        deploy(cfg, lake, registry, target)
    assert "artifact_sha256" in str(err.value) and "changed after registration" in str(err.value)
    assert err.value.report["passed"] is False
    assert registry.by_alias(cfg.name, CHAMPION).version == v1
    assert registry.by_alias(cfg.name, CHALLENGER).version == v2, "a refused challenger keeps its alias for review"
    assert target.current().version == v1 and target.invoke(example.head(2).to_dict(orient="records"))
    report = lake.read(f"reports/{cfg.name}/deployments/v{v2}/infra_validation.json")
    assert b'"passed": false' in report


def test_a_latency_budget_no_server_can_meet_is_retried_and_refused(
    cfg, lake, frame, target, register_model, mlflow_server
):
    registry = Registry(mlflow_server)
    v1, _ = register_model(cfg, fit(cfg, frame), frame[feature_columns(cfg)].head(3))
    budget = cfg.deploy.infra_validation.model_copy(update={"max_latency_ms_p95": 0.001, "sample_rows": 20})
    strict = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"infra_validation": budget})})
    report = infra_validate(strict, lake, release_of(registry, strict.name, v1), settings=target.settings)
    [latency] = [c for c in report["checks"] if c["check"] == "latency_p95_ms"]
    rounds = report["latency_ms"]["rounds_p95"]
    assert not report["passed"] and not latency["passed"]
    assert len(rounds) == LATENCY_ROUNDS and report["latency_ms"]["p95"] == min(rounds) == latency["observed"]
    assert f"best of {LATENCY_ROUNDS} rounds" in latency["message"]
    assert [c["check"] for c in report["checks"] if not c["passed"]] == ["latency_p95_ms"]


def test_a_model_that_fails_on_live_traffic_is_rolled_back(cfg, lake, frame, target, register_model, mlflow_server):
    """Config/model skew: a pipeline fitted with a column the serving schema does not send. Infra validation
    refuses it; deployed anyway (the last line of defence), the smoke test fails and v1 is redeployed."""
    registry = Registry(mlflow_server)
    good = fit(cfg, frame)
    example = frame[feature_columns(cfg)].head(3)
    v1, _ = register_model(cfg, good, example)
    deploy(cfg, lake, registry, target, version=v1)

    skewed_cfg = cfg.model_copy(
        update={"features": cfg.features.model_copy(update={"numeric": (*cfg.features.numeric, "extra_signal")})}
    )
    skewed_frame = frame.assign(extra_signal=1.0)
    bad_model = fit(skewed_cfg, skewed_frame)
    v2, _ = register_model(cfg, bad_model, skewed_frame[feature_columns(skewed_cfg)].head(3))
    release = release_of(registry, cfg.name, v2)

    with pytest.raises(job.InfraValidationFailed, match="output_schema"):
        job.validate(cfg, lake, registry, release)

    previous = release_of(registry, cfg.name, v1)
    with pytest.raises(job.SmokeTestFailed, match=rf"rolled back: v{v1} serves again"):
        job.deploy_and_verify(cfg, lake, target, release, previous)
    assert target.current().version == v1
    assert target.invoke(example.to_dict(orient="records"))
    assert registry.by_alias(cfg.name, CHAMPION).version == v1


def test_resolve_explains_what_it_cannot_do(cfg, mlflow_server, register_model, frame):
    registry = Registry(mlflow_server)
    v1, _ = register_model(cfg, fit(cfg, frame), frame[feature_columns(cfg)].head(2))
    assert job.resolve(cfg, registry)["deploy"] is False  # no challenger: nothing to do, not an error
    with pytest.raises(DeploymentError, match="nothing to roll back to"):
        job.resolve(cfg, registry, action="rollback")
    assert job.resolve(cfg, registry, version=v1)["release"]["version"] == v1


def test_the_router_port_being_taken_is_a_clear_error(cfg, target):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", target.port))
        squatter.listen()
        with pytest.raises(DeploymentError, match="is the port taken"):
            target._ensure_router()


def test_rollback_goes_to_the_requested_earlier_champion_and_refuses_others(cfg, mlflow_server, register_model, frame):
    registry = Registry(mlflow_server)
    model, example = fit(cfg, frame), frame[feature_columns(cfg)].head(2)
    v1, v2, v3, never = (register_model(cfg, model, example)[0] for _ in range(4))
    for old, new in ((None, v1), (v1, v2), (v2, v3)):
        registry.set_alias(cfg.name, CHAMPION, new)
        ledger.append(registry, cfg.name, alias=CHAMPION, from_version=old, to_version=new, why="deployed", who="t")

    assert job.resolve(cfg, registry, action="rollback")["version"] == v2  # no version: the previous champion
    plan = job.resolve(cfg, registry, action="rollback", version=f"v{v1}")
    assert plan["version"] == v1 and plan["release"]["version"] == v1
    assert plan["why"] == f"rollback from v{v3} to v{v1} (requested version)"
    with pytest.raises(DeploymentError, match=rf"'{v3}' is the current champion.*allowed: v{v2}, v{v1}"):
        job.resolve(cfg, registry, action="rollback", version=v3)
    with pytest.raises(DeploymentError, match=rf"'{never}' was never champion; allowed: v{v2}, v{v1}"):
        job.resolve(cfg, registry, action="rollback", version=never)
    with pytest.raises(DeploymentError, match=r"'999' is not a registered version of this model"):
        job.resolve(cfg, registry, action="rollback", version="999")


def test_the_ledger_is_one_readable_file_and_legacy_tags_are_migrated(
    cfg, mlflow_server, register_model, frame, tmp_path
):
    import json

    registry = Registry(mlflow_server)
    v1, _ = register_model(cfg, fit(cfg, frame), frame[feature_columns(cfg)].head(2))
    legacy = {
        "seq": 1,
        "at": "2026-01-01T00:00:00+00:00",
        "who": "airflow:admin",
        "dag_id": "d",
        "run_id": "r",
        "alias": CHAMPION,
        "from": None,
        "to": v1,
        "why": "first deploy",
        "evidence": "",
    }
    registry.client.set_registered_model_tag(cfg.name, "sluice.ledger.000001", json.dumps(legacy))
    assert ledger.history(registry, cfg.name) == [legacy]  # an old installation's entries are still read

    for i in range(3):
        ledger.append(
            registry,
            cfg.name,
            alias=CHALLENGER,
            from_version=v1,
            to_version=v1,
            why=f"kept {i}",
            who="t",
            extra={"decision": "rejected", "seq": 99},
        )
    entries = ledger.history(registry, cfg.name)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4] and entries[0] == legacy
    assert entries[-1]["decision"] == "rejected" and entries[-1]["why"] == "kept 2"
    tags = registry.client.get_registered_model(cfg.name).tags
    assert [k for k in tags if k.startswith("sluice.ledger")] == ["sluice.ledger"], tags  # one short summary tag
    assert tags["sluice.ledger"].startswith("4 entries; last #4") and "sluice/ledger" in tags["sluice.ledger"]
    uri = ledger.ledger_uri(registry, cfg.name)
    assert uri.startswith(mlflow_server) and uri.endswith("/artifacts/ledger.txt")
    run_id = uri.split("/runs/")[1].split("/")[0]
    text = Path(registry.client.download_artifacts(run_id, "ledger.txt", str(tmp_path))).read_text()
    assert "first deploy" in text and "(unchanged: rejected)" in text, text
    assert ledger.history(registry, "no_such_model") == []
