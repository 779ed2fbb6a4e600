"""Every `from sluice... import name` in benchmarks/ (function-level ones included) names something that exists.

The benchmarks import lazily inside functions, so a module that moves (say `decide` from monitoring.drift to
monitoring.policy) breaks `make bench` only when that benchmark runs; this catches it in the unit tier.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _sluice_imports() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sluice":
                found += [(path.name, node.module, alias.name) for alias in node.names]
    return found


def _exists(module: str, name: str) -> bool:
    if hasattr(importlib.import_module(module), name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return False
    return True


def test_every_sluice_name_the_benchmarks_import_exists() -> None:
    imports = _sluice_imports()
    assert len(imports) > 20, imports  # the scan sees the benchmarks' imports at all
    missing = [f"{f}: from {m} import {n}" for f, m, n in imports if not _exists(m, n)]
    assert not missing, missing
