"""A keep-alive JSON client for a model server or router on a loopback port, and a load loop over it."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from typing import Any


class ServerClient:
    """Keep-alive JSON client for one loopback port."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def score(self, records: Sequence[dict[str, Any]]) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = json.dumps({"records": list(records)})
        self.conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        raw = resp.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"error": raw[:200].decode(errors="replace")}
        return resp.status, payload, {k.lower(): v for k, v in resp.getheaders()}

    def close(self) -> None:
        self.conn.close()


class LoadLoop(threading.Thread):
    """Sequential requests against an address until stopped: what a client sees across a deployment.

    ``ok`` holds the answering version of every good answer (the ``X-Sluice-Model-Version`` header), in
    order; ``failed`` what went wrong otherwise. A dropped connection is reopened and counted as a failure.
    """

    def __init__(self, port: int, records: Sequence[dict[str, Any]], pause_s: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.port, self.records, self.pause_s = port, list(records), pause_s
        self.stop_event = threading.Event()
        self.ok: list[str] = []
        self.failed: list[str] = []

    def run(self) -> None:
        client = ServerClient(self.port)
        while not self.stop_event.is_set():
            try:
                status, payload, headers = client.score(self.records)
                if status == 200 and len(payload.get("predictions", [])) == len(self.records):
                    self.ok.append(headers.get("x-sluice-model-version", "?"))
                else:
                    self.failed.append(f"HTTP {status}: {payload}")
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append(f"{type(exc).__name__}: {exc}")
                client.close()
                client = ServerClient(self.port)
            if self.pause_s:
                time.sleep(self.pause_s)
        client.close()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.join(timeout)
