"""Latency budgets for the tests whose subject is not latency.

The product's budgets (``gate.max_latency_ms`` and ``deploy.infra_validation.max_latency_ms_p95``, 50 ms in
``include/models/loans.yaml``) are sized for a serving machine. A test machine has 2 cores shared by two
pytest-xdist workers, each running an embedded stack (scheduler, api-server, MLflow, model servers): there a
healthy model's p95 is whatever the neighbour's load makes it, and a journey that fails on it tells nothing.
Stack-based tests about training, approval, delivery or drift therefore take these budgets; the latency rules
themselves are proven where latency is the subject:

- ``tests/unit/evaluation/test_gate.py`` (the gate's latency rule: pass, fail, not measured, NaN);
- ``tests/integration/test_deployment.py::test_a_latency_budget_no_server_can_meet_is_retried_and_refused``
  (infra validation against a real model server, retried rounds, refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: What a loaded 2-core test machine meets for a healthy model (the slowest p95 seen in CI was ~300 ms).
SHARED_MACHINE_LATENCY_MS = 5000.0


def shared_machine_budgets(data: dict[str, Any]) -> dict[str, Any]:
    """A model config (the YAML's dict) with latency budgets a shared test machine meets; changed in place."""
    data.setdefault("gate", {})["max_latency_ms"] = SHARED_MACHINE_LATENCY_MS
    infra = data.setdefault("deploy", {}).setdefault("infra_validation", {})
    infra["max_latency_ms_p95"] = SHARED_MACHINE_LATENCY_MS
    return data


def shared_machine_models(folder: Path, *names: str) -> Path:
    """``folder`` holding the named repository model configs with a shared machine's budgets: what a test sets
    as ``$SLUICE_MODELS_DIR`` so that DAGs run in the test process (``dag.test``) read the same budgets."""
    from sluice.config import MODELS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = shared_machine_budgets(yaml.safe_load((MODELS_DIR / f"{name}.yaml").read_text()))
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return folder


def shared_machine_config(cfg: Any) -> Any:
    """The same for a parsed ``ModelConfig``."""
    infra = cfg.deploy.infra_validation.model_copy(update={"max_latency_ms_p95": SHARED_MACHINE_LATENCY_MS})
    return cfg.model_copy(
        update={
            "gate": cfg.gate.model_copy(update={"max_latency_ms": SHARED_MACHINE_LATENCY_MS}),
            "deploy": cfg.deploy.model_copy(update={"infra_validation": infra}),
        }
    )
