"""The alias ledger: every move of ``champion`` or ``challenger``, appended to the registered model's tags.

Each entry is one registered-model tag ``sluice.ledger.<seq>`` holding JSON: when, who, which DAG run,
which alias, from which version to which, why, and a link to the evidence (gate decision, infra
validation report). It lives in the registry itself, so it is visible in the MLflow UI next to the
versions and survives any Airflow database; ``python -m sluice models history <model>`` prints it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Any

PREFIX = "sluice.ledger."


def who_cli() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def history(registry: Any, model: str) -> list[dict[str, Any]]:
    """Every ledger entry of ``model``, oldest first (empty for a model that was never registered)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = registry.client.get_registered_model(model).tags
    except MlflowException:
        return []
    return sorted((json.loads(v) for k, v in tags.items() if k.startswith(PREFIX)), key=lambda e: e["seq"])


def append(
    registry: Any,
    model: str,
    *,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    why: str,
    who: str,
    dag_id: str = "",
    run_id: str = "",
    evidence: str = "",
) -> dict[str, Any]:
    """Record one alias move. Callers hold the model's promotion lock, so sequence numbers never collide."""
    seq = max((e["seq"] for e in history(registry, model)), default=0) + 1
    entry = {
        "seq": seq,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "who": who,
        "dag_id": dag_id,
        "run_id": run_id,
        "alias": alias,
        "from": from_version,
        "to": to_version,
        "why": why[:1000],
        "evidence": evidence,
    }
    registry.client.set_registered_model_tag(model, f"{PREFIX}{seq:06d}", json.dumps(entry))
    return entry


def previous_champion(registry: Any, model: str) -> str | None:
    """The version that was champion before the current one: where a rollback goes."""
    moves = [e for e in history(registry, model) if e["alias"] == "champion"]
    return moves[-1]["from"] if moves else None


def format_history(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no alias moves recorded"
    rows = [("#", "when (UTC)", "alias", "from", "to", "who", "dag run", "why", "evidence")]
    for e in entries:
        run = f"{e['dag_id']}/{e['run_id']}" if e.get("dag_id") else "-"
        rows.append(
            (
                str(e["seq"]),
                e["at"],
                e["alias"],
                f"v{e['from']}" if e["from"] else "-",
                f"v{e['to']}" if e["to"] else "(cleared)",
                e["who"],
                run,
                e["why"],
                e.get("evidence") or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 2)]
    lines = []
    for r in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))
        lines.append(f"{head}  {r[-2]}" + (f"  [{r[-1]}]" if r[-1] not in ("-", "evidence") else ""))
    return "\n".join(lines)
