"""``/sluice/lake/<key>``: the evidence zones of the lake (quarantine records, reports), read-only.

Every key is checked before any storage call: one of the served zones, no empty, ``.``, ``..`` or
hidden segment, no backslash or control character, bounded length and depth. On a local lake the
resolved path (symlinks followed) must stay inside the zone's folder, so a symlink to ``/etc`` or to
``landing/`` is a 404 like any missing key. HTML, JSON and text are shown inline under the strict CSP
(HTML also sandboxed); anything else (parquet, CSV, raw copies) is a download, never rendered.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from sluice.airflow.ui.guard import SANDBOX
from sluice.safehtml import CSP, esc, page

log = logging.getLogger(__name__)

SERVED_ZONES = ("quarantine", "reports")
MAX_KEY_CHARS = 512
MAX_KEY_DEPTH = 16
INLINE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".png": "image/png",
}

router = APIRouter()


def _not_found(key: str) -> HTTPException:
    shown = key if len(key) <= 120 else key[:120] + "..."
    return HTTPException(status_code=404, detail=f"{shown!r} is not served: only {SERVED_ZONES} of the lake are")


def checked_key(key: str) -> str:
    """The key if it may be served (a trailing ``/`` asks for a listing), else a 404."""
    if len(key) > MAX_KEY_CHARS or key.count("/") > MAX_KEY_DEPTH or "\\" in key:
        raise _not_found(key)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise _not_found(key)
    parts = key.removesuffix("/").split("/")
    if parts[0] not in SERVED_ZONES or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise _not_found(key)
    return key


def contained(lake: Any, key: str) -> bool:
    """On a local lake: the key's real path (symlinks resolved) is inside its zone's real folder."""
    local = lake.storage.local_path(key)
    if local is None:  # S3: keys are names, not paths; checked_key already refused traversal
        return True
    zone = key.split("/", 1)[0]
    try:
        real = Path(local).resolve(strict=False)
        return real.is_relative_to(Path(lake.storage.root, zone).resolve(strict=False))
    except (OSError, RuntimeError, ValueError):  # name too long, symlink loop
        return False


def _exists(lake: Any, key: str) -> bool:
    try:
        return lake.storage.exists(key)
    except (OSError, ValueError):
        return False


def _attachment_name(key: str) -> str:
    name = PurePosixPath(key).name
    ascii_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(key: str, data: bytes) -> Response:
    suffix = PurePosixPath(key).suffix.lower()
    media = INLINE_TYPES.get(suffix)
    if media is None:
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": _attachment_name(key)},
        )
    headers = {"Content-Security-Policy": CSP + SANDBOX} if suffix == ".html" else {}
    return Response(data, media_type=media, headers=headers)


def listing(request: Request, key: str, keys: list[str]) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    items = "".join(
        f'<li><a href="{esc(root)}/lake/{esc(quote(k))}">{esc(k.removeprefix(key.rstrip("/") + "/"))}</a></li>'
        for k in keys
    )
    title = f"{key.rstrip('/')}/"
    return HTMLResponse(page(title, f"<h1>{esc(title)}</h1><ul>{items}</ul>"))


def open_lake() -> Any:
    from sluice.airflow.hooks import LakeHook

    return LakeHook().get_conn()


@router.get("/lake/{key:path}")
def lake_object(key: str, request: Request) -> Response:
    key = checked_key(key)
    lake = open_lake()
    if not contained(lake, key):
        raise _not_found(key)
    if not key.endswith("/") and _exists(lake, key):
        return file_response(key, lake.read(key))
    prefix = key.rstrip("/")
    keys = [k for k in lake.list(prefix) if not any(p.startswith(".") for p in k.split("/")) and contained(lake, k)]
    if not keys:
        raise HTTPException(status_code=404, detail=f"{key[:120]!r} not found in the lake")
    return listing(request, prefix, keys)
