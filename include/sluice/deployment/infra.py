"""Infra validation: the exact version, in a fresh serving process, against the budget in config.

TFX's InfraValidator does this for TF Serving only; here it is any Sluice model in the process that will
serve it (``sluice.serving.server``, started on a free loopback port):

1. the artifact's sha256 matches the one recorded at training (checked on download and again by the server);
2. the server starts and answers /ping with that version within ``startup_timeout_s``;
3. the input example logged with the model scores with 200 and one finite prediction per row;
4. N rows sampled from the latest feature partition, one request each, give one prediction each
   (a probability in [0, 1] for a classifier) -- the output schema -- with p95 latency under the budget
   (the same rows are sent again, up to ``LATENCY_ROUNDS`` rounds in all, while a round is over the budget:
   the best round is judged, every round is reported);
5. the server's peak resident memory (VmHWM) stays under ``max_memory_mb``.

Every check is recorded with what was observed and the limit; the report is the evidence either way.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.config import ModelConfig
from sluice.deployment.targets import DeploymentError, Release
from sluice.lake import Lake
from sluice.registry.artifact import ArtifactMismatch, fetch_release
from sluice.runtime import Settings, free_port, stop_process
from sluice.serving.client import ServerClient

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Rounds of single-row requests at most, while the p95 is over the budget (see the module doc).
LATENCY_ROUNDS = 3


def sample_records(cfg: ModelConfig, lake: Lake, n: int, seed: int = 0) -> tuple[list[dict[str, Any]], str]:
    """``n`` rows of the latest published feature partition as JSON records (nulls as None), and its ds."""
    import pandas as pd

    from sluice.training.model import feature_columns

    days = lake.partitions("features", cfg.features.feature_set)
    if not days:
        raise DeploymentError(
            f"no published feature partition of {cfg.features.feature_set!r} in {lake.root} to sample requests "
            f"from: run {cfg.dag_id('features')} first"
        )
    ds = days[-1]
    frame = pd.concat(
        [pd.read_parquet(io.BytesIO(b)) for b in lake.read_published("features", cfg.features.feature_set, ds)]
    )
    cols = feature_columns(cfg)
    rows = frame[cols].sample(n=min(n, len(frame)), random_state=seed)
    return json_records(rows), ds.isoformat()


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as the JSON records a client sends: a missing value (NaN, NaT, None) becomes null, a
    timestamp an ISO string. The one conversion for every request infra validation makes: a model server
    refuses NaN (``must be finite``), so a record that holds it can never be sent as it is."""
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return records


def input_example_records(model_dir: Path) -> list[dict[str, Any]]:
    """The input example MLflow stored with the model (pandas split orient, missing values as NaN) as
    records, through :func:`json_records`, so a missing value is sent as null."""
    import pandas as pd

    path = model_dir / "input_example.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return json_records(pd.DataFrame(data["data"], columns=data["columns"]))
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return json_records(pd.DataFrame.from_records(data))
    raise DeploymentError(f"{path}: unrecognised input example layout {sorted(data) if isinstance(data, dict) else ''}")


def prediction_problems(cfg: ModelConfig, payload: dict[str, Any], rows: int) -> list[str]:
    """What is wrong with a scoring answer's shape and values (empty when it is right)."""
    preds = payload.get("predictions")
    if not isinstance(preds, list):
        return [f"no 'predictions' list in the answer: {str(payload)[:200]}"]
    if len(preds) != rows:
        return [f"{len(preds)} predictions for {rows} rows"]
    bad = [p for p in preds if not isinstance(p, (int, float)) or not math.isfinite(p)]
    if bad:
        return [f"{len(bad)} predictions are not finite numbers, e.g. {bad[0]!r}"]
    if cfg.task == "classification" and any(p < 0 or p > 1 for p in preds):
        return [f"probabilities outside [0, 1]: min {min(preds)}, max {max(preds)}"]
    return []


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _check(name: str, passed: bool, observed: Any, limit: Any, message: str) -> dict[str, Any]:
    return {"check": name, "passed": bool(passed), "observed": observed, "limit": limit, "message": message}


def _score_one_by_one(
    cfg: ModelConfig, client: ServerClient, records: list[dict[str, Any]]
) -> tuple[list[float], list[str]]:
    """One request per record: the latency of each (ms) and what was wrong with the answers (up to 5)."""
    latencies: list[float] = []
    problems: list[str] = []
    for rec in records:
        t = time.perf_counter()
        status, payload, _ = client.score([rec])
        latencies.append((time.perf_counter() - t) * 1000)
        if status != 200:
            problems.append(f"HTTP {status}: {payload.get('error', '')}")
        else:
            problems += prediction_problems(cfg, payload, 1)
        if len(problems) >= 5:
            break
    return latencies, problems


