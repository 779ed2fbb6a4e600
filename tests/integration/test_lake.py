"""The lake behaves the same on local disk and on a real S3 endpoint (moto's server over HTTP)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from sluice.lake import Lake, open_lake

DS = dt.date(2025, 1, 3)


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, monkeypatch) -> Lake:
    if request.param == "local":
        monkeypatch.setenv("SLUICE_LAKE", str(tmp_path / "lake"))
        return open_lake()
    request.getfixturevalue("s3_lake")
    return open_lake()


def test_publish_is_visible_only_through_its_manifest(lake: Lake) -> None:
    assert lake.manifest("features", "fs", DS) is None and lake.partitions("features", "fs") == []
    man = lake.publish("features", "fs", DS, {".parquet": b"abc"}, {"rows": 1})
    assert lake.manifest("features", "fs", DS) == man
    assert lake.partitions("features", "fs") == [DS]
    assert lake.read_published("features", "fs", DS) == [b"abc"]
    assert man["files"][0]["name"].startswith("part-00000-") and man["rows"] == 1


def test_rerun_with_same_bytes_writes_same_keys_and_change_replaces(lake: Lake) -> None:
    first = lake.publish("features", "fs", DS, {".parquet": b"abc"}, {"rows": 1})
    keys = lake.list("features/fs")
    again = lake.publish("features", "fs", DS, {".parquet": b"abc"}, {"rows": 1})
    assert again == first and lake.list("features/fs") == keys, "a rerun must not add or change anything"
    changed = lake.publish("features", "fs", DS, {".parquet": b"abcd"}, {"rows": 2})
    assert changed["content_sha256"] != first["content_sha256"]
    assert len([k for k in lake.list("features/fs") if "part-" in k]) == 1, "the old file is removed after the switch"
    assert lake.read_published("features", "fs", DS) == [b"abcd"]


def test_orphan_data_without_manifest_is_invisible(lake: Lake) -> None:
    lake.storage.write_bytes("features/fs/ds=2025-01-03/part-00000-deadbeefdeadbeef.parquet", b"half")
    assert lake.partitions("features", "fs") == []
    with pytest.raises(FileNotFoundError, match="no published partition"):
        lake.read_published("features", "fs", DS)


def test_tampered_file_is_refused(lake: Lake) -> None:
    man = lake.publish("features", "fs", DS, {".parquet": b"abc"}, {})
    lake.storage.write_bytes(f"features/fs/ds={DS}/{man['files'][0]['name']}", b"xyz")
    with pytest.raises(ValueError, match="sha256 does not match"):
        lake.read_published("features", "fs", DS)


def test_landing_marker_and_files(lake: Lake) -> None:
    assert not lake.landing_ready("landing", "d", DS)
    lake.put_landing("landing", "d", DS, {"a.csv": b"x\n1\n"})
    assert lake.landing_ready("landing", "d", DS)
    assert lake.landing_files("landing", "d", DS) == {"a.csv": b"x\n1\n"}
    assert lake.partitions("landing", "d", published_only=False) == [DS]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from sluice.lake import open_lake, LocalStorage, S3Storage
    lake = open_lake()
    stage = sys.argv[1]
    real = type(lake.storage).write_bytes
    def write_bytes(self, key, data):
        if stage == "manifest" and key.endswith("_manifest.json"):
            os.kill(os.getpid(), signal.SIGKILL)      # killed after the data, before the commit
        if stage == "data" and "part-" in key:
            if isinstance(self, LocalStorage):  # half the bytes in the temp file, then killed
                import tempfile
                folder = os.path.join(self.root, os.path.dirname(key))
                fd, tmp = tempfile.mkstemp(prefix=".part.", suffix=".tmp", dir=folder)
                os.write(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)  # on S3: killed while the PUT is in flight
        return real(self, key, data)
    type(lake.storage).write_bytes = write_bytes
    lake.storage.write_bytes("features/fs/ds=2025-01-03/.keep", b"")  # the folder exists, as mid-write it would
    lake.publish("features", "fs", "2025-01-03", {".parquet": b"0123456789" * 1000}, {"rows": 10})
    """
)


@pytest.mark.parametrize("stage", ["data", "manifest"])
def test_writer_killed_halfway_leaves_nothing_visible_and_retry_publishes(lake: Lake, stage: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, stage], env=os.environ.copy(), capture_output=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert lake.manifest("features", "fs", DS) is None
    assert lake.partitions("features", "fs") == []
    with pytest.raises(FileNotFoundError):
        lake.read_published("features", "fs", DS)
    man = lake.publish("features", "fs", DS, {".parquet": b"0123456789" * 1000}, {"rows": 10})  # the retry
    assert lake.read_published("features", "fs", DS) == [b"0123456789" * 1000]
    assert lake.partitions("features", "fs") == [DS] and man["rows"] == 10


def test_features_job_runs_the_same_on_s3(s3_lake) -> None:
    """Validate, quarantine and publish through boto3 against the S3 endpoint, as on local disk."""
    import numpy as np

    from sluice.config import get_model_config
    from sluice.datagen import loans
    from sluice.datagen.corrupt import corrupt, render
    from sluice.features.job import check_landing, publish_features, quarantine_records

    cfg, lake = get_model_config("loans"), open_lake()
    assert lake.root.startswith("s3://")
    good, bad = dt.date(2025, 1, 6), dt.date(2025, 1, 7)
    lake.put_landing(
        "landing", "loans", good, {"part-00000.parquet": render(loans.generate_events(good, seed=2), "parquet")}
    )
    events = loans.generate_events(bad, seed=2)
    lake.put_landing(
        "landing", "loans", bad, {"part-00000.parquet": corrupt("nan_inf", events, "parquet", np.random.default_rng(3))}
    )
    assert check_landing(cfg, lake, good).success
    first = publish_features(cfg, lake, good)
    assert publish_features(cfg, lake, good) == first, "a rerun on S3 writes the same manifest"
    result = check_landing(cfg, lake, bad)
    assert not result.success and result.quarantine_uri.startswith(lake.root + "/quarantine/loans/ds=2025-01-07/")
    assert len(quarantine_records(lake, "loans", bad)) == 1
    assert lake.partitions("features", "loans_v1") == [good]
