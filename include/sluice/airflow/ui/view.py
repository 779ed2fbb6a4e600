"""The Sluice view in the Airflow UI: ``/sluice/ui/`` (the models) and ``/sluice/ui/models/<model>``.

Server-rendered, escaped HTML without script, reached from the Airflow navigation (an external view of
the plugin). It reads the registry and the lake through :mod:`sluice.overview` and decides nothing.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sluice.airflow.ui.guard import SANDBOX
from sluice.safehtml import CSP, esc, link, page

router = APIRouter()
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
STYLE = (
    ".pill{display:inline-block;padding:1px 6px;border-radius:8px;font-size:12px}"
    ".PASS,.yes{background:#d4edda}.FAIL,.bad{background:#f8d7da}.INCONCLUSIVE,.warn{background:#fff3cd}"
    "nav a{margin-right:1em}td.c{text-align:center}"
)


class _Links:
    """Addresses the page links to: the lake route, the Airflow UI, MLflow (all relative but MLflow)."""

    def __init__(self, request: Request, mlflow: str | None) -> None:
        self.root = request.scope.get("root_path", "").rstrip("/")  # where this app is mounted: .../sluice
        self.airflow = self.root.removesuffix("/sluice")
        self.mlflow = (mlflow or "").rstrip("/")

    def lake(self, key: str) -> str:
        return f"{self.root}/lake/{quote(key)}"

    def model(self, model: str) -> str:
        return f"{self.root}/ui/models/{quote(model, safe='')}"

    def artifact(self, model: str, run_id: str, name: str) -> str:
        return f"{self.model(model)}/runs/{quote(run_id, safe='')}/{quote(name, safe='')}"

    def dag_run(self, dag_id: str, run_id: str, task: str = "") -> str:
        path = f"{self.airflow}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        return f"{path}/tasks/{quote(task, safe='')}" if task else path

    def mlflow_run(self, experiment_id: str | None, run_id: str) -> str | None:
        if not self.mlflow or not experiment_id:
            return None
        return f"{self.mlflow}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(run_id, safe='')}"

    def mlflow_version(self, model: str, version: str) -> str | None:
        if not self.mlflow:
            return None
        return f"{self.mlflow}/#/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"


def tracking_uri() -> str | None:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("AIRFLOW_CONN_MLFLOW_DEFAULT") or ""
    return uri if uri.startswith(("http://", "https://")) else None


def open_registry() -> Any:
    """The registry, failing fast: a page waits seconds for a down MLflow, not minutes of retries."""
    uri = tracking_uri()
    if uri is None:
        return None
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from sluice.registry.mlflow_registry import Registry

    return Registry(uri)


def _configs() -> tuple[dict[str, Any], str | None]:
    from sluice.config import load_model_configs

    try:
        return load_model_configs(), None
    except Exception as exc:  # a broken YAML is shown, like Airflow shows an import error
        return {}, f"{type(exc).__name__}: {exc}"


def _pill(text: str, cls: str | None = None) -> str:
    return f'<span class="pill {esc(cls or text)}">{esc(text)}</span>' if text else ""


def _errors(errors: list[str]) -> str:
    return "".join(f'<p class="bad">{esc(e)}</p>' for e in errors)


@router.get("/ui")
def ui_root(request: Request) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '').rstrip('/')}/ui/", status_code=307)


@router.get("/ui/", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    configs, error = _configs()
    links = _Links(request, tracking_uri())
    errors = [error] if error else []
    registry = None
    try:
        registry = open_registry()
    except Exception as exc:
        errors.append(f"MLflow registry: {type(exc).__name__}: {exc}")
    rows = []
    for name, cfg in sorted(configs.items()):
        cells = []
        for alias in ("champion", "challenger"):
            try:
                mv = registry.by_alias(name, alias) if registry else None
                cells.append(f"v{esc(mv.version)}" if mv else "-")
            except Exception as exc:
                cells.append(f'<span class="bad">{esc(type(exc).__name__)}</span>')
        rows.append(
            f"<tr><td>{link(name, links.model(name))}</td><td>{esc(cfg.description)}</td><td>{esc(cfg.owner)}</td>"
            f"<td>{esc(cfg.schedule)}</td><td class='c'>{cells[0]}</td><td class='c'>{cells[1]}</td></tr>"
        )
    body = (
        "<h1>Sluice models</h1>"
        f"{_errors(errors)}"
        "<table><tr><th>model</th><th>description</th><th>owner</th><th>schedule</th><th>champion</th>"
        f"<th>challenger</th></tr>{''.join(rows)}</table>"
        "<p><small>Read-only: what the pipelines recorded in the registry and the lake.</small></p>"
    )
    return HTMLResponse(page("Sluice models", body, style=STYLE))


def _versions_html(model: str, versions: list[dict[str, Any]], links: _Links) -> str:
    if not versions:
        return "<p>No champion or challenger yet: no version has passed the gate.</p>"
    rows = []
    for v in versions:
        reasons = "".join(f"<li>{esc(r)}</li>" for r in v["reasons"])
        evidence = [
            link("MLflow run", links.mlflow_run(v["experiment_id"], v["run_id"]), new_tab=True),
            link("model version", links.mlflow_version(model, v["version"]), new_tab=True),
            link("gate report", links.artifact(model, v["run_id"], "gate_report.html")),
            link("gate decision (JSON)", links.artifact(model, v["run_id"], "gate_decision.json")),
        ]
        rows.append(
            f"<tr><td><b>{esc(v['alias'])}</b></td><td>v{esc(v['version'])}</td>"
            f"<td>{_pill(v['gate_decision'])}</td><td>{esc(v['state'])}</td><td>{esc(v['deployed'])}</td>"
            f"<td>{esc(v['created'])}</td><td><ul>{reasons}</ul></td><td>{' | '.join(evidence)}</td></tr>"
        )
    return (
        "<table><tr><th>alias</th><th>version</th><th>gate</th><th>state</th><th>deployed</th><th>registered (UTC)</th>"
        f"<th>gate reasons</th><th>evidence</th></tr>{''.join(rows)}</table>"
    )


#: the operator whose task asks a person to approve a promotion (``dags/training.py`` names its task)
APPROVAL_OPERATOR = "ApprovePromotionOperator"


def approval_task_of(dag: Any) -> str | None:
    """The id of the task of ``dag`` (a DAG or a serialized DAG) that waits for a person's approval, as the DAG
    file defines it; None when the DAG has none."""
    found = [t.task_id for t in getattr(dag, "tasks", ()) if getattr(t, "task_type", None) == APPROVAL_OPERATOR]
    return found[0] if found else None


def approval_task(dag_id: str) -> str | None:
    """:func:`approval_task_of` the serialized DAG ``dag_id`` (what the DAG processor parsed from the DAG file);
    None when it cannot be read: the page then links to the DAG run, never to a guessed task."""
    try:
        from airflow.models.serialized_dag import SerializedDagModel

        return approval_task_of(SerializedDagModel.get_dag(dag_id))
    except Exception:  # a page shows what it can: no metadata database, a DAG not serialized yet
        return None


def _candidates_html(
    model: str, candidates: list[dict[str, Any]], links: _Links, approval: Callable[[str], str | None] | None = None
) -> str:
    """The latest training runs; one waiting for a person links to the approval task of its DAG run
    (``approval``: the task id of a DAG's approval task; :func:`approval_task` by default)."""
    approval = approval or approval_task
    if not candidates:
        return "<p>No training run yet.</p>"
    rows = []
    for c in candidates:
        run = link(c["run_id"][:8], links.mlflow_run(c["experiment_id"], c["run_id"]), new_tab=True)
        dag_run = link(c["dag_run_id"], links.dag_run(c["dag_id"], c["dag_run_id"])) if c["dag_id"] else ""
        waiting = (
            link(
                "waiting for approval: decide",
                links.dag_run(c["dag_id"], c["dag_run_id"], approval(c["dag_id"]) or ""),
            )
            if c["awaiting_approval"] and c["dag_id"]
            else ""
        )
        report = ""
        if c["gate_decision"]:
            report = link("gate report", links.artifact(model, c["run_id"], "gate_report.html"))
        rows.append(
            f"<tr><td>{run}</td><td>{esc(c['started'])}</td><td>{_pill(c['gate_decision'])}</td>"
            f"<td>{esc(c['state'])}</td><td>{dag_run}</td><td>{report} {waiting}</td></tr>"
        )
    return (
        "<table><tr><th>run</th><th>started (UTC)</th><th>gate</th><th>state</th><th>Airflow run</th>"
        f"<th>evidence</th></tr>{''.join(rows)}</table>"
    )


def _ledger_html(entries: list[dict[str, Any]], model: str, links: _Links) -> str:
    if not entries:
        return "<p>No alias moves recorded.</p>"
    rows = []
    for e in reversed(entries[-50:]):
        evidence = str(e.get("evidence") or "")
        if m := re.match(r"^runs:/([0-9a-f]{32})/([\w.]+)$", evidence):
            evidence_html = link(m.group(2), links.artifact(model, m.group(1), m.group(2)))
        elif evidence.startswith(("http://", "https://")):
            evidence_html = link("evidence", evidence)
        else:
            evidence_html = esc(evidence)
        run = link(e["run_id"], links.dag_run(e["dag_id"], e["run_id"])) if e.get("dag_id") and e.get("run_id") else ""
        frm, to = f"v{e['from']}" if e.get("from") else "-", f"v{e['to']}" if e.get("to") else "(cleared)"
        rows.append(
            f"<tr><td>{esc(e.get('seq'))}</td><td>{esc(e.get('at'))}</td><td>{esc(e.get('alias'))}</td>"
            f"<td>{esc(frm)} &rarr; {esc(to)}</td><td>{esc(e.get('who'))}</td><td>{run}</td>"
            f"<td>{esc(e.get('why'))}</td><td>{evidence_html}</td></tr>"
        )
    return (
        "<table><tr><th>#</th><th>when (UTC)</th><th>alias</th><th>move</th><th>who</th><th>Airflow run</th>"
        f"<th>why</th><th>evidence</th></tr>{''.join(rows)}</table>"
    )


#: the pill class of each live shadow verdict
_SHADOW_PILL = {"worse": "bad", "better": "yes", "no_difference": "yes", "undetermined": "warn", "no_evidence": "warn"}
_DECISION_PILL = {"allow": "yes", "wait": "warn", "refuse": "bad"}


def _shadow_html(cfg: Any, lake: Any, registry: Any, links: _Links) -> str:
    """Each shadow-scored version: its live paired comparison with the champion, day by day, and what
    ``deploy.require_shadow_days`` makes of it (read from the lake; nothing is computed here)."""
    from sluice.deployment import shadow

    d = cfg.deploy
    head = (
        f"<p>deploy.shadow: <b>{esc(d.shadow)}</b> · require_shadow_days: <b>{esc(d.require_shadow_days)}</b> · "
        f"shadow_margin: {esc(d.shadow_margin)} · metric: {esc(cfg.gate.primary_metric)} (the gate's paired "
        "bootstrap)</p>"
    )
    if lake is None:
        return head
    versions = shadow.shadowed_versions(lake, cfg.name)
    if not versions:
        return head + "<p>No version has been shadow-scored: no challenger has waited for deployment.</p>"
    challenger = None
    if registry is not None:
        from sluice.registry.mlflow_registry import CHALLENGER

        try:
            mv = registry.by_alias(cfg.name, CHALLENGER)
            challenger = str(mv.version) if mv else None
        except Exception:  # the registry's state shows in its own section's error line
            challenger = None
    parts = [head]
    for version in reversed(versions[-5:]):
        ev = shadow.read_evidence(lake, cfg.name, version)
        role = "challenger (waiting)" if version == challenger else "shadowed earlier"
        title = f"<h3>v{esc(version)} <small>{esc(role)}</small></h3>"
        if ev is None:
            parts.append(f"{title}<p>Shadow-scored; no comparison written yet.</p>")
            continue
        verdict = str(ev.get("verdict"))
        decision = shadow.decide(cfg, ev) if version == challenger else None
        gate = ""
        if decision:
            pill = _pill(decision["decision"].upper(), _DECISION_PILL[decision["decision"]])
            gate = f" · deployment: {pill} {esc(decision['reason'])}"
        report = link("comparison (JSON)", links.lake(shadow.report_key(cfg.name, version)))
        parts.append(
            f"{title}<p>{_pill(verdict.replace('_', ' '), _SHADOW_PILL.get(verdict, 'warn'))} {esc(ev.get('reason'))}"
            f"{gate} · {report}</p>"
            + "<table><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in shadow.DAY_HEADER)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in shadow.day_rows(ev))
            + "</table>"
        )
    return "".join(parts)


def _verdict(report: dict[str, Any] | None, flag: str, words: tuple[str, str], links: _Links) -> str:
    if not report:
        return ""
    pill = _pill(words[0], "bad") if report[flag] else _pill(words[1], "yes")
    return f"{pill} {link('report', links.lake(report['report']))}"


def _timeline_html(rows: list[dict[str, Any]], ledger: list[dict[str, Any]], links: _Links) -> str:
    if not rows:
        return "<p>Nothing in the lake for this model yet.</p>"
    out = []
    for r in reversed(rows):
        ds = r["ds"]
        if q := r.get("quarantine"):
            validation = f"{_pill('quarantined', 'bad')} {link('Data Docs', links.lake(q['data_docs']))} " + link(
                "record", links.lake(q["folder"])
            )
            validation += f"<br><small>{esc(str(q['reason'])[:300])}</small>"
        elif r.get("published"):
            validation = _pill("published", "yes")
        else:
            validation = "landed" if r.get("landed") else "-"
        served = ""
        if "served_version" in r:
            served = f"v{esc(r['served_version'])}" + (" " + _pill("deployed", "warn") if r.get("new_version") else "")
        drift = _verdict(r.get("drift"), "drift", ("drift", "no drift"), links)
        decay = _verdict(r.get("decay"), "decay", ("decay", "ok"), links)
        retrain = ""
        if t := r.get("retrain"):
            retrain = f"{_pill('retrain', 'warn')} <small>{esc(t['source'])}: {esc(str(t['reason'])[:200])}</small>"
        moves = [e for e in ledger if ds in str(e.get("run_id", ""))]
        moved = "<br>".join(f"{esc(e['alias'])} &rarr; v{esc(e.get('to') or '-')}" for e in moves)
        out.append(
            f"<tr><td>{esc(ds)}</td><td>{validation}</td><td class='c'>{served}</td><td>{drift}</td>"
            f"<td>{decay}</td><td>{retrain}</td><td>{moved}</td></tr>"
        )
    return (
        "<table><tr><th>interval</th><th>landing / validation</th><th>served by</th><th>drift</th><th>decay</th>"
        f"<th>retrain</th><th>alias moves</th></tr>{''.join(out)}</table>"
    )


def _model_and_stores(model: str) -> tuple[Any, Any, Any, list[str]]:
    """``model``'s config (404 when there is none), the registry and the lake; a store that cannot be opened is
    None and an error line for the page, never a failed page."""
    configs, error = _configs()
    cfg = configs.get(model)
    if cfg is None:
        raise HTTPException(status_code=404, detail=f"no model {model[:80]!r}; known: {sorted(configs)}")
    errors = [error] if error else []
    registry = lake = None
    try:
        registry = open_registry()
    except Exception as exc:
        errors.append(f"MLflow registry: {type(exc).__name__}: {exc}")
    try:
        from sluice.airflow.ui.lake import open_lake

        lake = open_lake()
    except Exception as exc:
        errors.append(f"lake: {type(exc).__name__}: {exc}")
    return cfg, registry, lake, errors


@router.get("/ui/models/{model}", response_class=HTMLResponse)
def model_page(model: str, request: Request) -> HTMLResponse:
    from sluice.overview import model_state

    cfg, registry, lake, errors = _model_and_stores(model)
    links = _Links(request, tracking_uri())
    state = model_state(cfg, lake, registry)
    dags = " ".join(link(cfg.dag_id(kind), f"{links.airflow}/dags/{quote(cfg.dag_id(kind))}") for kind in _dag_kinds())
    body = (
        f"<nav>{link('all models', links.root + '/ui/')}</nav>"
        f"<h1>{esc(model)}</h1><p>{esc(cfg.description)} <small>owner {esc(cfg.owner)}</small></p>"
        f"<p>DAGs: {dags} · {link('MLOps conformance', links.model(model) + '/conformance')}</p>"
        f"{_errors(errors + state['errors'])}"
        f"<h2>Champion and challenger</h2>{_versions_html(model, state['versions'], links)}"
        f"<h2>Latest training runs</h2>{_candidates_html(model, state['candidates'], links)}"
        f"<h2>Last {len(state['timeline'])} intervals</h2>{_timeline_html(state['timeline'], state['ledger'], links)}"
        f"<h2>Shadow scoring</h2>{_shadow_section(cfg, lake, registry, links)}"
        f"<h2>Alias ledger</h2>{_ledger_html(state['ledger'], model, links)}"
    )
    return HTMLResponse(page(f"Sluice: {model}", body, style=STYLE))


def _shadow_section(cfg: Any, lake: Any, registry: Any, links: _Links) -> str:
    try:
        return _shadow_html(cfg, lake, registry, links)
    except Exception as exc:  # one unreadable part of the page is an error line, never a failed page
        return _errors([f"shadow evidence: {type(exc).__name__}: {str(exc)[:300]}"])


#: seconds a parse of the DAG folder is reused by the conformance pages (a DagBag parse takes seconds)
INVENTORY_TTL_S = 60.0
_inventory_cache: dict[str, Any] = {}


def _inventory() -> tuple[dict[str, Any], dict[str, str]]:
    import time

    from sluice.airflow.inventory import dag_inventory

    now = time.monotonic()
    if now - _inventory_cache.get("at", -INVENTORY_TTL_S) >= INVENTORY_TTL_S:
        _inventory_cache.update(at=now, value=dag_inventory())
    value: tuple[dict[str, Any], dict[str, str]] = _inventory_cache["value"]
    return value


def _conformance(model: str) -> Any:
    """The conformance report of ``model``: its DAGs as the DAG files define them, its records in MLflow and
    the lake; a store that cannot be read is an error line of the report."""
    from sluice import conformance

    cfg, registry, lake, errors = _model_and_stores(model)
    dags, import_errors = _inventory()
    report = conformance.assess(cfg, dags, conformance.collect_records(cfg, lake, registry))
    return report, import_errors, errors


@router.get("/ui/models/{model}/conformance.json")
def conformance_json(model: str) -> Response:
    from sluice import conformance

    report, import_errors, errors = _conformance(model)
    body = conformance.render_json([report], import_errors)
    return Response(body, media_type="application/json", headers={"X-Sluice-Errors": str(len(errors))})


@router.get("/ui/models/{model}/conformance", response_class=HTMLResponse)
def conformance_page(model: str, request: Request) -> HTMLResponse:
    from sluice.conformance import PAPER

    report, import_errors, errors = _conformance(model)
    links = _Links(request, tracking_uri())
    rows = []
    for row in report.rows:
        evidence = "".join(f"<li>{esc(ev)}</li>" for ev in row.evidence)
        gaps = "".join(f'<li class="bad">{esc(gap)}</li>' for gap in row.missing)
        rows.append(
            f"<tr><td>{esc(row.id)}</td><td>{esc(row.name)}</td><td>{_pill(row.status, _STATUS_CLASS[row.status])}</td>"
            f"<td><ul>{evidence}</ul></td><td>{esc(row.exercised or '-')}</td><td><ul>{gaps}</ul></td></tr>"
        )
    counts = ", ".join(f"{n} {esc(status)}" for status, n in report.counts().items() if n)
    problems = [f"DAG file {path} does not parse: {err}" for path, err in sorted(import_errors.items())]
    body = (
        f"<nav>{link('all models', links.root + '/ui/')} {link(model, links.model(model))} "
        f"{link('JSON', links.model(model) + '/conformance.json')}</nav>"
        f"<h1>{esc(model)}: MLOps conformance</h1><p><small>{esc(PAPER)}</small></p>"
        f"{_errors(errors + problems + list(report.errors))}<p>{counts}</p>"
        "<table><tr><th>id</th><th>principle or component</th><th>status</th><th>designed (evidence)</th>"
        f"<th>last exercised by</th><th>missing</th></tr>{''.join(rows)}</table>"
    )
    return HTMLResponse(page(f"Sluice: {model} conformance", body, style=STYLE))


_STATUS_CLASS = {"covered": "yes", "designed": "warn", "partial": "warn", "missing": "bad"}


def _dag_kinds() -> tuple[str, ...]:
    from sluice.config import DAG_KINDS

    return DAG_KINDS


@router.get("/ui/models/{model}/runs/{run_id}/{artifact}")
def run_artifact(model: str, run_id: str, artifact: str) -> Response:
    """The gate's evidence of a training run of ``model``, fetched from MLflow and served under our CSP."""
    from sluice.overview import GATE_ARTIFACTS

    configs, _ = _configs()
    if model not in configs or not _RUN_ID.match(run_id) or artifact not in GATE_ARTIFACTS:
        raise HTTPException(status_code=404, detail="no such evidence")
    registry = open_registry()
    if registry is None:
        raise HTTPException(status_code=404, detail="no MLflow tracking server configured")
    try:
        run = registry.run(run_id)
        exp = registry.client.get_experiment_by_name(f"sluice/{model}")
        if exp is None or run.info.experiment_id != exp.experiment_id:
            raise HTTPException(status_code=404, detail=f"run {run_id} is not a training run of {model}")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(registry.client.download_artifacts(run_id, artifact, tmp)).read_bytes()
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=404, detail=f"{artifact} of run {run_id}: {type(exc).__name__}") from exc
    if artifact.endswith(".html"):
        return Response(data, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": CSP + SANDBOX})
    return Response(data, media_type="application/json")
