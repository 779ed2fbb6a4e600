"""Single-row latency of the local model server, against in-process predict and ``mlflow models serve``.

The same fitted loans pipeline, saved as MLflow saves it (skops), is measured four ways, 1000 sequential
single-row requests each on a keep-alive connection, one client:

- baseline (floor): ``predict_scores`` on a one-row DataFrame in this process (no HTTP, no JSON);
- ``mlflow models serve`` on the same model directory (named baseline: what teams run without Sluice);
- our server directly (strict request validation, sha256-checked load);
- our server behind the router, the stable address clients use (blue/green).

Budget: p99 through the stable address within the model's infra-validation p95 budget
(``deploy.infra_validation.max_latency_ms_p95``), so a healthy deployment never fails its own check.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

REQUESTS = 1000
WARMUP = 50


def _latencies(port: int, body_for, n: int) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = np.empty(n)
    for i in range(n + WARMUP):
        t = time.perf_counter()
        conn.request("POST", "/invocations", body=body_for(i), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"port {port}: HTTP {resp.status}: {data[:300]!r}")
        if i >= WARMUP:
            out[i - WARMUP] = (time.perf_counter() - t) * 1000
    conn.close()
    return out


def _wait(port: int, path: str, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _row(p: np.ndarray) -> str:
    return f"p50 {np.percentile(p, 50):7.2f} ms   p99 {np.percentile(p, 99):7.2f} ms"


def loans_frame(cfg: Any, days: int, rows_per_day: int) -> pd.DataFrame:
    """Generated loans features joined to their labels, ``days`` days from 2025-01-01 (seed 1)."""
    import pandas as pd

    from sluice.datagen import loans
    from sluice.features.pipeline import build_features

    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    feats = pd.concat([build_features(loans.generate_events(d, seed=1, rows_per_day=rows_per_day), cfg) for d in dates])
    labels = pd.concat([loans.generate_labels_for(d, seed=1, rows_per_day=rows_per_day) for d in dates])
    return feats.merge(labels[["application_id", cfg.labels.column]], on="application_id")


def main() -> bool:
    import mlflow.sklearn
    import skops.io

    from sluice.config import get_model_config
    from sluice.deployment.local import LocalTarget, free_port, spawn_server
    from sluice.deployment.targets import Release
    from sluice.registry.artifact import model_dir_sha256
    from sluice.registry.mlflow_registry import pip_requirements
    from sluice.runtime import Settings, stop_process
    from sluice.training.model import feature_columns, fit, predict_scores

    cfg = get_model_config("loans")
    frame = loans_frame(cfg, days=5, rows_per_day=4000)
    model = fit(cfg, frame)
    cols = feature_columns(cfg)
    rows = frame[cols].head(REQUESTS + WARMUP)
    records = json.loads(rows.to_json(orient="records"))
    ours_body = [json.dumps({"records": [r]}) for r in records]
    mlflow_body = [json.dumps({"dataframe_records": [r]}) for r in records]

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        inproc = np.empty(REQUESTS)
        for i in range(REQUESTS + WARMUP):
            one = rows.iloc[[i]]
            t = time.perf_counter()
            predict_scores(model, one, cfg.task)
            if i >= WARMUP:
                inproc[i - WARMUP] = (time.perf_counter() - t) * 1000

    home = Path(tempfile.mkdtemp(prefix="sl-bench-"))
    settings = Settings(home=home, airflow_port=0, mlflow_port=0, smtp_port=0)
    model_dir = home / "model"
    trusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    mlflow.sklearn.save_model(
        model,
        str(model_dir),
        skops_trusted_types=trusted,
        input_example=rows.head(2),
        pip_requirements=pip_requirements(),
    )
    _, sha = model_dir_sha256(model_dir)
    release = Release(cfg.name, "1", "bench", sha)
    results: dict[str, np.ndarray | None] = {}
    mlflow_proc = None
    try:
        port = free_port()
        bin_dir = str(Path(sys.executable).parent)  # mlflow execs `uvicorn` by name
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
        mlflow_proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "-p",
                str(port),
                "--env-manager",
                "local",
                "--workers",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        results["mlflow models serve"] = (
            _latencies(port, lambda i: mlflow_body[i], REQUESTS) if _wait(port, "/ping") else None
        )
        mlflow_proc.terminate()
        mlflow_proc.wait(30)
        mlflow_proc = None

        target = LocalTarget(cfg, port=free_port(), settings=settings)
        port = free_port()
        spawn_server(cfg, settings, "serve-bench", release, model_dir, port, 120)
        results["ours, direct"] = _latencies(port, lambda i: ours_body[i], REQUESTS)
        target._write_live({"model": cfg.name, "version": "1", "sha256": sha, "port": port, "process": "serve-bench"})
        target._ensure_router()
        results["ours, stable address (router)"] = _latencies(target.port, lambda i: ours_body[i], REQUESTS)
    finally:
        if mlflow_proc is not None:
            mlflow_proc.kill()
        for name in ("serve-bench", f"router-{cfg.name}"):
            stop_process(settings, name)

    print(f"single-row requests, {REQUESTS} sequential on one keep-alive connection, 1 server worker, OMP 1 thread")
    print(f"  baseline: in-process predict_scores  {_row(inproc)}")
    for name, lat in results.items():
        print(f"  {name:34s}  " + (_row(lat) if lat is not None else "did not start within 120 s"))
    stable = results["ours, stable address (router)"]
    mlflow_lat = results.get("mlflow models serve")
    if mlflow_lat is not None:
        ratio = np.percentile(stable, 50) / np.percentile(mlflow_lat, 50)
        print(f"  p50 through the stable address / mlflow models serve: {ratio:.2f}x")
    budget = cfg.deploy.infra_validation.max_latency_ms_p95
    p99 = float(np.percentile(stable, 99))
    ok = p99 <= budget
    print(f"budget: p99 through the stable address {p99:.2f} ms <= {budget} ms: {'PASS' if ok else 'MISS'}")
    return ok
