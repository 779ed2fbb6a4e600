"""The lake: partitions on local disk or ``s3://bucket/prefix``, with the same behaviour on both.

Layout: ``<lake>/{landing,quarantine,features,predictions,labels,reports}/<name>/ds=YYYY-MM-DD/``.

Publishing is a commit protocol that needs no rename, so S3 and local disk behave alike:
data files are content-addressed (``part-00000-<sha16>.parquet``) and written first; the partition's
``_manifest.json`` is written last, in one atomic put, and is what makes the partition visible. A reader
only trusts files listed in a manifest, so a writer killed halfway leaves nothing a reader can see, and a
rerun that produces the same bytes writes the same keys. Landing partitions are complete when their
producer has written ``_SUCCESS``.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

ZONES = ("landing", "labels", "quarantine", "features", "predictions", "shadow", "reports")
MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
_DS = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")


class ManifestFile(TypedDict):
    """One data file a manifest lists: the partition's readers trust it only if the sha256 matches."""

    name: str
    sha256: str
    bytes: int


class Storage(Protocol):
    """Byte storage addressed by ``/``-separated keys relative to the lake root."""

    root: str

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def local_path(self, key: str) -> str | None: ...


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).resolve())

    def _p(self, key: str) -> Path:
        return Path(self.root, key)

    def read_bytes(self, key: str) -> bytes:
        return self._p(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Temporary file in the same folder, fsync, then rename: never half a file under ``key``."""
        path = self._p(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the bare error names no file and no way out
                raise OSError(
                    exc.errno,
                    f"{os.strerror(exc.errno)}: writing {path} ({len(data)} bytes) failed and nothing of it was "
                    f"kept; free space on the file system of {path.parent} (or raise its quota) and rerun the task",
                ) from exc
            raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._p(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._p(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
        )

    def delete(self, key: str) -> None:
        self._p(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> str | None:
        return str(self._p(key))


class S3Storage:
    """boto3 over ``s3://bucket/prefix``; the endpoint comes from ``AWS_ENDPOINT_URL`` as boto3 reads it."""

    def __init__(self, uri: str, client: Any = None) -> None:  # a boto3 S3 client (boto3 ships no types)
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"lake URI {uri!r} has no bucket; expected s3://bucket/prefix")
        self.root, self.bucket, self.prefix = uri.rstrip("/"), bucket, prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read_bytes(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
            return body
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"{self.root}/{key}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        # A PUT is atomic: readers see the old object or the new one, never a part.
        self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        full = self._k(prefix.rstrip("/") + "/")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._k(key))

    def local_path(self, key: str) -> str | None:
        return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ds_str(ds: dt.date | str) -> str:
    return ds if isinstance(ds, str) else ds.isoformat()


