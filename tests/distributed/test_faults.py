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
import threading
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


def s3_client(url: str, read_timeout: float = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=read_timeout, retries={"max_attempts": 2, "mode": "standard"}),
    )


@pytest.fixture
def s3_behind_proxy(s3_endpoint: str):
    """A bucket on the real S3 endpoint, reached by Sluice's lake through a TCP proxy the test breaks; the test
    inspects the bucket directly (``direct``), never through the proxy."""
    direct_client = s3_client(s3_endpoint)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    direct_client.create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/lake"
    with faults.proxy("127.0.0.1", faults.port_of(s3_endpoint)) as p:
        yield SimpleNamespace(
            proxy=p,
            lake=Lake(S3Storage(root, s3_client(p.url))),
            slow_lake=lambda timeout: Lake(S3Storage(root, s3_client(p.url, read_timeout=timeout))),
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
