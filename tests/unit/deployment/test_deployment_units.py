"""Deployment pieces that need no server: config of targets, the router's state file, the alert, the ledger table."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from sluice.alerts.email import deployment_alert
from sluice.config import MODELS_DIR, ConfigError, load_model_config
from sluice.deployment.factory import target_for
from sluice.deployment.targets import Release
from sluice.registry.artifact import ArtifactMismatch, fetch_release, model_dir_sha256
from sluice.registry.ledger import format_history
from sluice.serving.router import LiveState

pytestmark = pytest.mark.unit

BASE = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())


def load(tmp_path: Path, deploy: dict):
    data = copy.deepcopy(BASE)
    data["deploy"] = deploy
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_model_config(path)


def test_sagemaker_target_needs_its_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="target 'sagemaker' needs a 'sagemaker:' section"):
        load(tmp_path, {"target": "sagemaker"})


def test_sagemaker_section_is_validated_field_by_field(tmp_path: Path) -> None:
    bad = {"endpoint_name": "loans", "role_arn": "not-an-arn", "image_uri": "img", "artifact_uri": "/tmp/x"}
    with pytest.raises(ConfigError) as err:
        load(tmp_path, {"target": "sagemaker", "sagemaker": bad})
    assert "role_arn" in str(err.value) and "artifact_uri" in str(err.value)


def test_each_target_kind_gets_its_class(tmp_path: Path) -> None:
    sm = {
        "endpoint_name": "loans-prod",
        "role_arn": "arn:aws:iam::123456789012:role/sm",
        "image_uri": "123.dkr.ecr/x:1",
        "artifact_uri": "s3://bucket/models",
    }
    kinds = {
        "local": load(tmp_path, {"target": "local", "local": {"port": 8700}}),
        "batch": load(tmp_path, {"target": "batch"}),
        "sagemaker": load(tmp_path, {"target": "sagemaker", "sagemaker": sm}),
    }
    for kind, cfg in kinds.items():
        target = target_for(cfg)
        assert target.name == kind
        assert all(callable(getattr(target, m)) for m in ("deploy", "health", "current", "undeploy", "invoke"))


def test_live_state_follows_an_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    state = LiveState(path)
    assert state.get() is None
    for version in ("1", "2"):
        tmp = tmp_path / "live.tmp"
        tmp.write_text(json.dumps({"version": version, "port": 1}))
        os.replace(tmp, path)
        assert state.get()["version"] == version
    path.unlink()
    assert state.get() is None


def write_model_dir(path: Path, payload: bytes) -> Path:
    path.mkdir(parents=True)
    (path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": {"pickled_model": "model.skops"}}}))
    (path / "model.skops").write_bytes(payload)
    return path


def test_a_cached_artifact_is_rehashed_on_every_use(tmp_path: Path) -> None:
    src = write_model_dir(tmp_path / "src", b"weights")
    _, sha = model_dir_sha256(src)
    release = Release("loans", "4", "models:/loans/4", sha)
    cached = write_model_dir(tmp_path / "cache" / "loans" / f"v4-{sha[:16]}", b"weights")
    assert fetch_release(release, cache=tmp_path / "cache") == cached
    (cached / "model.skops").write_bytes(b"weightz")
    with pytest.raises(ArtifactMismatch, match="loans v4: model.skops has sha256 .* changed after registration"):
        fetch_release(release, cache=tmp_path / "cache")


def test_the_refusal_mail_says_why_and_what_serves() -> None:
    checks = [{"check": "latency_p95_ms", "passed": False, "observed": 80.0, "limit": 50.0, "message": "p95 80 ms"}]
    alert = deployment_alert(
        "loans",
        "7",
        "infra validation",
        ["latency_p95_ms: p95 80 ms"],
        {"log": "http://x"},
        serving="v6 at http://127.0.0.1:8600",
        checks=checks,
    )
    assert alert.subject == "[sluice] loans: v7 NOT deployed, infra validation failed"
    assert "Still serving: v6 at http://127.0.0.1:8600" in alert.text
    assert "latency_p95_ms: FAIL (observed 80.0, limit 50.0)" in alert.text and "<td>FAIL</td>" in alert.html


def test_ledger_table_reads_left_to_right() -> None:
    entries = [
        {
            "seq": 1,
            "at": "2026-01-01T00:00:00+00:00",
            "who": "airflow:admin",
            "dag_id": "loans_deployment",
            "run_id": "manual__1",
            "alias": "champion",
            "from": None,
            "to": "1",
            "why": "new challenger v1",
            "evidence": "/lake/reports/x.json",
        },
        {
            "seq": 2,
            "at": "2026-01-02T00:00:00+00:00",
            "who": "cli:ops",
            "dag_id": "",
            "run_id": "",
            "alias": "champion",
            "from": "2",
            "to": "1",
            "why": "rollback",
            "evidence": "",
        },
    ]
    lines = format_history(entries).splitlines()
    assert lines[0].split()[:6] == ["#", "when", "(UTC)", "alias", "from", "to"]
    assert "champion" in lines[1] and " -  " in lines[1] and "v1" in lines[1] and "[/lake/reports/x.json]" in lines[1]
    assert "v2" in lines[2] and "cli:ops" in lines[2] and lines[2].rstrip().endswith("rollback")
    assert format_history([]) == "no alias moves recorded"
