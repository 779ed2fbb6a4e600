"""DAG parse time: each DAG file against a DAG-less baseline (Airflow's import plus one Asset).

Both are imported in fresh interpreters, as the dag-processor does, best of 3.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = "from airflow.sdk import DAG, Asset; Asset('sluice://features/baseline')"
LOAD = (
    "import importlib.util,sys; s=importlib.util.spec_from_file_location('d', sys.argv[1]); "
    "m=importlib.util.module_from_spec(s); s.loader.exec_module(m)"
)
BUDGET = 1.5  # a DAG file may cost at most 1.5x the bare Airflow import


def _best(args: list[str], n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> bool:
    base = _best(["-c", BASELINE])
    print(f"baseline (import airflow.sdk + one Asset): {base:.2f}s")
    ok = True
    for path in sorted((REPO / "dags").glob("*.py")):
        t = _best(["-c", LOAD, str(path)])
        ratio = t / base
        ok &= ratio <= BUDGET
        print(f"{path.name:24s} {t:.2f}s  ratio {ratio:.2f}x  (budget {BUDGET}x) {'OK' if ratio <= BUDGET else 'OVER'}")
    return ok
