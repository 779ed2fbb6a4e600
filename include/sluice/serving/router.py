"""The stable address of a locally deployed model: a small HTTP router in front of the live model server.

    python -m sluice.serving.router --state .sluice/deployments/loans/live.json --port 8600

Blue/green needs one address that outlives every model server. The router forwards each request to the
server named in the state file, which the deployment target replaces atomically (write + rename) to
switch traffic; the file is re-read whenever its mtime changes, so a switch takes effect on the next
request, never in the middle of one. A request that finds its server gone (the old one stopping after
the switch) is retried on the current one: scoring has no side effects. Nothing else is retried. When the
live server does not answer at all (killed, crashed), the router answers 503 with a body that names the
version, its port and the way back (a redeploy), and ``Retry-After``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.serving.headers import UNKNOWN_HEADER, VERSION_HEADER

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("sluice.serving.router")

_FORWARD_HEADERS = ("content-type", "content-length", "accept")
#: Headers of the model server's answer passed on to the client (the version, the unknown-category counts).
_ANSWER_HEADERS = ("content-type", VERSION_HEADER.lower(), UNKNOWN_HEADER.lower())
_RETRIES = 3


class LiveState:
    """The state file's content, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._state: dict[str, Any] | None = None

    def get(self, force: bool = False) -> dict[str, Any] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._state = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_ino)
        if force or stamp != self._stamp:
            self._state = json.loads(self.path.read_text())
            self._stamp = stamp
        return self._state


def create_router(state_file: Path) -> Starlette:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state = LiveState(state_file)
    clients: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clients["http"] = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))
        yield
        await clients["http"].aclose()

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD_HEADERS}
        live = state.get()
        for attempt in range(_RETRIES):
            if live is None:
                return JSONResponse({"error": f"no model version is deployed behind this address ({state_file})"}, 503)
            url = f"http://127.0.0.1:{live['port']}{request.url.path}"
            try:
                resp = await clients["http"].request(request.method, url, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning(
                    "v%s on port %s did not answer (%s); re-reading %s",
                    live.get("version"),
                    live["port"],
                    type(exc).__name__,
                    state_file,
                )
                await asyncio.sleep(0.05 * (attempt + 1))
                live = state.get(force=True)
                continue
            out = {k: v for k, v in resp.headers.items() if k.lower() in _ANSWER_HEADERS}
            return Response(resp.content, status_code=resp.status_code, headers=out)
        # the live server is gone (killed, crashed): unavailable, not a bad answer; say which and how to restore
        version, port = (live or {}).get("version"), (live or {}).get("port")
        return JSONResponse(
            {
                "error": f"model server v{version} on 127.0.0.1:{port} is not answering (see its log, process "
                f"{(live or {}).get('process')}); redeploy the champion with the deployment DAG to restore service",
                "live_version": version,
            },
            503,
            headers={"Retry-After": "5"},
        )

    async def whoami(request: Request) -> Response:
        live = state.get()
        return JSONResponse({"router": str(state_file), "live_version": live.get("version") if live else None})

    routes = [
        Route("/_router", whoami, methods=["GET"]),
        Route("/ping", forward, methods=["GET"]),
        Route("/invocations", forward, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sluice.serving.router", description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True, type=Path)
    ap.add_argument("--port", required=True, type=int)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    log.info("routing 127.0.0.1:%s to the server named in %s", args.port, args.state)
    uvicorn.run(
        create_router(args.state),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
