"""Start an Airflow component with the pipeline's libraries already imported.

The LocalExecutor forks its workers from the scheduler, and each worker forks one process per task.
A task of Sluice imports pandas, pyarrow, Great Expectations, scikit-learn or MLflow: seconds of CPU per
task when each process imports them afresh. Imported once here, in the scheduler before it forks, every
task process starts with them in memory (copy-on-write), which on a 2-core machine is the difference
between a demo bound by imports and one bound by the work. Only imports: no thread, no connection.

``python -m sluice.airflow.preload scheduler --skip-serve-logs`` runs ``airflow scheduler --skip-serve-logs``.
"""

from __future__ import annotations

import importlib
import sys
import time

#: what Sluice tasks import (the modules of the task code pull in pandas, pyarrow, GX, sklearn, MLflow)
WARM = (
    "pandas",
    "pyarrow.parquet",
    "sklearn.ensemble",
    "mlflow",
    "mlflow.sklearn",
    "great_expectations",
    "sluice.airflow.operators",
    "sluice.airflow.monitoring_operators",
    "sluice.airflow.deployment_operators",
    "sluice.features.job",
    "sluice.training.job",
    "sluice.monitoring.job",
    "sluice.deployment.job",
    "sluice.serving.batch",
    "sluice.evaluation.report",
)


def warm(modules: tuple[str, ...] = WARM) -> list[str]:
    """Import what can be imported; a module that fails is left to the task (which reports it)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken import must not keep the scheduler down
            failed.append(f"{name}: {exc}")
    return failed


def main() -> None:
    t0 = time.monotonic()
    failed = warm()
    print(f"sluice: preloaded the task libraries in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    for line in failed:
        print(f"sluice: could not preload {line}", file=sys.stderr)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