@dataclass(frozen=True)
class Lake:
    storage: Storage

    @property
    def root(self) -> str:
        return self.storage.root

    @staticmethod
    def partition_key(zone: str, name: str, ds: dt.date | str) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown lake zone {zone!r}; expected one of {ZONES}")
        return f"{zone}/{name}/ds={ds_str(ds)}"

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    # ---- landing (written by producers) -------------------------------------------------------

    def landing_ready(self, zone: str, name: str, ds: dt.date | str) -> bool:
        return self.storage.exists(f"{self.partition_key(zone, name, ds)}/{SUCCESS}")

    def put_landing(self, zone: str, name: str, ds: dt.date | str, files: Mapping[str, bytes]) -> str:
        """What a producer does: data files, then ``_SUCCESS``. Replaces the partition's files."""
        key = self.partition_key(zone, name, ds)
        for old in self.storage.list(key):
            if old.rsplit("/", 1)[-1] not in files:
                self.storage.delete(old)
        for fname, data in files.items():
            self.storage.write_bytes(f"{key}/{fname}", data)
        self.storage.write_bytes(f"{key}/{SUCCESS}", b"")
        return key

    def landing_files(self, zone: str, name: str, ds: dt.date | str) -> dict[str, bytes]:
        """The data files of a landing partition (markers and hidden files excluded), by file name."""
        key = self.partition_key(zone, name, ds)
        out = {}
        for k in self.storage.list(key):
            fname = k.rsplit("/", 1)[-1]
            if not fname.startswith(("_", ".")):
                out[fname] = self.storage.read_bytes(k)
        return out

    # ---- published partitions (manifest commit) -----------------------------------------------

    def publish(
        self, zone: str, name: str, ds: dt.date | str, files: Mapping[str, bytes], meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Content-addressed data files first, then the manifest; old files are removed after the switch."""
        key = self.partition_key(zone, name, ds)
        entries: list[ManifestFile] = []
        for i, (suffix, data) in enumerate(sorted(files.items())):
            digest = sha256(data)
            fname = f"part-{i:05d}-{digest[:16]}{suffix}"
            if not self.storage.exists(f"{key}/{fname}"):
                self.storage.write_bytes(f"{key}/{fname}", data)
            entries.append({"name": fname, "sha256": digest, "bytes": len(data)})
        content = sha256("".join(e["sha256"] for e in entries).encode())
        manifest = {**meta, "ds": ds_str(ds), "files": entries, "content_sha256": content}
        self.storage.write_bytes(f"{key}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True).encode())
        keep = {e["name"] for e in entries} | {MANIFEST}
        for old in self.storage.list(key):
            if old.rsplit("/", 1)[-1] not in keep:
                self.storage.delete(old)
        return manifest

    def manifest(self, zone: str, name: str, ds: dt.date | str) -> dict[str, Any] | None:
        key = f"{self.partition_key(zone, name, ds)}/{MANIFEST}"
        if not self.storage.exists(key):
            return None
        manifest: dict[str, Any] = json.loads(self.storage.read_bytes(key))
        return manifest

    def read_published(self, zone: str, name: str, ds: dt.date | str) -> list[bytes]:
        """The bytes of every file the manifest lists, checked against their sha256."""
        man = self.manifest(zone, name, ds)
        if man is None:
            raise FileNotFoundError(f"no published partition at {self.uri(self.partition_key(zone, name, ds))}")
        key = self.partition_key(zone, name, ds)
        out = []
        for entry in man["files"]:
            data = self.storage.read_bytes(f"{key}/{entry['name']}")
            if sha256(data) != entry["sha256"]:
                raise ValueError(f"{self.uri(key)}/{entry['name']}: sha256 does not match the manifest")
            out.append(data)
        return out

    def partitions(self, zone: str, name: str, *, published_only: bool = True) -> list[dt.date]:
        seen: set[dt.date] = set()
        at = 2 + name.count("/")  # a name may have folders: shadow/<model>/v<version>/ds=D
        for k in self.storage.list(f"{zone}/{name}"):
            parts = k.split("/")
            m = _DS.match(parts[at]) if len(parts) > at + 1 else None
            if m and (not published_only or parts[-1] == MANIFEST):
                seen.add(dt.date.fromisoformat(m.group(1)))
        return sorted(seen)

    def put_files(self, prefix: str, files: Mapping[str, bytes]) -> list[str]:
        """Plain atomic puts of each file under ``prefix`` (quarantine records, reports)."""
        keys = []
        for fname, data in files.items():
            self.storage.write_bytes(f"{prefix}/{fname}", data)
            keys.append(f"{prefix}/{fname}")
        return keys

    def list(self, prefix: str) -> list[str]:
        return self.storage.list(prefix)

    def read(self, key: str) -> bytes:
        return self.storage.read_bytes(key)


def lake_root(root: str | None = None) -> str:
    return root or os.environ.get("SLUICE_LAKE") or str(Path(os.environ.get("SLUICE_HOME", ".sluice")) / "lake")


def open_lake(root: str | None = None, s3_client: Any = None) -> Lake:
    """The lake at ``root``, else ``$SLUICE_LAKE``, else ``$SLUICE_HOME/lake``: one place decides.

    ``s3_client`` is a boto3 S3 client to use for an ``s3://`` root (Airflow passes the one built from
    its ``aws_default`` connection); without it boto3's own configuration applies.
    """
    root = lake_root(root)
    if root.startswith("s3://"):
        return Lake(S3Storage(root, client=s3_client))
    if "://" in root:
        raise ValueError(f"unsupported lake URI {root!r}: use a local path or s3://bucket/prefix")
    return Lake(LocalStorage(root))
