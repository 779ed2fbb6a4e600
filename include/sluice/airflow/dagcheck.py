"""``python -m sluice.airflow.dagcheck``: every DAG file parses, with no import error (used by ``make lint``)."""

from __future__ import annotations

import sys
import time

from sluice.runtime import DAGS_DIR as DAGS


def main() -> int:
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.monotonic()
    bag = DagBag(dag_folder=str(DAGS))
    for path, err in sorted(bag.import_errors.items()):
        print(f"IMPORT ERROR {path}:\n{err}", file=sys.stderr)
    print(f"{len(bag.dags)} DAGs from {DAGS} parsed in {time.monotonic() - t0:.1f}s: {', '.join(sorted(bag.dag_ids))}")
    return 1 if bag.import_errors or not bag.dags else 0


if __name__ == "__main__":
    sys.exit(main())
