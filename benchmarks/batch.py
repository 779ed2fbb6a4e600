"""Batch scoring of a 1M-row feature partition against the model alone.

- Throughput: ``score_partition`` (verify the files' sha256, stream parquet batches, score, write parquet,
  publish) against the floor, raw ``model.predict_proba`` on the same rows already in memory as one
  DataFrame. Both get the same threads and are timed best of ``REPEATS``, interleaved, so a neighbour's load
  hits both alike; every run and the load average are printed. Budget: at least 0.8x of the floor's rows
  per second. ``score_partition`` runs with its default workers (one single-threaded scorer per CPU, each
  taking a slice of every batch); ``workers=1`` (the model's own threads inside each batch) is printed too.
- Peak memory of ``score_partition`` in a fresh process: VmHWM at the end minus VmHWM after the imports and
  the model load. Budget: under 300 MB, i.e. memory follows the batch, not the partition.

The model is the loans config's (HistGradientBoosting) fitted on ~50k generated rows with their labels; the
partition is the loans generator's day at 1M rows through the features pipeline.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 1_000_000
TRAIN_ROWS = 50_000
DS, TRAIN_DS = dt.date(2025, 1, 6), dt.date(2025, 1, 5)
BATCH_ROWS = 65_536
REPEATS = 3
THROUGHPUT_BUDGET = 0.8  # ours must reach at least this share of the raw predict_proba rows/s
MEMORY_BUDGET_MB = 300.0

SCORE_TASK = """
import datetime as dt, json, pickle, sys, time
sys.path[:0] = [sys.argv[4]]
from sluice.config import get_model_config
from sluice.lake import Lake, LocalStorage
from sluice.serving.batch import score_partition

def hwm_kb():  # VmHWM: this process's peak RSS (unlike ru_maxrss, it does not inherit the parent's)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])

cfg = get_model_config("loans")
lake = Lake(LocalStorage(sys.argv[1]))
with open(sys.argv[2], "rb") as fh:
    model = pickle.load(fh)
base = hwm_kb()
out = score_partition(cfg, lake, dt.date.fromisoformat(sys.argv[3]), model, model_version="1", run_id="bench",
                      batch_rows=int(sys.argv[5]))
print(json.dumps({"base_kb": base, "peak_kb": hwm_kb(), "rows": out["rows"], "seconds": out["seconds"]}))
"""


def _features(cfg, ds: dt.date, rows: int):
    """``rows`` rows of the loans generator's day ``ds`` through the features pipeline (sorted by id)."""
    from sluice.datagen import loans
    from sluice.features.pipeline import build_features

    # the generator scales rows_per_day by a weekday factor (<= 1.12): ask for enough, keep exactly ``rows``
    events = loans.generate_events(ds, seed=1, rows_per_day=int(rows / 0.8))
    return build_features(events, cfg).head(rows).reset_index(drop=True), events