def _latency_summary(latencies: list[float]) -> dict[str, float]:
    lat = np.asarray(latencies)
    return {
        "p50": round(float(np.percentile(lat, 50)), 3),
        "p95": round(float(np.percentile(lat, 95)), 3),
        "max": round(float(lat.max()), 3),
    }


def infra_validate(
    cfg: ModelConfig, lake: Lake, release: Release, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Run every check; returns the report (``passed`` is False if any check failed). Never raises for the model."""
    from sluice.deployment.local import spawn_server

    budget = cfg.deploy.infra_validation
    settings = settings or Settings.from_env()
    checks: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "model": cfg.name,
        "version": release.version,
        "model_uri": release.model_uri,
        "budget": budget.model_dump(),
        "checks": checks,
    }

    def done() -> dict[str, Any]:
        report["passed"] = bool(checks) and all(c["passed"] for c in checks)
        report["failed"] = [f"{c['check']}: {c['message']}" for c in checks if not c["passed"]]
        return report

    try:
        model_dir = fetch_release(release)
        checks.append(_check("artifact_sha256", True, release.sha256, release.sha256, "matches training"))
    except ArtifactMismatch as exc:
        checks.append(_check("artifact_sha256", False, None, release.sha256, str(exc)))
        return done()
    records, ds = sample_records(cfg, lake, budget.sample_rows, seed=int(release.version))
    report["sample"] = {"features_ds": ds, "rows": len(records)}
    example = input_example_records(model_dir)
    name = f"infraval-{cfg.name}-v{release.version}"
    port = free_port()
    t0 = time.monotonic()
    try:
        pid = spawn_server(cfg, settings, name, release, model_dir, port, budget.startup_timeout_s)
    except DeploymentError as exc:
        checks.append(_check("starts", False, None, budget.startup_timeout_s, str(exc)))
        return done()
    client = ServerClient(port)
    try:
        start_s = round(time.monotonic() - t0, 2)
        checks.append(_check("starts", True, start_s, budget.startup_timeout_s, f"answered /ping after {start_s}s"))
        if example:
            status, payload, _ = client.score(example)
            problems = [f"HTTP {status}: {payload.get('error', '')}"] if status != 200 else []
            problems = problems or prediction_problems(cfg, payload, len(example))
            checks.append(_check("input_example", not problems, status, 200, "; ".join(problems) or "scored"))
        latencies, problems = _score_one_by_one(cfg, client, records)
        # Noise only ever adds time: a busy neighbour can push one round over the budget, a slow model fails
        # every round. Up to LATENCY_ROUNDS rounds over the same rows; the best round's p95 is judged.
        rounds = [_latency_summary(latencies)]
        while not problems and rounds[-1]["p95"] > budget.max_latency_ms_p95 and len(rounds) < LATENCY_ROUNDS:
            again, problems = _score_one_by_one(cfg, client, records)
            rounds.append(_latency_summary(again))
        best = min(rounds, key=lambda r: r["p95"])
        report["latency_ms"] = {**best, "rounds_p95": [r["p95"] for r in rounds]}
        checks.append(
            _check(
                "output_schema",
                not problems,
                f"{len(latencies) - len(problems)}/{len(latencies)} ok",
                "all",
                "; ".join(problems[:5]) or f"{len(latencies)} sampled rows of ds={ds} scored",
            )
        )
        p95 = best["p95"]
        tried = f" (best of {len(rounds)} rounds: {[r['p95'] for r in rounds]})" if len(rounds) > 1 else ""
        checks.append(
            _check(
                "latency_p95_ms",
                p95 <= budget.max_latency_ms_p95,
                p95,
                budget.max_latency_ms_p95,
                f"p95 {p95} ms over {len(latencies)} single-row requests{tried}",
            )
        )
        mem = round(_peak_rss_mb(pid), 1)
        checks.append(
            _check(
                "memory_mb", mem <= budget.max_memory_mb, mem, budget.max_memory_mb, f"peak resident memory {mem} MB"
            )
        )
    except (OSError, http.client.HTTPException) as exc:
        checks.append(_check("serves", False, None, None, f"{type(exc).__name__}: {exc}"))
    finally:
        client.close()
        stop_process(settings, name)
    log.info("infra validation of %s v%s: %s", cfg.name, release.version, "PASS" if done()["passed"] else "FAIL")
    return done()
