"""Model server cold start: from exec to the first answered /ping, against a bare app in the same run.

A deploy starts two model servers (infra validation, then green of blue/green) and waits on each until
/ping answers, so the start-up is paid twice per deploy. Measured as the deployment measures it: exec
``python -m sluice.serving.server`` (sha256 check, config, model load, app) on the loans pipeline saved as
training saves it (MLflow's sklearn flavour, skops), poll /ping every 10 ms, stop at the first 200.

Baseline (named, measured in this run on the same machine): a bare FastAPI app with a /ping route that
does nothing, served by the same uvicorn -- the floor of any Python HTTP model server here: interpreter,
fastapi and uvicorn imports, bind, first answer. Best of 5 runs each, interleaved, so a busy neighbour
hits both alike.

Budget: the server process's CPU seconds to its first answer within 8.5x the bare app's (a neighbour on a
shared machine stretches wall time more than the work done; both are printed). On an idle 2-core machine
loading through ``mlflow.sklearn`` measured 8.8x, skops directly 6.6-7.5x, with bytecode compiled 3.5x
(docs/serving.md); with neighbours at load 7-9 every ratio rises (skops directly: 8.9x).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5
BUDGET = 8.5
BARE_APP = """
import sys
import uvicorn
from fastapi import FastAPI
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def save_model_dir(dest: Path) -> tuple[Path, str]:
    """The loans pipeline saved as training logs it (skops, trusted types); returns (config json, sha256)."""
    import mlflow.sklearn
    import skops.io

    from benchmarks.serving import loans_frame
    from sluice.config import get_model_config
    from sluice.registry.artifact import model_dir_sha256
    from sluice.registry.mlflow_registry import pip_requirements
    from sluice.training.model import feature_columns, fit

    cfg = get_model_config("loans")
    frame = loans_frame(cfg, days=3, rows_per_day=2000)
    model = fit(cfg, frame)
    trusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    mlflow.sklearn.save_model(
        model,
        str(dest / "model"),
        skops_trusted_types=trusted,
        input_example=frame[feature_columns(cfg)].head(2),
        pip_requirements=pip_requirements(),
    )
    cfg_file = dest / "loans.config.json"
    cfg_file.write_text(cfg.model_dump_json())
    return cfg_file, model_dir_sha256(dest / "model")[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_ping(cmd: list[str], port: int, timeout: float = 120) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from exec of ``cmd`` to its first 200 on /ping; the process is stopped
    afterwards."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}: {proc.stderr.read()[-2000:]!r}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - t0, _cpu_s(proc.pid)
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{cmd[:4]} did not answer /ping on port {port} within {timeout:.0f}s")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def server_cmd(model_dir: Path, cfg_file: Path, sha: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sluice.serving.server",
        "--model",
        "loans",
        "--version",
        "1",
        "--model-dir",
        str(model_dir),
        "--config",
        str(cfg_file),
        "--sha256",
        sha,
        "--port",
        str(port),
    ]


def main() -> bool:
    import shutil

    home = Path(tempfile.mkdtemp(prefix="sl-bench-cold-"))
    try:
        cfg_file, sha = save_model_dir(home)
        bare, ours = [], []
        for _ in range(RUNS):
            port = _free_port()
            bare.append(time_to_ping([sys.executable, "-c", BARE_APP, str(port)], port))
            port = _free_port()
            ours.append(time_to_ping(server_cmd(home / "model", cfg_file, sha, port), port))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"cold start to the first answered /ping, best of {RUNS} runs (wall s / CPU s of the server process)")
    for name, runs in (("baseline: bare FastAPI app on uvicorn", bare), ("sluice.serving.server (loans, skops)", ours)):
        best_wall, best_cpu = min(w for w, _ in runs), min(c for _, c in runs)
        every = " ".join(f"{w:.2f}/{c:.2f}" for w, c in runs)
        print(f"  {name:38s} wall {best_wall:6.2f}s  CPU {best_cpu:6.2f}s   runs {every}")
    wall_ratio = min(w for w, _ in ours) / min(w for w, _ in bare)
    cpu_ratio = min(c for _, c in ours) / min(c for _, c in bare)
    print(f"  model server / bare app: wall {wall_ratio:.2f}x, CPU {cpu_ratio:.2f}x")
    ok = cpu_ratio <= BUDGET
    print(
        f"budget: CPU to first /ping, model server / bare app {cpu_ratio:.2f}x <= {BUDGET}x: {'PASS' if ok else 'MISS'}"
    )
    return ok
