"""Imports flow one way: core ``sluice`` <- ``sluice.airflow`` <- ``dags``. Core never imports airflow."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "include" / "sluice"


def airflow_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n == "airflow" or n.startswith("airflow.") for n in names):
            lines.append(node.lineno)
    return lines


def test_core_never_imports_airflow() -> None:
    offenders = [
        f"{p.relative_to(REPO)}:{line}"
        for p in sorted(CORE.rglob("*.py"))
        if "airflow" not in p.relative_to(CORE).parts[:1]
        for line in airflow_imports(p)
    ]
    assert offenders == [], f"airflow imported outside include/sluice/airflow/: {offenders}"


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    """Guard the guard: the AST scan does catch both import forms, nested in functions too."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from airflow.sdk import DAG\n\nimport airflow\n")
    assert sorted(airflow_imports(bad)) == [2, 4]
