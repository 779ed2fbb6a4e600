"""The alias ledger: every move of ``champion`` or ``challenger`` (and every human approval decision), with
when, who, which DAG run, which alias, from which version to which, why, and a link to the evidence (gate
decision, infra validation report).

It lives in the MLflow server, next to the registry and independent of any Airflow database: one run per
model in the experiment ``sluice/ledger`` holds ``ledger.json`` (the entries) and ``ledger.txt`` (the table
``python -m sluice models history <model>`` prints), readable in the MLflow UI. The registered model carries
one short tag, ``sluice.ledger``, with the count, the last move and where the full ledger is. Older
installations kept one ``sluice.ledger.<seq>`` tag per entry; they are still read, and moved into the file
(and their tags removed) on the next append.

Every alias move and every append happens under :func:`promotion_lock`, taken by training (challenger,
approvals) and deployment (champion) alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PREFIX = "sluice.ledger."  # legacy: one registered-model tag per entry
SUMMARY_TAG = "sluice.ledger"
EXPERIMENT = "sluice/ledger"
FILE, TABLE = "ledger.json", "ledger.txt"


@contextlib.contextmanager
def promotion_lock(model: str) -> Iterator[None]:
    """One promoter per model on this machine (the Airflow pool serializes across workers)."""
    folder = Path(os.environ.get("SLUICE_HOME", tempfile.gettempdir())) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"promote-{model}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def who_cli() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _ledger_run(registry: Any, model: str, *, create: bool = False) -> str | None:
    """The run holding ``model``'s ledger file (created on first use when ``create``)."""
    client = registry.client
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        if not create:
            return None
        try:
            exp_id = client.create_experiment(EXPERIMENT, tags={"sluice.kind": "ledger"})
        except Exception:  # created concurrently
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`sluice.model` = '{model}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if runs:
        return str(runs[0].info.run_id)
    if not create:
        return None
    run = client.create_run(
        exp_id, tags={"sluice.model": model, "sluice.kind": "ledger", "mlflow.runName": f"{model} alias ledger"}
    )
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _stored(registry: Any, run_id: str) -> list[dict[str, Any]]:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = registry.client.download_artifacts(run_id, FILE, tmp)
        except (MlflowException, OSError):
            return []
        return list(json.loads(Path(path).read_text()).get("entries", []))


def _legacy(registry: Any, model: str) -> dict[str, str] | None:
    """The registered model's legacy per-entry tags; None when the model is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        tags = registry.client.get_registered_model(model).tags
    except MlflowException:
        return None
    return {k: v for k, v in tags.items() if k.startswith(PREFIX)}


def history(registry: Any, model: str) -> list[dict[str, Any]]:
    """Every ledger entry of ``model``, oldest first (empty for a model that was never registered)."""
    legacy = _legacy(registry, model)
    if legacy is None:
        return []
    entries = {e["seq"]: e for e in (json.loads(v) for v in legacy.values())}
    run = _ledger_run(registry, model)
    if run:
        entries.update({e["seq"]: e for e in _stored(registry, run)})
    return sorted(entries.values(), key=lambda e: e["seq"])


def ledger_uri(registry: Any, model: str) -> str | None:
    """Where a person reads the ledger: the MLflow UI page of its run (None before the first entry)."""
    run = _ledger_run(registry, model)
    if not run:
        return None
    exp = registry.client.get_experiment_by_name(EXPERIMENT)
    return f"{registry.tracking_uri}/#/experiments/{exp.experiment_id}/runs/{run}/artifacts/{TABLE}"


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
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record one alias move (or a decision that left the alias where it was: ``from == to``, with ``extra``
    fields such as ``decision``). Callers hold the model's promotion lock, so sequence numbers never collide."""
    entries = history(registry, model)
    seq = max((e["seq"] for e in entries), default=0) + 1
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
    entry.update({k: v for k, v in (extra or {}).items() if k not in entry})
    _write(registry, model, [*entries, entry])
    return entry


def _write(registry: Any, model: str, entries: list[dict[str, Any]]) -> None:
    """Replace the ledger file with ``entries``, refresh the summary tag, drop legacy tags (now in the file)."""
    client = registry.client
    run = _ledger_run(registry, model, create=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / FILE).write_text(json.dumps({"model": model, "entries": entries}, indent=1))
        (Path(tmp) / TABLE).write_text(format_history(entries) + "\n")
        client.log_artifacts(run, tmp)
    last = entries[-1]
    move = f"{last['alias']} {'v' + str(last['from']) if last['from'] else '-'} -> "
    move += f"v{last['to']}" if last["to"] else "(cleared)"
    summary = (
        f"{len(entries)} entries; last #{last['seq']} {last['at']}: {move}; full ledger: run {run} in {EXPERIMENT}"
    )
    client.set_registered_model_tag(model, SUMMARY_TAG, summary[:5000])
    for key in _legacy(registry, model) or {}:
        client.delete_registered_model_tag(model, key)


def previous_champion(registry: Any, model: str) -> str | None:
    """The version that was champion before the current one: where a rollback goes."""
    moves = [e for e in history(registry, model) if e["alias"] == "champion"]
    return moves[-1]["from"] if moves else None


def former_champions(registry: Any, model: str) -> list[str]:
    """Every version that was champion at some point, most recent first (without repeats)."""
    seen: list[str] = []
    for e in reversed([e for e in history(registry, model) if e["alias"] == "champion"]):
        for v in (e["to"], e["from"]):
            if v and str(v) not in seen:
                seen.append(str(v))
    return seen


def _to(e: dict[str, Any]) -> str:
    if e.get("decision") and e["to"] == e["from"]:
        return f"(unchanged: {e['decision']})"
    return f"v{e['to']}" if e["to"] else "(cleared)"


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
                _to(e),
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