def _interleaved(fns: dict, repeats: int = REPEATS) -> dict[str, list[float]]:
    """Seconds of each ``fn`` over ``repeats`` rounds, one call of each per round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> bool:
    import pandas as pd

    from sluice.config import get_model_config
    from sluice.datagen import loans
    from sluice.features.pipeline import manifest_meta, to_parquet_bytes
    from sluice.lake import Lake, LocalStorage
    from sluice.serving.batch import read_predictions, score_partition
    from sluice.training.model import feature_columns, fit, predict_scores

    cfg = get_model_config("loans")
    t0 = time.perf_counter()
    train, _ = _features(cfg, TRAIN_DS, TRAIN_ROWS)
    labels = loans.generate_labels_for(TRAIN_DS, seed=1, rows_per_day=int(TRAIN_ROWS / 0.8))
    train = train.merge(labels[["application_id", "defaulted"]], on="application_id")
    model = fit(cfg, train)
    est = model.named_steps["model"]
    print(
        f"fitted {type(est).__name__} ({est.n_iter_} iterations) on {len(train):,} rows "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    t0 = time.perf_counter()
    feats, _ = _features(cfg, DS, ROWS)
    data = to_parquet_bytes(feats)
    print(
        f"partition: {len(feats):,} rows x {feats.shape[1]} columns, {len(data) / 1e6:.1f} MB parquet "
        f"(generated in {time.perf_counter() - t0:.1f}s)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(LocalStorage(Path(tmp, "lake")))
        lake.publish("features", cfg.features.feature_set, DS, {".parquet": data}, manifest_meta(feats, cfg, {}))
        # the floor's input: the model's columns as the parquet reader gives them, already in memory
        x = pd.read_parquet(io.BytesIO(data), columns=feature_columns(cfg))
        del data
        model.predict_proba(x.head(1000))  # warm both paths (lazy imports, OpenMP pool)

        load = os.getloadavg()[0]
        times = _interleaved(
            {
                "raw": lambda: model.predict_proba(x),
                "ours": lambda: score_partition(
                    cfg, lake, DS, model, model_version="1", run_id="bench", batch_rows=BATCH_ROWS
                ),
                "one": lambda: score_partition(
                    cfg, lake, DS, model, model_version="1", run_id="bench", batch_rows=BATCH_ROWS, workers=1
                ),
            }
        )
        raw_s, ours_s = min(times["raw"]), min(times["ours"])
        pred = read_predictions(cfg, lake, DS)
        same = len(pred) == ROWS and bool((pred["score"].to_numpy() == predict_scores(model, x, cfg.task)).all())

        raw_rps, ours_rps = ROWS / raw_s, ROWS / ours_s
        ratio = ours_rps / raw_rps
        ok_speed = ratio >= THROUGHPUT_BUDGET and same
        print(
            f"batch scoring, {ROWS:,} rows, batch_rows {BATCH_ROWS:,}, best of {REPEATS} interleaved "
            f"({os.cpu_count()} CPUs, load average {load:.2f} at start):"
        )
        print(f"  raw model.predict_proba (in memory, floor)     {raw_s:6.2f}s  {raw_rps:10,.0f} rows/s")
        print(
            f"  sluice score_partition (read+score+write)      {ours_s:6.2f}s  {ours_rps:10,.0f} rows/s   "
            f"ratio {ratio:4.2f}x of raw (budget >= {THROUGHPUT_BUDGET}x) {'PASS' if ok_speed else 'MISS'}"
        )
        one_s = min(times["one"])
        print(
            f"  sluice score_partition workers=1               {one_s:6.2f}s  {ROWS / one_s:10,.0f} rows/s   "
            f"ratio {raw_s / one_s:4.2f}x (the model's own threads inside each batch; not budgeted)"
        )
        print("  every run: " + "; ".join(f"{k} {', '.join(f'{t:.2f}' for t in v)}s" for k, v in times.items()))
        print(f"  scores identical to predict_scores in memory: {same}")

        model_path = Path(tmp, "model.pkl")
        model_path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        include = str(Path(__file__).resolve().parents[1] / "include")
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                SCORE_TASK,
                str(lake.root),
                str(model_path),
                DS.isoformat(),
                include,
                str(BATCH_ROWS),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(proc.stdout.strip().splitlines()[-1])
    delta_mb = (m["peak_kb"] - m["base_kb"]) / 1024
    ok_mem = delta_mb < MEMORY_BUDGET_MB and m["rows"] == ROWS
    print(
        f"peak memory of score_partition on {m['rows']:,} rows (fresh process, {m['seconds']:.1f}s): "
        f"+{delta_mb:.0f} MB above {m['base_kb'] / 1024:.0f} MB after imports and model load "
        f"(budget < {MEMORY_BUDGET_MB:.0f} MB) {'PASS' if ok_mem else 'MISS'}"
    )
    return ok_speed and ok_mem
