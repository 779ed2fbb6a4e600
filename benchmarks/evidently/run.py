"""Evidently's DataDriftPreset (defaults) on a reference and a current parquet file; prints ONE JSON line.

Runs inside the separate benchmark env (.bench-env, built by ``make bench`` from requirements.txt beside
this file): Evidently 0.7 needs pandas<3, so it cannot be imported in the project venv.

    .bench-env/bin/python benchmarks/evidently/run.py REF.parquet CUR.parquet

Column roles come from the parquet dtypes (numeric -> numerical, everything else -> categorical) and are
given to Evidently explicitly, so it tests the same columns the same way as the check it is compared with;
the preset itself keeps all its defaults (per-column method picked by Evidently, its thresholds, drift_share
0.5). Timed separately: reading both files, building the Evidently datasets, and ``Report.run``.

Output keys: ``evidently`` (version), ``rows``, ``seconds`` (import, load, dataset, report, total = load +
dataset + report), ``peak_rss_mb`` (this process), ``columns`` (per column: type, drifted, method,
threshold, score) and ``dataset`` (drifted, drifted_columns, columns, share, drift_share).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry: never phone home from a benchmark


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1]) / 1024


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ref_path, cur_path = argv

    t0 = time.perf_counter()
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    t_load = time.perf_counter() - t0

    is_num, is_bool = pd.api.types.is_numeric_dtype, pd.api.types.is_bool_dtype
    numerical = [c for c in ref.columns if is_num(ref[c]) and not is_bool(ref[c])]
    categorical = [c for c in ref.columns if c not in numerical]

    t0 = time.perf_counter()
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    ref_ds = Dataset.from_pandas(ref, data_definition=definition)
    cur_ds = Dataset.from_pandas(cur, data_definition=definition)
    t_dataset = time.perf_counter() - t0

    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
    t_report = time.perf_counter() - t0

    # Per-column scores as the preset reports them (one ValueDrift metric per column, method resolved by Evidently).
    scores: dict[str, dict] = {}
    count = None
    for m in snapshot.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith(":ValueDrift"):
            scores[cfg["column"]] = {"method": cfg["method"], "threshold": cfg["threshold"], "score": m["value"]}
        elif cfg["type"].endswith(":DriftedColumnsCount"):
            count = m["value"]

    # Evidently's own verdicts: the preset renders its legacy DataDriftTable (per column drift_detected) and
    # DatasetDriftMetric (dataset_drift) as part of Report.run; read them from the run's cache, no recomputation.
    table = dataset = None
    for result, _widgets in snapshot._context._legacy_metrics.values():
        if hasattr(result, "drift_by_columns"):
            table = result.drift_by_columns
        elif hasattr(result, "dataset_drift"):
            dataset = result

    columns = {}
    for col in ref.columns:
        row = {"type": "num" if col in numerical else "cat", **scores.get(col, {})}
        if table is not None and col in table:
            t = table[col]
            row["drifted"] = bool(t.drift_detected)
            row.setdefault("method", t.stattest_name)
            row.setdefault("threshold", t.stattest_threshold)
            row.setdefault("score", float(t.drift_score))
        else:
            row["drifted"] = None
        columns[col] = row

    out = {
        "evidently": evidently.__version__,
        "pandas": pd.__version__,
        "rows": {"reference": len(ref), "current": len(cur)},
        "seconds": {
            "import": t_import,
            "load": t_load,
            "dataset": t_dataset,
            "report": t_report,
            "total": t_load + t_dataset + t_report,
        },
        "peak_rss_mb": _hwm_mb(),
        "columns": columns,
        "dataset": {
            "drifted": None if dataset is None else bool(dataset.dataset_drift),
            "drifted_columns": None if dataset is None else int(dataset.number_of_drifted_columns),
            "columns": None if dataset is None else int(dataset.number_of_columns),
            "share": (None if dataset is None else float(dataset.share_of_drifted_columns))
            if count is None
            else float(count["share"]),
            "drift_share": None if dataset is None else float(dataset.drift_share),
        },
    }
    print(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
