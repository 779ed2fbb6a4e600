"""Feature drift: our check streamed from the stored reference profile against Evidently's DataDriftPreset.

- Data: a reference and a current dataset of 1M rows x 20 columns (14 numeric of assorted shapes, 6
  categorical), both written to parquet. The current one carries known changes (``CHANGES``): a numeric
  feature shifted by 0.3 sd, a categorical with a new category on 10% of the rows, a categorical whose top
  category loses 10 points of share, and a numeric shifted by a trivial 0.05 sd that must stay quiet; the
  other 16 columns are fresh draws from the same distributions.
- Evidently 0.7 (``DataDriftPreset()`` with its defaults; it needs pandas<3) runs in its own env,
  ``.bench-env``, built by ``make bench`` from benchmarks/evidently/requirements.txt, as a subprocess on the
  same two files (benchmarks/evidently/run.py); its time is reading both files + building its datasets +
  ``Report.run``, as it reports it.
- Ours, in memory: profile the reference frame and check the current frame, both already in memory.
- Ours, streamed from the stored profile: the reference is profiled once (timed apart: it happens when the
  model is trained, not at every check), then ``drift_from_parquet`` streams the current file in row
  batches. Budget: at least ``SPEED_BUDGET`` times faster than Evidently.
- Peak memory of the streamed check on a 5M-row current partition, in a fresh process: VmHWM at the end
  minus VmHWM after the imports and the profile load. Budget: under ``MEMORY_BUDGET_MB``.

Both tools' verdicts are printed side by side with what was injected; ours must catch every injected change
and stay quiet on the trivial shift and the unchanged columns (Evidently's misses are reported, not judged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 1_000_000
MEMORY_ROWS = 5_000_000
CHUNK_ROWS = 1_000_000  # rows per generated chunk, and so per parquet row group of the 5M-row file
SPEED_BUDGET = 30.0  # Evidently seconds / ours (streamed from the profile) seconds, at least
MEMORY_BUDGET_MB = 512.0
EVIDENTLY_TIMEOUT_S = 1800

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".bench-env" / "bin" / "python"
EVIDENTLY_RUNNER = ROOT / "benchmarks" / "evidently" / "run.py"

NUMERIC = [f"num_{i:02d}" for i in range(14)]
CATEGORICAL = [f"cat_{i:02d}" for i in range(6)]
CARDINALITY = {"cat_00": 6, "cat_01": 10, "cat_02": 3, "cat_03": 25, "cat_04": 100, "cat_05": 2}
NEW_CATEGORY = "cat_00_new"

# column -> (the injected change, whether a drift check should flag it)
CHANGES = {
    "num_00": ("mean +0.3 sd", True),
    "num_01": ("mean +0.05 sd (trivial)", False),
    "cat_00": ("new category on 10% of rows", True),
    "cat_01": ("top category share -10 points", True),
}


def _lognormal_sd(mu: float, sigma: float) -> float:
    return float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(2 * mu + sigma**2)))


# numeric column -> (draw(rng, n), the distribution's standard deviation)
_NUMERIC_SPECS = {
    "num_00": (lambda r, n: r.normal(50.0, 10.0, n), 10.0),
    "num_01": (lambda r, n: r.lognormal(3.0, 0.5, n), _lognormal_sd(3.0, 0.5)),
    "num_02": (lambda r, n: r.normal(0.0, 1.0, n), 1.0),
    "num_03": (lambda r, n: r.exponential(2.0, n), 2.0),
    "num_04": (lambda r, n: r.uniform(0.0, 100.0, n), 100 / np.sqrt(12)),
    "num_05": (lambda r, n: r.poisson(30.0, n).astype(np.float64), np.sqrt(30.0)),  # 2% nulls, see below
    "num_06": (lambda r, n: r.normal(-5.0, 3.0, n), 3.0),
    "num_07": (lambda r, n: r.gamma(2.0, 1.5, n), np.sqrt(2.0) * 1.5),
    "num_08": (lambda r, n: r.lognormal(0.0, 1.0, n), _lognormal_sd(0.0, 1.0)),
    "num_09": (lambda r, n: r.beta(2.0, 5.0, n), np.sqrt(10 / (49 * 8))),
    "num_10": (lambda r, n: np.round(r.normal(1000.0, 250.0, n)).astype(np.int64), 250.0),
    "num_11": (lambda r, n: r.standard_t(5.0, n), np.sqrt(5 / 3)),
    "num_12": (lambda r, n: r.uniform(-1.0, 1.0, n), 2 / np.sqrt(12)),
    "num_13": (lambda r, n: np.where(r.random(n) < 0.3, 0.0, r.exponential(10.0, n)), None),  # zero-inflated
}
_SHIFT_SD = {"num_00": 0.3, "num_01": 0.05}
_NULL_SHARE = {"num_05": 0.02, "cat_03": 0.01}


def _category_shares(k: int) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** 1.1  # Zipf-like: a few common values and a tail
    return p / p.sum()


def generate(rows: int, seed: int, current: bool) -> pa.Table:
    """``rows`` rows of the 20 columns; ``current`` applies the changes in ``CHANGES``."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    for name in NUMERIC:
        draw, sd = _NUMERIC_SPECS[name]
        values = draw(rng, rows)
        if current and name in _SHIFT_SD:
            values = values + _SHIFT_SD[name] * sd
        mask = rng.random(rows) < _NULL_SHARE[name] if name in _NULL_SHARE else None
        cols[name] = pa.array(values, mask=mask)
    for name in CATEGORICAL:
        k = CARDINALITY[name]
        labels = [f"{name}_v{i:03d}" for i in range(k)]
        p = _category_shares(k)
        if current and name == "cat_01":  # the top category gives 10 points of share to the others, pro rata
            p = p.copy()
            p[1:] += 0.10 * p[1:] / p[1:].sum()
            p[0] -= 0.10
        codes = rng.choice(k, size=rows, p=p).astype(np.int32)
        if current and name == "cat_00":
            labels.append(NEW_CATEGORY)
            codes[rng.random(rows) < 0.10] = k
        mask = rng.random(rows) < _NULL_SHARE[name] if name in _NULL_SHARE else None
        dictionary = pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask), pa.array(labels))
        cols[name] = dictionary.cast(pa.string())  # plain strings, as a landing file has them
    return pa.table(cols)


