"""DAG integrity: every DAG file imports cleanly and fast, and every DAG follows the house rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ("pandas", "sklearn", "mlflow", "great_expectations", "boto3", "pyarrow", "scipy")
KINDS_BY_FILE = {
    "features.py": "features",
    "training.py": "training",
    "deployment.py": "deployment",
    "batch_inference.py": "batch_inference",
    "monitoring.py": "monitoring",
}

PROBE = """
import importlib.util, json, sys
if sys.argv[1] == "baseline":
    from airflow.sdk import DAG, Asset
    Asset("sluice://features/baseline")
else:
    spec = importlib.util.spec_from_file_location("dagfile", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[2].split(',')))
print(json.dumps({"heavy": heavy}))
"""


def heavy_modules(target: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, target, ",".join(HEAVY)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"{target} failed to import:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])["heavy"]


@pytest.fixture(scope="module")
def airflow_baseline() -> list[str]:
    """What Airflow itself loads for any DAG that declares an Asset.

    Building an Asset makes the Task SDK import every provider's asset-URI handlers; the amazon
    provider's S3 handler imports boto3. That cost is Airflow's, paid by every DAG with an Asset.
    """
    heavy = heavy_modules("baseline")
    assert set(heavy) <= {"boto3"}, f"Airflow's own Asset handling now loads {heavy}"
    return heavy


def test_there_are_dag_files() -> None:
    assert DAG_FILES, "no DAG files under dags/"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_heavy_libraries(path: Path, airflow_baseline: list[str]) -> None:
    """Parsing runs in the dag-processor over and over: no pandas, sklearn, mlflow, GX, boto3 of ours."""
    added = sorted(set(heavy_modules(str(path))) - set(airflow_baseline))
    assert added == [], f"{path.name} imports {added} at parse time; import them inside tasks"


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}, dagbag.import_errors


def test_one_dag_per_model_and_kind(dagbag) -> None:
    from sluice.config import load_model_configs

    expected = {cfg.dag_id(kind) for cfg in load_model_configs().values() for kind in KINDS_BY_FILE.values()}
    assert expected <= set(dagbag.dag_ids), f"missing DAGs: {sorted(expected - set(dagbag.dag_ids))}"


def test_every_dag_follows_the_house_rules(dagbag) -> None:
    problems = []
    for dag_id, dag in sorted(dagbag.dags.items()):
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag_id}: no doc_md")
        if not dag.max_active_runs:
            problems.append(f"{dag_id}: max_active_runs not set")
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            if task.owner in (None, "", "airflow"):
                problems.append(f"{where}: owner is {task.owner!r}")
            if not task.retries or task.retries < 1:
                problems.append(f"{where}: no retries")
            if not task.retry_exponential_backoff:
                problems.append(f"{where}: retries without exponential backoff")
            if not task.on_failure_callback:
                problems.append(f"{where}: no alert callback (on_failure_callback)")
    assert problems == [], "\n".join(problems)
