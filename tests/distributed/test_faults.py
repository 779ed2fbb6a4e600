"""Faults injected into the distributed topology's parts, one test per fault, nothing lost.

Every test breaks a real part (a TCP proxy in front of the real S3 endpoint or MLflow server that stops
answering or answers late, a real tmpfs that fills up, a real SMTP server stopped and started, a process
killed with SIGKILL), checks the invariant the issue names (nothing half-published, no half-registered
version, no lost mail, no duplicate run), repairs the part, reruns what failed as Airflow's retry would, and
records the figures (records before/after, what was lost, seconds from the repair to the good result) with
``faults.FaultRecord``: printed (``pytest -s``) and appended to ``$SLUICE_FAULTS_LOG`` for
docs/distributed-faults.md.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import threading
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import faults  # tests/distributed/faults.py: pytest puts this folder (no __init__.py) on sys.path
import pytest

from sluice.config import EstimatorConfig, ModelConfig, get_model_config
from sluice.datagen import loans
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.features.pipeline import build_features
from sluice.lake import MANIFEST, Lake, LocalStorage, S3Storage, sha256
from sluice.serving.batch import score_partition
from sluice.training.model import fit

DS = dt.date(2025, 1, 8)
ROWS = 800

# The distributed stack (tests/distributed/conftest.py) inherits these when it starts, which is after
# collection: a task whose worker died is noticed after 60 s without a heartbeat (Airflow's default 300 s),
# and a task lost from the broker is re-queued after 120 s queued (default 600 s). Faults, not timings, are
# what these tests are about; the defaults change when, not whether, a task comes back.
os.environ.setdefault("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "60")
os.environ.setdefault("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "120")


def small_config() -> ModelConfig:
    base = get_model_config("loans")
    estimator = EstimatorConfig(
        class_path="sklearn.ensemble.HistGradientBoostingClassifier", params={"max_iter": 15, "random_state": 3}
    )
    return base.model_copy(update={"training": base.training.model_copy(update={"estimator": estimator})})


def small_model(cfg: ModelConfig) -> Any:
    day = dt.date(2025, 1, 2)
    events = loans.generate_events(day, seed=7, rows_per_day=ROWS)
    labels = loans.generate_labels_for(day, seed=7, rows_per_day=ROWS)
    return fit(cfg, build_features(events, cfg).merge(labels[["application_id", "defaulted"]], on="application_id"))


def published_state(lake: Lake, zone: str, name: str, ds: dt.date) -> dict[str, Any]:
    """What a reader of the partition sees, and whether it is whole: every file the manifest lists exists and
    matches its sha256 (a half-published partition is a manifest without its files, or a file that differs)."""
    key = lake.partition_key(zone, name, ds)
    listed = lake.storage.list(key)
    manifest = lake.manifest(zone, name, ds)
    if manifest is None:
        return {"visible": ds in lake.partitions(zone, name), "manifest": None, "keys": listed, "whole": True}
    files = {e["name"]: e["sha256"] for e in manifest["files"]}
    whole = all(
        lake.storage.exists(f"{key}/{n}") and sha256(lake.storage.read_bytes(f"{key}/{n}")) == digest
        for n, digest in files.items()
    )
    return {
        "visible": ds in lake.partitions(zone, name),
        "manifest": manifest["content_sha256"],
        "rows": manifest.get("rows"),
        "keys": listed,
        "whole": whole,
    }


# --------------------------------------------------------------------------------------------- F3: S3


def s3_client(url: str, credentials: tuple[str, str], read_timeout: float = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=credentials[0],
        aws_secret_access_key=credentials[1],
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=read_timeout, retries={"max_attempts": 2, "mode": "standard"}),
    )


@pytest.fixture
def s3_behind_proxy(dstack):
    """A lake of its own in the distributed stack's lake bucket, on the stack's S3 endpoint, reached by Sluice's
    lake through a TCP proxy the test breaks; the test inspects the bucket directly (``direct``), never through
    the proxy. The endpoint itself is never stopped: moto's server keeps objects in memory, and the stack's
    lake lives there."""
    credentials = (dstack.values["MINIO_ROOT_USER"], dstack.values["MINIO_ROOT_PASSWORD"])
    direct_client = s3_client(dstack.d.s3_url, credentials)
    root = f"s3://{dstack.values['SLUICE_LAKE_BUCKET']}/fault-{uuid.uuid4().hex[:12]}/lake"
    with faults.proxy("127.0.0.1", faults.port_of(dstack.d.s3_url)) as p:
        yield SimpleNamespace(
            proxy=p,
            lake=Lake(S3Storage(root, s3_client(p.url, credentials))),
            slow_lake=lambda timeout: Lake(S3Storage(root, s3_client(p.url, credentials, read_timeout=timeout))),
            direct=Lake(S3Storage(root, direct_client)),
        )


class CutWhen:
    """Take the proxy down the moment a data file appears under ``key`` on the real endpoint: the writer is
    between its data files and its manifest (the proxy's latency widens that window to make it certain)."""

    def __init__(self, direct: Lake, key: str, proxy: faults.TcpProxy, timeout: float = 120) -> None:
        self.cut_after: list[str] = []
        self._stop = threading.Event()

        def watch() -> None:
            sw = faults.Stopwatch()
            while not self._stop.is_set() and sw.elapsed < timeout:
                parts = [k for k in direct.storage.list(key) if "/part-" in k]
                if parts:
                    proxy.down()
                    self.cut_after = parts
                    return
                self._stop.wait(0.02)

        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


def outage_during(
    env: SimpleNamespace, zone: str, name: str, write: Callable[[Lake], Any]
) -> tuple[BaseException, dict[str, Any]]:
    """Run ``write`` while the S3 endpoint goes away between its data files and its manifest."""
    key = env.direct.partition_key(zone, name, DS)
    env.proxy.latency = 0.3
    cut = CutWhen(env.direct, key, env.proxy)
    try:
        with pytest.raises(Exception) as failed:
            write(env.lake)
    finally:
        cut.stop()
        env.proxy.latency = 0.0
    assert cut.cut_after, "the proxy was never cut: the write did not reach its data files"
    return failed.value, published_state(env.direct, zone, name, DS)


def test_f3_s3_down_during_feature_write_publishes_nothing_and_the_retry_completes(s3_behind_proxy, tmp_path):
    env, cfg = s3_behind_proxy, small_config()
    fs = cfg.features.feature_set
    reference = Lake(LocalStorage(tmp_path / "reference"))
    generate_into_lake(cfg, reference, DS, 1, rows_per_day=ROWS)
    expected = publish_features(cfg, reference, DS)
    generate_into_lake(cfg, env.lake, DS, 1, rows_per_day=ROWS)
    before = published_state(env.direct, "features", fs, DS)

    error, during = outage_during(env, "features", fs, lambda lake: publish_features(cfg, lake, DS))
    # the task fails with the endpoint and the key it could not reach; a reader sees no partition
    assert "127.0.0.1" in str(error) and f"features/{fs}/ds" in str(error), str(error)
    assert during["manifest"] is None and not during["visible"], during

    env.proxy.up()
    sw = faults.Stopwatch()
    manifest = publish_features(cfg, env.lake, DS)  # what Airflow's retry runs
    recovery = sw.elapsed
    after = published_state(env.direct, "features", fs, DS)
    lost = [] if after["manifest"] == expected["content_sha256"] and after["whole"] else [f"features ds={DS}"]
    faults.FaultRecord(
        "F3a",
        "S3 endpoint down between the data file and the manifest of a feature partition",
        before={"features": before},
        after={"during_outage": during, "after_retry": after},
        lost=lost,
        recovery_s=recovery,
        notes=[f"error: {type(error).__name__}: {str(error)[:200]}"],
    ).emit()
    assert not lost and manifest["content_sha256"] == expected["content_sha256"]
    assert env.direct.read_published("features", fs, DS) == reference.read_published("features", fs, DS)
    # the data file the failed attempt left is the one the retry reused (content-addressed), nothing else is there
    assert sorted(after["keys"]) == sorted({*during["keys"], f"features/{fs}/ds={DS}/{MANIFEST}"}), after["keys"]


def test_f3_s3_down_during_batch_scoring_publishes_nothing_and_the_retry_completes(s3_behind_proxy, tmp_path):
    env, cfg = s3_behind_proxy, small_config()
    model = small_model(cfg)
    reference = Lake(LocalStorage(tmp_path / "reference"))
    for lake in (reference, env.lake):
        generate_into_lake(cfg, lake, DS, 1, rows_per_day=ROWS)
        publish_features(cfg, lake, DS)
    expected = score_partition(cfg, reference, DS, model, model_version="2", run_id="r1", batch_rows=300)
    before = published_state(env.direct, "predictions", cfg.name, DS)

    def score(lake: Lake) -> Any:
        return score_partition(cfg, lake, DS, model, model_version="2", run_id="r1", batch_rows=300)

    error, during = outage_during(env, "predictions", cfg.name, score)
    assert "127.0.0.1" in str(error) and f"predictions/{cfg.name}/ds" in str(error), str(error)
    assert during["manifest"] is None and not during["visible"], during

    env.proxy.up()
    sw = faults.Stopwatch()
    summary = score(env.lake)
    recovery = sw.elapsed
    after = published_state(env.direct, "predictions", cfg.name, DS)
    lost = [] if after["manifest"] == expected["content_sha256"] and after["whole"] else [f"predictions ds={DS}"]
    faults.FaultRecord(
        "F3b",
        "S3 endpoint down between the data file and the manifest of a predictions partition (batch scoring)",
        before={"predictions": before},
        after={"during_outage": during, "after_retry": after},
        lost=lost,
        recovery_s=recovery,
        notes=[f"error: {type(error).__name__}: {str(error)[:200]}", f"{summary['rows']} rows scored"],
    ).emit()
    assert not lost
    assert env.direct.read_published("predictions", cfg.name, DS) == reference.read_published(
        "predictions", cfg.name, DS
    )


def test_f3_slow_s3_either_completes_or_fails_whole(s3_behind_proxy, tmp_path):
    """Latency on every chunk: within the client's read timeout the write completes (slower, same bytes);
    beyond it the task fails and the partition is either absent or whole, never half."""
    env, cfg = s3_behind_proxy, small_config()
    fs = cfg.features.feature_set
    reference = Lake(LocalStorage(tmp_path / "reference"))
    generate_into_lake(cfg, reference, DS, 1, rows_per_day=ROWS)
    expected = publish_features(cfg, reference, DS)["content_sha256"]
    generate_into_lake(cfg, env.lake, DS, 1, rows_per_day=ROWS)

    sw = faults.Stopwatch()
    publish_features(cfg, env.lake, DS)
    fast = sw.elapsed
    for key in env.direct.storage.list(f"features/{fs}"):
        env.direct.storage.delete(key)

    env.proxy.latency = 0.25  # slow but within the 10 s read timeout
    sw.start()
    publish_features(cfg, env.lake, DS)
    slow = sw.elapsed
    slow_state = published_state(env.direct, "features", fs, DS)
    assert slow_state["manifest"] == expected and slow_state["whole"], slow_state
    for key in env.direct.storage.list(f"features/{fs}"):
        env.direct.storage.delete(key)

    env.proxy.latency = 1.5  # beyond a 1 s read timeout: botocore gives up after its retries
    with pytest.raises(Exception) as timed_out:
        publish_features(cfg, env.slow_lake(1.0), DS)
    during = published_state(env.direct, "features", fs, DS)
    assert during["manifest"] in (None, expected) and during["whole"], during
    env.proxy.latency = 0.0
    sw.start()
    publish_features(cfg, env.lake, DS)
    recovery = sw.elapsed
    after = published_state(env.direct, "features", fs, DS)
    lost = [] if after["manifest"] == expected and after["whole"] else [f"features ds={DS}"]
    faults.FaultRecord(
        "F3c",
        "S3 endpoint slow: 0.25 s per chunk (completes), then 1.5 s per chunk against a 1 s read timeout (fails)",
        before={"publish_s_no_latency": round(fast, 2)},
        after={"publish_s_0.25s_latency": round(slow, 2), "after_timeout": during, "after_retry": after},
        lost=lost,
        recovery_s=recovery,
        notes=[f"timeout error: {type(timed_out.value).__name__}: {str(timed_out.value)[:160]}"],
    ).emit()
    assert not lost


# --------------------------------------------------------------------------------------------- F5: disk full


PAGE = 4096


def pages(n: int) -> int:
    return -(-n // PAGE) * PAGE


@pytest.mark.parametrize("where", ["data file", "manifest"])
def test_f5_disk_full_while_writing_a_partition(where, tmp_path):
    """A real 4 MB tmpfs holds the lake; filled so the data file (or only the manifest) does not fit."""
    cfg = small_config()
    fs = cfg.features.feature_set
    reference = Lake(LocalStorage(tmp_path / "reference"))
    generate_into_lake(cfg, reference, DS, 1, rows_per_day=ROWS)
    expected = publish_features(cfg, reference, DS)
    (data,) = reference.read_published("features", fs, DS)

    with faults.tmpfs(tmp_path / "disk", size_kb=4096) as disk:
        lake = Lake(LocalStorage(disk / "lake"))
        generate_into_lake(cfg, lake, DS, 1, rows_per_day=ROWS)
        # the day before is published and must stay readable whatever happens next to it
        generate_into_lake(cfg, lake, DS - dt.timedelta(days=1), 1, rows_per_day=ROWS)
        earlier = publish_features(cfg, lake, DS - dt.timedelta(days=1))
        (disk / "lake" / "features" / fs / f"ds={DS}").mkdir(parents=True)  # its folder needs no data block
        leave = pages(len(data)) if where == "manifest" else pages(len(data)) - 2 * PAGE
        ballast = faults.fill(disk, leave_bytes=leave)
        before = {"free_bytes": faults.free_bytes(disk), "data_bytes": len(data)}

        with pytest.raises(OSError) as full:
            publish_features(cfg, lake, DS)
        assert full.value.errno == errno.ENOSPC
        # the error names the file and the way out, not only "[Errno 28] No space left on device"
        assert f"features/{fs}/ds={DS}/" in str(full.value) and "free space" in str(full.value), str(full.value)
        during = published_state(lake, "features", fs, DS)
        leftovers = [p.name for p in (disk / "lake" / "features" / fs / f"ds={DS}").iterdir()]
        assert during["manifest"] is None and not during["visible"], during
        assert not [n for n in leftovers if n.endswith(".tmp")], f"temporary files left behind: {leftovers}"
        assert lake.manifest("features", fs, DS - dt.timedelta(days=1)) == earlier  # the neighbour is intact

        ballast.unlink()
        sw = faults.Stopwatch()
        manifest = publish_features(cfg, lake, DS)
        recovery = sw.elapsed
        after = published_state(lake, "features", fs, DS)
        lost = [] if manifest["content_sha256"] == expected["content_sha256"] and after["whole"] else [f"ds={DS}"]
        faults.FaultRecord(
            f"F5-{where.replace(' ', '-')}",
            f"disk full (4 MB tmpfs) while writing the {where} of a feature partition",
            before=before,
            after={"during": {**during, "files_in_folder": leftovers}, "after_retry": after},
            lost=lost,
            recovery_s=recovery,
            notes=[f"error: {full.value}"],
        ).emit()
        assert not lost
        assert lake.read_published("features", fs, DS) == [data]


# --------------------------------------------------------------------------------------------- F6: model server


@pytest.fixture(scope="module")
def serving_lake(tmp_path_factory) -> Lake:
    from sluice.datagen.writer import seed_feature_store

    lake = Lake(LocalStorage(tmp_path_factory.mktemp("serving-lake")))
    seed_feature_store(get_model_config("loans"), lake, dt.date(2025, 1, 1), 8, rows_per_day=700)
    return lake


@pytest.fixture
def serving(serving_lake, free_port, tmp_path):
    """A model config of its own (a fresh registered name, a free router port) and its local target."""
    from machine import shared_machine_config

    from sluice.deployment.local import LocalTarget
    from sluice.runtime import Settings, stop_process

    base = shared_machine_config(get_model_config("loans"))
    local = base.deploy.local.model_copy(update={"port": free_port(), "drain_seconds": 0.5})
    cfg = base.model_copy(
        update={"name": f"loans_{uuid.uuid4().hex[:8]}", "deploy": base.deploy.model_copy(update={"local": local})}
    )
    settings = Settings(home=tmp_path / "home", airflow_port=0, mlflow_port=0, smtp_port=0)
    target = LocalTarget(cfg, settings=settings)
    yield cfg, target
    target.undeploy()
    for pid_file in settings.run_dir.glob("*.pid"):
        stop_process(settings, pid_file.stem)


def test_f6_model_server_killed_during_traffic_503_then_redeploy_restores(serving, serving_lake, dstack):
    from sluice.deployment import job
    from sluice.registry.artifact import release_of
    from sluice.registry.mlflow_registry import CHALLENGER, Registry
    from sluice.serving.client import LoadLoop, ServerClient
    from sluice.training.job import register_pipeline
    from sluice.training.model import feature_columns
    from sluice.training.snapshot import build_snapshot

    cfg, target = serving
    registry = Registry(dstack.s.mlflow_url)  # the stack's registry: the server loads the artifact from its S3
    frame = build_snapshot(cfg, serving_lake, dt.date(2025, 1, 8), 8).frame
    example = frame[feature_columns(cfg)].head(3)
    version, _ = register_pipeline(registry, cfg, fit(cfg, frame), example)
    registry.set_alias(cfg.name, CHALLENGER, version)
    job.run_deployment(cfg, serving_lake, registry, target, who="test")
    live = target.live()
    record = example.head(1).to_dict(orient="records")[0]

    loop = LoadLoop(target.port, [record])
    loop.start()
    try:
        faults.wait_for(lambda: len(loop.ok) >= 20, "20 answers before the fault", 60, 0.1)
        before = {"ok": len(loop.ok), "failed": len(loop.failed), "live": version, "server": live["process"]}
        faults.kill_service(target.settings, live["process"])
        faults.wait_for(lambda: len(loop.failed) >= 5, "clients see the server gone", 60, 0.1)

        probe = ServerClient(target.port)
        status, payload, headers = probe.score([record])
        probe.close()
        assert status == 503, (status, payload)
        assert f"v{version}" in payload["error"] and "redeploy" in payload["error"], payload
        assert headers.get("retry-after") == "5"

        # the deployment's health check (the smoke test the deployment DAG runs) notices
        smoke = job.smoke_test(cfg, serving_lake, target, release_of(registry, cfg.name, version))
        assert not smoke["passed"] and "the live address is not healthy" in smoke["problems"], smoke
        assert not target.health()

        ok_before_redeploy = len(loop.ok)
        sw = faults.Stopwatch()
        job.run_deployment(cfg, serving_lake, registry, target, who="test", version=version)
        faults.wait_for(lambda: len(loop.ok) > ok_before_redeploy + 10, "answers again after the redeploy", 60, 0.1)
        recovery = sw.elapsed
    finally:
        loop.stop()
        loop.join(timeout=10)
    unanswered = [f for f in loop.failed if not f.startswith("HTTP 503")]
    assert target.health() and target.current().version == version
    faults.FaultRecord(
        "F6",
        "model server SIGKILLed under a sequential load loop through the router",
        before=before,
        after={
            "ok": len(loop.ok),
            "answered_503": len(loop.failed) - len(unanswered),
            "other_failures": unanswered[:5],
            "503_body": payload["error"],
            "smoke_problems": smoke["problems"],
        },
        lost=unanswered,
        recovery_s=recovery,
        notes=["recovery: from the start of the redeploy (infra validation included) to 10 good answers"],
    ).emit()
    assert not unanswered, "every request got an answer: 200 from a server, or the router's 503"


# --------------------------------------------------------------------------------------------- F2: MLflow


@pytest.fixture
def mlflow_behind_proxy(dstack, monkeypatch):
    """The distributed stack's MLflow (PostgreSQL, artifacts in S3 through its proxy, basic auth as Sluice's
    service account), reached by Sluice through a TCP proxy the test breaks (``direct``
    is for looking at the registry, never through the proxy). MLflow's client retries 7 times with backoff
    by default; one quick retry keeps a test short, Airflow's task retry is the one that matters."""
    import mlflow

    from sluice.registry.mlflow_registry import Registry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    url = dstack.s.mlflow_url
    direct = Registry(url)
    with faults.proxy("127.0.0.1", faults.port_of(url)) as p:
        proxied = Registry(p.url)  # last: the fluent API (mlflow.start_run, register_model) goes through the proxy
        yield SimpleNamespace(proxy=p, registry=proxied, direct=direct)
    mlflow.set_tracking_uri(url)


def registry_state(direct: Any, model: str) -> dict[str, Any]:
    from sluice.registry import ledger
    from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION

    versions = direct.versions(model) if direct.client.search_registered_models(f"name='{model}'") else []
    return {
        "versions": [(v.version, v.run_id[:8]) for v in versions],
        "challenger": getattr(direct.by_alias(model, CHALLENGER), "version", None),
        "champion": getattr(direct.by_alias(model, CHAMPION), "version", None),
        "ledger": [(e["alias"], e["from"], e["to"]) for e in ledger.history(direct, model)],
    }


def test_f2_mlflow_down_during_promotion_leaves_no_half_registered_version(mlflow_behind_proxy):
    import mlflow

    from sluice.training.job import log_pipeline, promote
    from sluice.training.model import feature_columns
    from sluice.training.record import STATE_TAG

    env = mlflow_behind_proxy
    cfg = small_config().model_copy(update={"name": f"loans_{uuid.uuid4().hex[:8]}"})
    model = small_model(cfg)
    day = dt.date(2025, 1, 2)
    example = build_features(loans.generate_events(day, seed=7, rows_per_day=50), cfg)[feature_columns(cfg)].head(3)
    sha = uuid.uuid4().hex
    tags = {"data.manifest_sha256": sha, STATE_TAG: "passed", "airflow.dag_id": f"{cfg.name}_training"}
    with mlflow.start_run(experiment_id=env.registry.experiment_id(cfg.name), tags=tags) as run:
        info = log_pipeline(cfg, model, example)
    rid = run.info.run_id
    trained = {"run_id": rid, "manifest_sha256": sha, "model_uri": info["model_uri"]}
    evaluation = {"candidate": {cfg.gate.primary_metric: 0.8}, "champion": None}

    def attempt() -> dict[str, Any]:
        return promote(cfg, env.registry, trained, evaluation, {"decision": "PASS"}, run_type="manual")

    before = registry_state(env.direct, cfg.name)
    # cut MLflow off the moment the version exists: between "register" and "move the alias"
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if env.direct.client.search_registered_models(f"name='{cfg.name}'") and env.direct.versions(cfg.name):
                env.proxy.down()
                return
            stop.wait(0.02)

    env.proxy.latency = 0.3
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with pytest.raises(Exception) as failed:
            attempt()
    finally:
        stop.set()
        watcher.join(timeout=10)
        env.proxy.latency = 0.0
    during = registry_state(env.direct, cfg.name)
    assert during["challenger"] is None, f"the cut came too late to test anything: {during}"

    env.proxy.up()
    sw = faults.Stopwatch()
    result = attempt()  # what Airflow's retry of the promote task runs
    recovery = sw.elapsed
    after = registry_state(env.direct, cfg.name)
    mine = [v for v, r in after["versions"] if r == rid[:8]]
    lost = [f"orphan version v{v} of run {rid[:8]} (no alias)" for v in mine if v != after["challenger"]]
    faults.FaultRecord(
        "F2b",
        "MLflow unreachable between registering the candidate and moving the challenger alias (promotion)",
        before=before,
        after={"during_outage": during, "after_retry": after, "result": result},
        lost=lost,
        recovery_s=recovery,
        notes=[f"error: {type(failed.value).__name__}: {str(failed.value)[:200]}"],
    ).emit()
    assert result["promoted"] and after["challenger"] == result["version"]
    assert len(mine) == 1, f"one version per promoted run, found {after['versions']}"
    assert after["ledger"] == [("challenger", None, result["version"])], after["ledger"]


# --------------------------------------------------------------------------------------------- F4: SMTP


def test_f4_smtp_down_when_a_gate_fails_the_decision_is_recorded_and_the_retry_mails_once(dstack, dapi, dlake):
    """The data-quality gate of the features DAG fails (a landing file without a column) while the stack's SMTP
    sink is stopped: the quarantine (the decision) is recorded, the task fails *retryably* (red, never green
    without its alert), the sink starts again, and Airflow's retry sends the mail exactly once."""
    import numpy as np

    from sluice.alerts.mailsink import read_outbox
    from sluice.datagen.corrupt import corrupt
    from sluice.features.job import quarantine_records

    cfg = get_model_config("loans")
    dag, day = cfg.dag_id("features"), dt.date(2025, 3, 23)  # a day no other test of the session runs
    dapi.wait_for_dags([dag])
    dapi.set_paused(dag, False)
    fmt = cfg.dataset.format
    events = loans.generate_events(day, seed=7, rows_per_day=DIST_ROWS)
    bad = corrupt("missing_column", events, fmt, np.random.default_rng(3))
    dlake.put_landing("landing", cfg.dataset.name, day, {f"part-00000.{fmt}": bad})

    def mails() -> list[str]:
        return [str(m["Subject"]) for m in read_outbox(dstack.outbox) if f"ds={day}" in str(m["Subject"])]

    before = {"mails": mails(), "quarantine": len(quarantine_records(dlake, cfg.dataset.name, day))}
    dstack.stop("mailsink")
    try:
        run = dapi.call("POST", f"/dags/{dag}/dagRuns", json={"logical_date": f"{day}T00:00:00Z", "conf": {}})
        rid = run["dag_run_id"]

        def validate() -> dict[str, Any]:
            return next(ti for ti in dapi.task_instances(dag, rid) if ti["task_id"] == "validate")

        first = faults.wait_for(
            lambda: (ti := validate())["state"] == "up_for_retry" and ti, "validate failed retryably", 600, 1
        )
        during = {
            "validate": first["state"],
            "try_number": first["try_number"],
            "run": dapi.call("GET", f"/dags/{dag}/dagRuns/{rid}")["state"],
            "quarantine": len(quarantine_records(dlake, cfg.dataset.name, day)),
            "mails": mails(),
        }
    finally:
        dstack.start("mailsink")
    back = faults.Stopwatch()
    faults.wait_for(lambda: len(mails()) > len(before["mails"]), "the alert mailed after the sink is back", 600, 1)
    recovery = back.elapsed
    final = dapi.wait_run(dag, rid, timeout=600)
    after = {
        "run": final["state"],
        "validate": validate()["state"],
        "try_number": validate()["try_number"],
        "quarantine": len(quarantine_records(dlake, cfg.dataset.name, day)),
        "mails": mails(),
    }
    quarantined = [s for s in after["mails"] if "QUARANTINED" in s]
    lost = [] if len(quarantined) == 1 else [f"{len(quarantined)} quarantine mails, expected 1: {after['mails']}"]
    faults.FaultRecord(
        "F4",
        f"SMTP sink stopped when the data-quality gate of {dag} ds={day} failed; started again during the retry wait",
        before=before,
        after={"during_outage": during, "after_retry": after},
        lost=lost,
        recovery_s=recovery,
        notes=["recovery: from the sink's restart to the alert in its outbox (the retry waits its retry_delay)"],
    ).emit()
    assert during["run"] == "running" and during["quarantine"] >= 1 and not during["mails"], during
    assert final["state"] == "failed" and after["validate"] == "failed" and after["try_number"] >= 2, after
    assert after["quarantine"] >= 1, after
    assert not lost, lost


# --------------------------------------------------------------------------------------------- on the topology
# F1, F7 and F8 break the distributed stack itself (``dstack``: Celery workers, scheduler, Redis) while the
# scheduler runs the features DAG on the S3 lake; the expected bytes come from the same landing files published
# on a local lake by the same code.

DIST_ROWS = 3000  # within the loans suite's row-count bounds (6000 a day is quarantined)


def expected_features(cfg: ModelConfig, days: list[dt.date], tmp_path: Any) -> dict[str, str]:
    reference = Lake(LocalStorage(tmp_path / "reference"))
    out = {}
    for day in days:
        generate_into_lake(cfg, reference, day, 1, rows_per_day=DIST_ROWS)
        out[day.isoformat()] = publish_features(cfg, reference, day)["content_sha256"]
    return out


def feature_shas(lake: Lake, cfg: ModelConfig, days: list[dt.date]) -> dict[str, Any]:
    fs = cfg.features.feature_set
    out = {}
    for day in days:
        state = published_state(lake, "features", fs, day)
        out[day.isoformat()] = state["manifest"] if state["whole"] else f"HALF-PUBLISHED {state}"
    return out


def runs_in(dapi: Any, dag_id: str, first: dt.date, last: dt.date) -> list[dict]:
    params = {"logical_date_gte": f"{first}T00:00:00Z", "logical_date_lte": f"{last}T00:00:00Z", "limit": 100}
    return dapi.runs(dag_id, **params)


def worker_of(dstack: Any, run_id: str, task_id: str, attempt: int) -> str | None:
    """Which Celery worker received this attempt (its log names the attempt's log path)."""
    from sluice.stack.distributed import WORKERS

    needle = f"run_id={run_id}/task_id={task_id}/attempt={attempt}.log"
    for w in WORKERS:
        path = dstack.log_dir / f"{w}.log"
        if path.exists() and needle in path.read_text(errors="replace"):
            return w
    return None


def land(dlake: Lake, cfg: ModelConfig, days: list[dt.date]) -> set[str]:
    corrupted: set[str] = set()
    for day in days:
        landed = generate_into_lake(cfg, dlake, day, 1, rows_per_day=DIST_ROWS)
        corrupted |= set(landed.get("corrupted") or [])
    return corrupted


def test_f1_a_worker_killed_mid_task_the_task_is_retried_on_the_other_worker(dstack, dapi, dlake, tmp_path):
    from sluice.stack.distributed import WORKERS

    cfg = get_model_config("loans")
    dag, day = cfg.dag_id("features"), dt.date(2025, 3, 22)  # a day no other test of the session runs
    dapi.wait_for_dags([dag])
    dapi.set_paused(dag, False)
    assert not land(dlake, cfg, [day])
    expected = expected_features(cfg, [day], tmp_path)
    run = dapi.call("POST", f"/dags/{dag}/dagRuns", json={"logical_date": f"{day}T00:00:00Z", "conf": {}})
    rid = run["dag_run_id"]

    def running_task() -> tuple[str, str] | None:
        for ti in dapi.task_instances(dag, rid):
            if ti["task_id"] in ("validate", "publish_features") and ti["state"] == "running":
                w = worker_of(dstack, rid, ti["task_id"], ti["try_number"])
                if w:
                    return ti["task_id"], w
        return None

    task_id, victim = faults.wait_for(running_task, "validate or publish_features running on a worker", 600, 0.3)
    before = {"task": task_id, "worker": victim, "features": feature_shas(dlake, cfg, [day])}
    dstack.kill(victim)  # SIGKILL to the worker's process group: the worker and the task process it forked
    killed = faults.Stopwatch()
    during = feature_shas(dlake, cfg, [day])
    assert not str(during[day.isoformat()]).startswith("HALF"), during
    try:
        final = dapi.wait_run(dag, rid, timeout=900)
        recovery = killed.elapsed
        tis = {ti["task_id"]: ti for ti in dapi.task_instances(dag, rid)}
        retried_on = worker_of(dstack, rid, task_id, tis[task_id]["try_number"])
    finally:
        dstack.start(victim)
    after = feature_shas(dlake, cfg, [day])
    lost = [] if after == expected else [f"features ds={day}: {after} != {expected}"]
    faults.FaultRecord(
        "F1",
        f"Celery worker {victim} SIGKILLed while it ran {task_id} of {dag} ds={day}",
        before=before,
        after={
            "during": during,
            "run": final["state"],
            "try_number": tis[task_id]["try_number"],
            "retried_on": retried_on,
            "features": after,
        },
        lost=lost,
        recovery_s=recovery,
        notes=[
            "recovery: from the kill to the run's success; Airflow notices the dead task after "
            f"{os.environ['AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT']} s without a heartbeat, "
            "then the retry waits its retry_delay",
            f"workers: {list(WORKERS)}",
        ],
    ).emit()
    assert final["state"] == "success", (final, {k: v["state"] for k, v in tis.items()})
    assert tis[task_id]["try_number"] >= 2 and retried_on not in (None, victim), (tis[task_id], retried_on)
    assert not lost


def test_f7_scheduler_killed_during_a_10_day_backfill_completes_identical(dstack, dapi, dlake, tmp_path):
    from sluice.stack.rest import utcnow_iso

    cfg = get_model_config("loans")
    dag = cfg.dag_id("features")
    days = [dt.date(2025, 2, 10) + dt.timedelta(days=i) for i in range(10)]
    dapi.wait_for_dags([dag])
    dapi.set_paused(dag, False)
    corrupted = land(dlake, cfg, days)
    good = [d for d in days if d.isoformat() not in corrupted]
    expected = expected_features(cfg, good, tmp_path)
    since = utcnow_iso()
    dapi.backfill(dag, days[0], days[-1], max_active_runs=4, reprocess="none")

    def some_done() -> list[dict]:
        done = [r for r in runs_in(dapi, dag, days[0], days[-1]) if r["state"] == "success"]
        return done if len(done) >= 2 else []

    faults.wait_for(some_done, "2 backfill runs done before the kill", 900, 2)
    states = sorted((r["logical_date"][:10], r["state"]) for r in runs_in(dapi, dag, days[0], days[-1]))
    pid = dstack.kill("airflow-scheduler")
    faults.wait_gone(pid)
    dstack.start("airflow-scheduler")
    restarted = faults.Stopwatch()
    runs = dapi.wait_window(dag, days[0], days[-1], since, timeout=1500)
    recovery = restarted.elapsed
    every = runs_in(dapi, dag, days[0], days[-1])
    per_day: dict[str, int] = {}
    for r in every:
        per_day[r["logical_date"][:10]] = per_day.get(r["logical_date"][:10], 0) + 1
    after = feature_shas(dlake, cfg, good)
    failed = sorted(r["logical_date"][:10] for r in runs if r["state"] != "success")
    lost = [f"ds={d}: {after[d]}" for d in expected if after[d] != expected[d]]
    lost += [f"ds={d} failed" for d in failed if d not in corrupted]
    faults.FaultRecord(
        "F7",
        f"scheduler SIGKILLed and restarted during a 10-day backfill of {dag} (4 runs at once, 2 workers)",
        before={"runs_at_kill": states},
        after={"runs": len(every), "runs_per_day": per_day, "failed": failed, "corrupted_days": sorted(corrupted)},
        lost=lost,
        recovery_s=recovery,
        notes=["recovery: from the scheduler's restart to the last run of the window ending"],
    ).emit()
    assert all(n == 1 for n in per_day.values()) and len(per_day) == len(days), per_day  # no duplicate run
    assert not lost, lost


def test_f8_redis_restarted_mid_run_nothing_queued_is_lost(dstack, dapi, dlake, tmp_path):
    """Both workers are stopped first, so the backfill's tasks wait *in Redis* (the Celery queue ``default``):
    Redis is SIGKILLed with those messages in it (no shutdown save: only the append-only file, fsynced every
    second, survives), restarted, and must hold the same messages; the workers then start and run them."""
    from sluice.stack.distributed import WORKERS
    from sluice.stack.rest import utcnow_iso

    cfg = get_model_config("loans")
    dag = cfg.dag_id("features")
    days = [dt.date(2025, 3, 24) + dt.timedelta(days=i) for i in range(6)]  # days no other test of the session runs
    dapi.wait_for_dags([dag])
    dapi.set_paused(dag, False)
    corrupted = land(dlake, cfg, days)
    good = [d for d in days if d.isoformat() not in corrupted]
    expected = expected_features(cfg, good, tmp_path)
    password, port = dstack.values["REDIS_PASSWORD"], dstack.d.redis_port

    def queue_len() -> int:
        return int(faults.redis_cli(port, password, "LLEN", "default") or 0)

    for worker in WORKERS:
        dstack.stop(worker)
    try:
        since = utcnow_iso()
        dapi.backfill(dag, days[0], days[-1], max_active_runs=4, reprocess="none")

        def queued_in_redis() -> dict[str, Any] | None:
            queued = sorted(
                f"{ti['task_id']}@{r['logical_date'][:10]}"
                for r in runs_in(dapi, dag, days[0], days[-1])
                for ti in dapi.task_instances(dag, r["dag_run_id"])
                if ti["state"] == "queued"
            )
            n = queue_len()
            return {"queued_tis": queued, "messages_in_redis": n} if queued and n > 0 else None

        before = faults.wait_for(queued_in_redis, "task messages waiting in Redis's queue", 600, 0.5)
        faults.wait_for(lambda: queue_len() == before["messages_in_redis"], "the queue settled", 30, 0.5)
        time.sleep(2.5)  # appendfsync everysec: every message is on disk after at most a second (and a margin)
        before["messages_in_redis"] = queue_len()
        pid = dstack.kill("redis")  # SIGKILL: no shutdown save
        faults.wait_gone(pid)
        dstack.start("redis")
        restarted = faults.Stopwatch()
        faults.wait_for(lambda: faults.redis_ping(port, password), "Redis answers again", 60)
        survived = queue_len()
    finally:
        for worker in WORKERS:
            if not dstack.pid(worker):
                dstack.start(worker)
    runs = dapi.wait_window(dag, days[0], days[-1], since, timeout=1500)
    recovery = restarted.elapsed
    after = feature_shas(dlake, cfg, good)
    failed = sorted(r["logical_date"][:10] for r in runs if r["state"] != "success")
    missing = before["messages_in_redis"] - survived
    lost = [f"{missing} queued message(s)"] if missing > 0 else []
    lost += [f"ds={d}: {after[d]}" for d in expected if after[d] != expected[d]]
    lost += [f"ds={d} failed" for d in failed if d not in corrupted]
    faults.FaultRecord(
        "F8",
        f"Redis (the Celery broker) SIGKILLed with {dag} tasks waiting in its queue (workers stopped), restarted",
        before=before,
        after={"messages_in_redis_after_restart": survived, "runs": len(runs), "failed": failed, "features": after},
        lost=lost,
        recovery_s=recovery,
        notes=[
            "the queue survives on Redis's append-only file (appendonly yes, appendfsync everysec)",
            "recovery: from Redis's restart to the last run of the window ending (the workers start after it)",
        ],
    ).emit()
    assert survived >= before["messages_in_redis"] > 0, (before, survived)
    assert not lost, lost


def test_f2_mlflow_down_while_logging_the_model_registers_nothing_and_the_retry_registers_once(mlflow_behind_proxy):
    import mlflow

    from sluice.training.job import register_pipeline
    from sluice.training.model import feature_columns

    env = mlflow_behind_proxy
    cfg = small_config().model_copy(update={"name": f"loans_{uuid.uuid4().hex[:8]}"})
    model = small_model(cfg)
    day = dt.date(2025, 1, 2)
    example = build_features(loans.generate_events(day, seed=7, rows_per_day=50), cfg)[feature_columns(cfg)].head(3)
    experiment = env.registry.experiment_id(cfg.name)
    before = registry_state(env.direct, cfg.name)
    stop = threading.Event()

    def watch() -> None:  # cut MLflow off once the run exists: the model's files are on their way
        while not stop.is_set():
            if env.direct.client.search_runs([experiment]):
                env.proxy.down()
                return
            stop.wait(0.02)

    env.proxy.latency = 0.3
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with pytest.raises(Exception) as failed:
            register_pipeline(env.registry, cfg, model, example)
    finally:
        stop.set()
        watcher.join(timeout=10)
        env.proxy.latency = 0.0
    during = registry_state(env.direct, cfg.name)
    assert during["versions"] == [], during

    env.proxy.up()
    if mlflow.active_run() is not None:  # this process goes on; a retried task starts a fresh process
        mlflow.end_run("FAILED")
    sw = faults.Stopwatch()
    version, _ = register_pipeline(env.registry, cfg, model, example)  # the task's retry
    recovery = sw.elapsed
    after = registry_state(env.direct, cfg.name)
    runs = env.direct.client.search_runs([experiment])
    faults.FaultRecord(
        "F2a",
        "MLflow unreachable while the candidate's run logs the model (before it is registered)",
        before=before,
        after={
            "during_outage": during,
            "after_retry": after,
            "runs": [(r.info.run_id[:8], r.info.status) for r in runs],
        },
        lost=[] if len(after["versions"]) == 1 else [f"versions {after['versions']}"],
        recovery_s=recovery,
        notes=[f"error: {type(failed.value).__name__}: {str(failed.value)[:200]}"],
    ).emit()
    assert after["versions"] == [(version, after["versions"][0][1])] and len(after["versions"]) == 1
