"""What the DAG files define, as plain data for ``sluice.conformance``: per DAG its schedule, tasks (id and
operator class) and the Assets its tasks produce. Parsed with Airflow's own DagBag, so a DAG file that does
not parse shows up as an import error here exactly as it would in the UI."""

from __future__ import annotations

from pathlib import Path

from sluice.conformance import DagFacts, TaskFacts
from sluice.runtime import DAGS_DIR


def _schedule(dag: object) -> str:
    schedule = getattr(dag, "schedule", None)
    if isinstance(schedule, str) or schedule is None:
        return str(schedule)
    uris = [getattr(a, "uri", None) for a in _assets(schedule)]
    return "assets: " + ", ".join(u for u in uris if u) if uris else type(schedule).__name__


def _assets(schedule: object) -> list[object]:
    """The Assets of a schedule (an Asset, a list of them, or an ``&``/``|`` condition of them)."""
    if getattr(schedule, "uri", None):
        return [schedule]
    inner = getattr(schedule, "objects", None)
    items = inner if inner is not None else schedule if isinstance(schedule, list | tuple) else []
    out: list[object] = []
    for item in items:
        out.extend(_assets(item))
    return out


def dag_inventory(dags_dir: str | Path = DAGS_DIR) -> tuple[dict[str, DagFacts], dict[str, str]]:
    """``({dag_id: DagFacts}, {file: import error})`` for every DAG file under ``dags_dir``."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_dir))
    facts = {}
    for dag_id, dag in bag.dags.items():
        tasks = tuple(
            TaskFacts(task_id=t.task_id, operator=type(t).__name__, outlets=tuple(_uris(t.outlets))) for t in dag.tasks
        )
        facts[dag_id] = DagFacts(dag_id=dag_id, schedule=_schedule(dag), tasks=tasks)
    return facts, {str(k): str(v).strip().splitlines()[-1] for k, v in bag.import_errors.items()}


def _uris(outlets: object) -> list[str]:
    return [uri for o in (outlets or []) if isinstance(uri := getattr(o, "uri", None), str)]  # type: ignore[attr-defined]
