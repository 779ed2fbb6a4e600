"""The ``batch`` target: no endpoint. Deploying a version means the batch inference DAG scores with it.

``deploy`` verifies the artifact and records the release as live (``$SLUICE_HOME/deployments/<model>/
live.json``); ``invoke`` scores in this process with the verified model, which is what the smoke test
and the batch inference DAG do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from sluice.config import ModelConfig
from sluice.deployment.targets import Endpoint, Release
from sluice.registry.artifact import fetch_release, load_model
from sluice.runtime import Settings


class BatchTarget:
    name = "batch"

    def __init__(self, cfg: ModelConfig, *, settings: Settings | None = None) -> None:
        self.cfg = cfg
        self.state_file = (settings or Settings.from_env()).home / "deployments" / cfg.name / "live.json"

    def live(self) -> dict[str, Any] | None:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else None

    def deploy(self, release: Release) -> Endpoint:
        fetch_release(release)
        old = self.live()
        state = {
            **release.to_dict(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "previous": {k: old[k] for k in ("version", "sha256", "model_uri", "run_id")} if old else None,
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_file)
        return self.current()  # type: ignore[return-value]

    def invoke(self, records: list[dict[str, Any]]) -> list[float]:
        import pandas as pd

        from sluice.serving.schema import parse_records, request_schema
        from sluice.training.model import predict_scores

        live = self.live()
        if live is None:
            raise RuntimeError(f"nothing deployed for {self.cfg.name}")
        release = Release(**{k: live[k] for k in ("model", "version", "model_uri", "sha256", "run_id")})
        model = load_model(fetch_release(release))
        frame: pd.DataFrame = parse_records({"records": records}, request_schema(self.cfg), max_rows=len(records))
        scores: list[float] = predict_scores(model, frame, self.cfg.task).tolist()
        return scores

    def health(self) -> bool:
        return self.live() is not None

    def current(self) -> Endpoint | None:
        live = self.live()
        if live is None:
            return None
        return Endpoint(
            self.name, self.cfg.name, live["version"], None, {"sha256": live["sha256"], "since": live["since"]}
        )

    def undeploy(self) -> None:
        self.state_file.unlink(missing_ok=True)
