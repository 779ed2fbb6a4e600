"""What the operator's view shows for a model, gathered from what the pipeline already wrote.

Nothing is computed here that the pipeline did not decide: the registry gives the aliases, the gate
decisions (run tags and ``gate_decision.json``) and the alias ledger; the lake gives, per interval, the
landing partition, the published features or the quarantine record, the predictions (which version
served), and the drift, performance and retrain reports. Plain data, rendered by the Airflow plugin.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sluice.config import ModelConfig
from sluice.lake import MANIFEST, SUCCESS, Lake

log = logging.getLogger(__name__)

_DS = re.compile(r"/ds=(\d{4}-\d{2}-\d{2})/")
GATE_ARTIFACTS = ("gate_report.html", "gate_decision.json", "evaluation.json")


def _by_ds(keys: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in keys:
        if m := _DS.search(k):
            out.setdefault(m.group(1), []).append(k)
    return out


def _json(lake: Lake, key: str) -> dict[str, Any]:
    try:
        return json.loads(lake.read(key))
    except Exception as exc:  # a torn or foreign file: shown as unreadable, never a failed page
        return {"unreadable": f"{type(exc).__name__}: {exc}"}


def _intervals(cfg: ModelConfig, seen: set[str], n: int) -> list[str]:
    """The last ``n`` intervals up to the latest one the lake knows: every day for a daily model (a day
    with nothing is worth seeing), the days that have anything otherwise."""
    if not seen:
        return []
    last = max(seen)
    if cfg.schedule == "@daily":
        end = dt.date.fromisoformat(last)
        days = [(end - dt.timedelta(days=i)).isoformat() for i in range(n)]
        return sorted(d for d in days if d >= cfg.start_date.isoformat())
    return sorted(seen)[-n:]


def timeline(cfg: ModelConfig, lake: Lake, n: int = 30) -> list[dict[str, Any]]:
    """One entry per interval, newest last: landing, validation outcome, served version, drift, decay, retrain."""
    dset, fs = cfg.dataset.name, cfg.features.feature_set
    landing = _by_ds(lake.list(f"landing/{dset}"))
    quarantine = _by_ds(lake.list(f"quarantine/{dset}"))
    features = _by_ds(lake.list(f"features/{fs}"))
    predictions = _by_ds(lake.list(f"predictions/{cfg.name}"))
    reports = _by_ds(lake.list(f"reports/{cfg.name}"))
    seen = set(landing) | set(quarantine) | set(features) | set(predictions) | set(reports)
    out: list[dict[str, Any]] = []
    previous_version: str | None = None
    for ds in _intervals(cfg, seen, n):
        row: dict[str, Any] = {"ds": ds}
        row["landed"] = any(k.endswith(f"/{SUCCESS}") for k in landing.get(ds, []))
        row["published"] = any(k.endswith(f"/{MANIFEST}") for k in features.get(ds, []))
        records = sorted(k for k in quarantine.get(ds, []) if k.endswith("/_RECORD.json"))
        if records:
            rec = _json(lake, records[-1])
            folder = records[-1].rsplit("/", 1)[0]
            row["quarantine"] = {
                "reason": rec.get("reason") or rec.get("unreadable", ""),
                "records": len(records),
                "folder": folder + "/",
                "data_docs": f"{folder}/data_docs.html",
            }
        pman = [k for k in predictions.get(ds, []) if k.endswith(f"/{MANIFEST}")]
        if pman:
            version = str(_json(lake, pman[0]).get("model_version", "?"))
            row["served_version"] = version
            row["new_version"] = previous_version is not None and version != previous_version
            previous_version = version
        for key in reports.get(ds, []):
            kind = key.split("/")[2]
            if key.endswith("/drift.json"):
                rep = _json(lake, key)
                row["drift"] = {
                    "drift": bool(rep.get("drift")),
                    "reason": rep.get("reason", ""),
                    "report": key.removesuffix(".json") + ".html",
                }
            elif key.endswith("/performance.json"):
                rep = _json(lake, key)
                row["decay"] = {"decay": bool(rep.get("decay")), "reason": rep.get("reason", ""), "report": key}
            elif kind == "retrain" and key.endswith("/retrain.json"):
                rep = _json(lake, key)
                row["retrain"] = {
                    "reason": rep.get("reason", ""),
                    "source": rep.get("source", ""),
                    "report": key,
                    "run_id": rep.get("training_run_id", ""),
                }
        out.append(row)
    return out


def _gate_reasons(registry: Any, run_id: str) -> list[str]:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = registry.client.download_artifacts(run_id, "gate_decision.json", tmp)
            decision = json.loads(Path(path).read_text())
    except Exception:  # older runs, or no gate yet
        return []
    return [str(r) for r in decision.get("reasons") or []][:10]


def _version(registry: Any, model: str, alias: str) -> dict[str, Any] | None:
    mv = registry.by_alias(model, alias)
    if mv is None:
        return None
    run = registry.run(mv.run_id) if mv.run_id else None
    tags = {**(run.data.tags if run else {}), **(mv.tags or {})}
    return {
        "alias": alias,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "experiment_id": run.info.experiment_id if run else None,
        "gate_decision": tags.get("gate.decision", "?"),
        "state": tags.get("sluice.state", ""),
        "deployed": tags.get("sluice.deployed", ""),
        "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC).isoformat(timespec="seconds"),
        "reasons": _gate_reasons(registry, mv.run_id) if mv.run_id else [],
    }


def recent_candidates(registry: Any, model: str, n: int = 10) -> list[dict[str, Any]]:
    """The latest training runs with their gate decision; an INCONCLUSIVE one not yet settled waits for a person."""
    exp = registry.client.get_experiment_by_name(f"sluice/{model}")
    if exp is None:
        return []
    runs = registry.client.search_runs([exp.experiment_id], max_results=n, order_by=["attributes.start_time DESC"])
    out = []
    for r in runs:
        tags = r.data.tags
        decision = tags.get("gate.decision", "")
        state = tags.get("sluice.state", "")
        out.append(
            {
                "run_id": r.info.run_id,
                "experiment_id": r.info.experiment_id,
                "started": dt.datetime.fromtimestamp(r.info.start_time / 1000, dt.UTC).isoformat(timespec="seconds"),
                "gate_decision": decision,
                "state": state,
                "dag_id": tags.get("airflow.dag_id", ""),
                "dag_run_id": tags.get("airflow.run_id", ""),
                "awaiting_approval": state == "awaiting_approval",  # the run state tag sluice.training.job sets
            }
        )
    return out


def model_state(cfg: ModelConfig, lake: Lake | None, registry: Any | None, n: int = 30) -> dict[str, Any]:
    """Everything the model's page shows; a part that cannot be read becomes an error line, not a failure."""
    from sluice.registry import ledger

    state: dict[str, Any] = {"model": cfg.name, "errors": [], "versions": [], "ledger": [], "candidates": []}
    state["timeline"] = []
    if lake is not None:
        try:
            state["timeline"] = timeline(cfg, lake, n)
        except Exception as exc:
            log.exception("timeline of %s", cfg.name)
            state["errors"].append(f"lake {lake.root}: {type(exc).__name__}: {exc}")
    if registry is not None:
        try:
            from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION

            state["versions"] = [v for a in (CHAMPION, CHALLENGER) if (v := _version(registry, cfg.name, a))]
            state["ledger"] = ledger.history(registry, cfg.name)
            state["candidates"] = recent_candidates(registry, cfg.name)
        except Exception as exc:
            log.exception("registry state of %s", cfg.name)
            state["errors"].append(f"MLflow registry: {type(exc).__name__}: {str(exc)[:300]}")
    return state