def write_parquet(path: Path, rows: int, seed: int, current: bool) -> None:
    """Written in ``CHUNK_ROWS`` chunks (row groups), so a 5M-row file never sits whole in this process."""
    with pq.ParquetWriter(path, generate(min(rows, 10), seed, current).schema) as writer:
        for i, start in enumerate(range(0, rows, CHUNK_ROWS)):
            writer.write_table(generate(min(CHUNK_ROWS, rows - start), seed * 1000 + i, current))


def run_evidently(ref: Path, cur: Path) -> dict:
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    env.pop("PYTHONPATH", None)  # the project's include/ must not leak into the pandas<3 env
    proc = subprocess.run(
        [str(BENCH_PYTHON), str(EVIDENTLY_RUNNER), str(ref), str(cur)],
        capture_output=True,
        text=True,
        env=env,
        timeout=EVIDENTLY_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Evidently runner failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


STREAM_TASK = """
import json, sys, time
sys.path[:0] = [sys.argv[3]]
import pandas, pyarrow.parquet
from sluice.config import MonitoringConfig
from sluice.monitoring.drift import drift_from_parquet, read_profile

def hwm_kb():  # VmHWM: this process's peak RSS (unlike ru_maxrss, it does not inherit the parent's)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])

profile = read_profile(sys.argv[1])
base = hwm_kb()
t0 = time.perf_counter(); res = drift_from_parquet(profile, sys.argv[2], MonitoringConfig()); t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "rows": res["rows"], "drifted": res["drifted_features"], "drift": res["drift"],
  "peak_kb": hwm_kb(), "base_kb": base}))
"""


def stream_peak(profile_path: Path, path: Path) -> dict:
    include = str(ROOT / "include")
    proc = subprocess.run(
        [sys.executable, "-c", STREAM_TASK, str(profile_path), str(path), include],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def check_in_memory(profile: dict, frame, settings) -> dict:
    """Ours on a frame already in memory: one ``update`` with the whole frame, then the verdict."""
    from sluice.monitoring.drift import DriftAccumulator

    return DriftAccumulator(profile, NUMERIC, CATEGORICAL).update(frame).result(settings)


def _verdict(drifted: bool | None) -> str:
    return "n/a" if drifted is None else ("DRIFT" if drifted else "-")


def _ours_detail(s: dict) -> str:
    psi = f"PSI {s['psi']:.3f}" if s.get("psi") is not None else "PSI n/a"
    if s["kind"] == "numeric":
        effect = f"{s['effect']:+.2f} sd" if s.get("effect") is not None else "sd n/a"
        return f"{effect}, {psi}"
    unseen = f", unseen {s['unseen_share']:.1%}" if s.get("unseen_share") else ""
    return f"share {s['effect']:.3f}{unseen}, {psi}"


def _outcome(drifted: bool | None, expected: bool) -> str:
    if drifted is None:
        return "not checked"
    if expected:
        return "caught" if drifted else "MISSED"
    return "quiet" if not drifted else "FALSE ALARM"


def main() -> bool:
    import pandas as pd

    from sluice.config import MonitoringConfig
    from sluice.monitoring.drift import drift_from_parquet, profile_frame, read_profile
    from sluice.training.profile import profile_json

    if not BENCH_PYTHON.exists():
        print(f"{BENCH_PYTHON.relative_to(ROOT)} is missing: `make bench` (or `make .bench-env/.synced`) builds it")
        return False
    settings = MonitoringConfig()

    with tempfile.TemporaryDirectory(prefix="sluice-drift-bench-") as tmp:
        tmp = Path(tmp)
        ref_path, cur_path, big_path = tmp / "ref.parquet", tmp / "cur.parquet", tmp / "cur-5m.parquet"
        t0 = time.perf_counter()
        write_parquet(ref_path, ROWS, seed=1, current=False)
        write_parquet(cur_path, ROWS, seed=2, current=True)
        print(
            f"generated reference and current: {ROWS:,} rows x {len(NUMERIC) + len(CATEGORICAL)} columns each "
            f"({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical), "
            f"{ref_path.stat().st_size / 1e6:.0f} + {cur_path.stat().st_size / 1e6:.0f} MB parquet "
            f"[{time.perf_counter() - t0:.1f}s]",
            flush=True,
        )

        # Evidently first, alone on the machine (its process holds several GB at 1M rows).
        t0 = time.perf_counter()
        ev = run_evidently(ref_path, cur_path)
        ev_wall = time.perf_counter() - t0
        print(
            f"Evidently {ev['evidently']} (pandas {ev['pandas']}) DataDriftPreset(): done in {ev_wall:.0f}s wall "
            f"(import {ev['seconds']['import']:.1f}s not counted), peak RSS {ev['peak_rss_mb']:,.0f} MB",
            flush=True,
        )

        # Ours. Warm the imports and code paths on a slice first (Evidently's import is not counted either).
        ref = pd.read_parquet(ref_path)
        cur = pd.read_parquet(cur_path)
        check_in_memory(profile_frame(ref.head(10_000), NUMERIC, CATEGORICAL), cur.head(10_000), settings)

        profile_s, profile = _timed(profile_frame, ref, NUMERIC, CATEGORICAL)
        check_s, mem_res = _timed(check_in_memory, profile, cur, settings)
        del ref, cur
        profile_path = tmp / "reference_profile.json"
        profile_path.write_bytes(profile_json(profile))

        def streamed() -> dict:
            return drift_from_parquet(read_profile(profile_path), cur_path, settings)

        stream_s, res = _timed(streamed)  # one run, like Evidently's (both read files the OS has just cached)

        # Peak memory on a 5M-row partition, in a fresh process.
        t0 = time.perf_counter()
        write_parquet(big_path, MEMORY_ROWS, seed=3, current=True)
        gen_big_s = time.perf_counter() - t0
        mem = stream_peak(profile_path, big_path)

    # ---- verdicts ------------------------------------------------------------------------------------------
    ours = res["features"]
    mismatch = [c for c in ours if ours[c]["drifted"] != mem_res["features"][c]["drifted"]]
    print(
        f"\nverdicts, {ROWS:,} rows each side (Evidently: its default method and threshold per column; ours: "
        "MonitoringConfig() defaults, streamed from the stored profile)"
    )
    cols = [*NUMERIC, *CATEGORICAL]
    ev_txt = {
        c: f"{_verdict(e['drifted']):<6}{e['method']} {e['score']:.4f} (threshold {e['threshold']:g})"
        for c, e in ((c, ev["columns"][c]) for c in cols)
    }
    w = max(len(t) for t in ev_txt.values())
    header = f"  {'column':<7} {'injected change':<30} {'expect':<6}  {'Evidently':<{w}}  ours"
    print(header)
    print("  " + "-" * (len(header) - 2 + 40))
    for col in cols:
        change, expected = CHANGES.get(col, ("-", False))
        print(
            f"  {col:<7} {change:<30} {_verdict(expected):<6}  {ev_txt[col]:<{w}}  "
            f"{_verdict(ours[col]['drifted']):<6}{_ours_detail(ours[col])}"
        )
    print(
        f"  dataset: Evidently {'DRIFT' if ev['dataset']['drifted'] else 'no drift'} "
        f"({ev['dataset']['drifted_columns']}/{ev['dataset']['columns']} columns drifted, share "
        f"{ev['dataset']['share']:.2f} vs its drift_share {ev['dataset']['drift_share']:g}); "
        f"ours {'DRIFT' if res['drift'] else 'no drift'} ({len(res['drifted_features'])} features carrying "
        f"{res['drifted_weight']:.0%} of the weight ({res['weighting']}) vs min_drifted_weight "
        f"{settings.min_drifted_weight:g})"
    )
    print("  ours, why:")
    for col in CHANGES:
        print(f"    {ours[col]['reason']}")
    if mismatch:
        print(f"  in-memory and streamed verdicts DIFFER on {mismatch}")

    ev_ok, ours_ok = True, True
    print("  injected changes, caught or missed:")
    for col, (change, expected) in CHANGES.items():
        ev_out, our_out = _outcome(ev["columns"][col]["drifted"], expected), _outcome(ours[col]["drifted"], expected)
        ev_ok &= ev_out in ("caught", "quiet")
        ours_ok &= our_out in ("caught", "quiet")
        print(f"    {col} {change:<30} Evidently {ev_out:<12} ours {our_out}")
    unchanged = [c for c in [*NUMERIC, *CATEGORICAL] if c not in CHANGES]
    ev_false = [c for c in unchanged if ev["columns"][c]["drifted"]]
    ours_false = [c for c in unchanged if ours[c]["drifted"]]
    ours_ok &= not ours_false and not mismatch
    print(
        f"    {len(unchanged)} unchanged columns: Evidently false alarms {ev_false or 'none'}, "
        f"ours false alarms {ours_false or 'none'}"
    )

    # ---- times and memory ------------------------------------------------------------------------------------
    es = ev["seconds"]
    ratio = es["total"] / stream_s
    print(f"\ntimes, {ROWS:,} current rows vs {ROWS:,} reference rows:")
    print(
        f"  Evidently DataDriftPreset   {es['total']:7.2f}s  = read both files {es['load']:.2f}s + datasets "
        f"{es['dataset']:.2f}s + Report.run {es['report']:.2f}s"
    )
    print(
        f"  ours, in memory             {profile_s + check_s:7.2f}s  = profile the reference frame {profile_s:.2f}s "
        f"+ check the current frame {check_s:.2f}s   (Evidently's Report.run / this: "
        f"{es['report'] / (profile_s + check_s):.0f}x)"
    )
    print(
        f"  ours, streamed from profile {stream_s:7.2f}s  = read the stored profile + drift_from_parquet "
        f"(batches of {drift_batch_rows():,} rows); profiling the reference once: {profile_s:.2f}s, not counted"
    )
    print(
        f"  Evidently / ours streamed: {ratio:.0f}x (budget >= {SPEED_BUDGET:g}x) "
        f"{'OK' if ratio >= SPEED_BUDGET else 'UNDER'}"
    )
    grown_mb = (mem["peak_kb"] - mem["base_kb"]) / 1024
    print(
        f"peak memory, streamed check of a {mem['rows']:,}-row current partition (fresh process, generated in "
        f"{gen_big_s:.0f}s): {mem['seconds']:.1f}s ({mem['rows'] / mem['seconds']:,.0f} rows/s), peak RSS "
        f"{mem['peak_kb'] / 1024:.0f} MB, {grown_mb:.0f} MB above the {mem['base_kb'] / 1024:.0f} MB after imports "
        f"and profile load (budget < {MEMORY_BUDGET_MB:g} MB) {'OK' if grown_mb < MEMORY_BUDGET_MB else 'OVER'}; "
        f"drifted {mem['drifted']}"
    )
    print(
        f"verdicts: ours {'caught every injected change and stayed quiet elsewhere' if ours_ok else 'WRONG (above)'}; "
        f"Evidently {'the same' if ev_ok and not ev_false else 'see MISSED / FALSE ALARM above'}"
    )
    return ratio >= SPEED_BUDGET and grown_mb < MEMORY_BUDGET_MB and ours_ok


def drift_batch_rows() -> int:
    from sluice.monitoring.drift import BATCH_ROWS

    return BATCH_ROWS
