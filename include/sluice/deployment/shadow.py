"""Shadow scoring: a version that does not serve scores every interval next to the champion, and once labels
land, a live paired comparison on the same rows becomes evidence for the deployment decision.

- :func:`shadow_roles`: which versions the batch-inference DAG shadow-scores (``deploy.shadow``): the
  ``challenger`` while it waits for deployment, and with ``always`` also the previous champion after a
  deployment.
- :func:`score_shadow`: the interval's published features scored into ``shadow/<model>/v<version>/ds=D``
  by :func:`sluice.serving.batch.score_partition`, so atomic and idempotent exactly like the predictions
  zone (same bytes on a rerun, published by manifest commit).
- :func:`compare`: every shadow day of a version whose labels arrived (``labels.delay_days`` after it) is
  paired row by row with the champion's predictions of that day and its labels; the pooled rows go through
  the gate's paired bootstrap (:func:`sluice.evaluation.bootstrap.paired_bootstrap`, the gate's primary
  metric, resamples, confidence and seed). The verdict: ``worse`` when the whole interval of shadow -
  champion lies below ``-deploy.shadow_margin``, ``better`` when it lies above 0, ``no_difference``
  otherwise, ``undetermined`` when the interval is undefined, ``no_evidence`` without a labelled day.
- :func:`decide`: what ``deploy.require_shadow_days: N`` makes of the evidence: ``allow``, ``wait`` (fewer
  than N labelled days) or ``refuse`` (worse live, or undetermined: fails closed).

The evidence is written to ``reports/<model>/shadow/v<version>/comparison.json`` (the Sluice view and the
mails read it).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from sluice.config import ModelConfig
from sluice.lake import Lake, ds_str

log = logging.getLogger(__name__)

ZONE = "shadow"
VERDICT_TAG = "shadow.verdict"
ALLOW, WAIT, REFUSE = "allow", "wait", "refuse"
WORSE, BETTER, NO_DIFFERENCE = "worse", "better", "no_difference"
UNDETERMINED, NO_EVIDENCE = "undetermined", "no_evidence"


def shadow_name(model: str, version: str | int) -> str:
    """The lake name of a version's shadow scores: ``shadow/<model>/v<version>/ds=D``."""
    return f"{model}/v{version}"


def report_key(model: str, version: str | int) -> str:
    return f"reports/{model}/shadow/v{version}/comparison.json"


def shadow_roles(
    cfg: ModelConfig, *, champion: str | None, challenger: str | None, previous: str | None
) -> dict[str, str]:
    """``{version: role}`` to shadow-score this interval (empty when ``deploy.shadow`` is ``off``).

    ``challenger``: the version the ``challenger`` alias names while it is not the champion (it waits for
    deployment). ``previous_champion`` (``always`` only): the champion before the current one.
    """
    mode = cfg.deploy.shadow
    roles: dict[str, str] = {}
    if mode == "off" or champion is None:
        return roles  # nothing serves: there is no champion to compare with
    if challenger and challenger != champion:
        roles[str(challenger)] = "challenger"
    if mode == "always" and previous and previous != champion and str(previous) not in roles:
        roles[str(previous)] = "previous_champion"
    return roles


def score_shadow(
    cfg: ModelConfig, lake: Lake, ds: dt.date | str, model: Any, *, version: str, run_id: str, **kwargs: Any
) -> dict[str, Any]:
    """``model`` (the verified artifact of ``version``) over ``features/<feature_set>/ds=D`` into the shadow zone."""
    from sluice.serving.batch import score_partition

    return score_partition(
        cfg,
        lake,
        ds,
        model,
        model_version=version,
        run_id=run_id,
        zone=ZONE,
        name=shadow_name(cfg.name, version),
        **kwargs,
    )


def _frame(blobs: list[bytes]) -> Any:
    import pandas as pd

    frames = [pd.read_parquet(io.BytesIO(b)) for b in blobs]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def label_ds(cfg: ModelConfig, ds: dt.date | str) -> dt.date:
    """Where the labels of interval ``ds`` land: ``labels.delay_days`` later."""
    return dt.date.fromisoformat(ds_str(ds)) + dt.timedelta(days=cfg.labels.delay_days)


def paired_rows(cfg: ModelConfig, lake: Lake, version: str, ds: dt.date | str) -> tuple[str, Any]:
    """``(status, frame)`` for one shadow day: ``frame`` has ``y``, ``shadow``, ``champion``, ``champion_version``
    for the rows scored by both whose label arrived; status ``labelled``, ``waiting_for_labels``,
    ``no_predictions`` or ``self`` (the predictions were made by this very version: it served that day)."""
    import pandas as pd

    id_col, key = cfg.dataset.id_column, cfg.labels.join_key
    shadow = _frame(lake.read_published(ZONE, shadow_name(cfg.name, version), ds))
    if lake.manifest("predictions", cfg.name, ds) is None:
        return "no_predictions", None
    preds = _frame(lake.read_published("predictions", cfg.name, ds))
    if set(preds["model_version"].astype(str)) == {str(version)}:
        return "self", None
    lds = label_ds(cfg, ds)
    if not lake.landing_ready("labels", cfg.labels.dataset, lds):
        return "waiting_for_labels", None
    labels = _frame(list(lake.landing_files("labels", cfg.labels.dataset, lds).values()))
    missing = [c for c in (key, cfg.labels.column) if c not in labels.columns]
    if missing:
        raise ValueError(
            f"{lake.uri(lake.partition_key('labels', cfg.labels.dataset, lds))}: labels lack columns {missing} "
            f"(labels.join_key and labels.column of {cfg.name}); fix the labels producer"
        )
    s = shadow[[id_col, "score"]].drop_duplicates(id_col, keep="last").rename(columns={"score": "shadow"})
    p = preds[[id_col, "score", "model_version"]].drop_duplicates(id_col, keep="last")
    p = p.rename(columns={"score": "champion", "model_version": "champion_version"})
    y = labels[[key, cfg.labels.column]].dropna(subset=[cfg.labels.column]).drop_duplicates(key, keep="last")
    y = y.rename(columns={key: id_col, cfg.labels.column: "y"})
    joined = s.merge(p, on=id_col, how="inner").merge(y, on=id_col, how="inner")
    joined = joined[joined["champion_version"].astype(str) != str(version)]
    return "labelled", pd.DataFrame(joined[[id_col, "y", "shadow", "champion", "champion_version"]])


def _metric(cfg: ModelConfig, y: Any, s: Any) -> float | None:
    from sluice.evaluation.metrics import compute_metrics
    from sluice.evaluation.numbers import finite

    metric = cfg.gate.primary_metric
    return finite(compute_metrics(cfg.task, y, s, [metric])[metric])


def compare(cfg: ModelConfig, lake: Lake, version: str | int, *, role: str = "challenger") -> dict[str, Any]:
    """The live evidence of ``version`` against the champion's predictions on its shadow days (module doc)."""
    import pandas as pd

    from sluice.evaluation.bootstrap import paired_bootstrap

    version = str(version)
    g, metric = cfg.gate, cfg.gate.primary_metric
    days: list[dict[str, Any]] = []
    pooled: list[Any] = []
    for day in lake.partitions(ZONE, shadow_name(cfg.name, version)):
        status, frame = paired_rows(cfg, lake, version, day)
        row: dict[str, Any] = {"ds": day.isoformat(), "label_ds": label_ds(cfg, day).isoformat(), "status": status}
        if frame is not None:
            if frame.empty:
                row["status"] = "no_labelled_rows"
            else:
                y = frame["y"].to_numpy()
                row.update(
                    rows=len(frame),
                    positives=int((y == 1).sum()) if cfg.task == "classification" else None,
                    champion_version=",".join(sorted(set(frame["champion_version"].astype(str)))),
                    shadow_metric=_metric(cfg, y, frame["shadow"].to_numpy(dtype="float64")),
                    champion_metric=_metric(cfg, y, frame["champion"].to_numpy(dtype="float64")),
                )
                pooled.append(frame)
        days.append(row)
    labelled = [d for d in days if d["status"] == "labelled"]
    out: dict[str, Any] = {
        "model": cfg.name,
        "version": version,
        "role": role,
        "metric": metric,
        "margin": cfg.deploy.shadow_margin,
        "days": days,
        "shadow_days": len(days),
        "labelled_days": len(labelled),
        "rows": int(sum(d["rows"] for d in labelled)),
        "champion_versions": sorted({v for d in labelled for v in d["champion_version"].split(",")}),
        "bootstrap": None,
        "shadow_metric": None,
        "champion_metric": None,
    }
    if not pooled:
        out.update(verdict=NO_EVIDENCE, reason=f"v{version} has no labelled shadow day yet ({len(days)} scored)")
        return out
    rows = pd.concat(pooled, ignore_index=True)
    y = rows["y"].to_numpy()
    s, c = rows["shadow"].to_numpy(dtype="float64"), rows["champion"].to_numpy(dtype="float64")
    out["shadow_metric"], out["champion_metric"] = _metric(cfg, y, s), _metric(cfg, y, c)
    boot = paired_bootstrap(
        cfg.task, metric, y, s, c, n_samples=g.bootstrap_samples, confidence=g.confidence, seed=cfg.training.seed
    )
    out["bootstrap"] = boot.to_dict()
    champs = ", ".join(f"v{v}" for v in out["champion_versions"])
    what = (
        f"{metric} live over {len(labelled)} labelled shadow day(s), {len(rows)} rows: v{version} "
        f"{_fmt(out['shadow_metric'])} vs champion {champs} {_fmt(out['champion_metric'])}; difference "
        f"{boot.point_difference:+.4f}, {boot.confidence:.0%} interval [{_fmt(boot.lower)}, {_fmt(boot.upper)}]"
    )
    if not (math.isfinite(boot.lower) and math.isfinite(boot.upper)):
        out.update(verdict=UNDETERMINED, reason=f"{what}: the interval is undefined (too few rows of one class)")
    elif boot.upper < -cfg.deploy.shadow_margin:
        out.update(
            verdict=WORSE,
            reason=f"{what} lies entirely below {-cfg.deploy.shadow_margin or 0:g}: v{version} is worse than the "
            "champion live",
        )
    elif boot.lower > 0:
        out.update(verdict=BETTER, reason=f"{what} lies entirely above 0: v{version} is better live")
    else:
        out.update(verdict=NO_DIFFERENCE, reason=f"{what}: no live difference beyond the margin")
    return out


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{float(x):.4f}"


def decide(cfg: ModelConfig, evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"decision": allow|wait|refuse, "reason": ...}`` for deploying the evidence's version (module doc).

    Without ``deploy.require_shadow_days`` the evidence informs and never blocks.
    """
    need = cfg.deploy.require_shadow_days
    if not need:
        why = evidence["reason"] if evidence else "no shadow evidence"
        return {"decision": ALLOW, "reason": f"shadow evidence not required (deploy.require_shadow_days: 0); {why}"}
    if evidence is None:
        return {"decision": WAIT, "reason": f"no shadow day scored yet; {need} labelled day(s) required"}
    have, verdict = int(evidence["labelled_days"]), evidence["verdict"]
    if have < need:
        return {
            "decision": WAIT,
            "reason": f"v{evidence['version']} has {have} of the {need} labelled shadow day(s) that "
            f"deploy.require_shadow_days asks for ({evidence['shadow_days']} scored); it waits",
        }
    if verdict == WORSE:
        return {"decision": REFUSE, "reason": evidence["reason"]}
    if verdict == UNDETERMINED:
        return {"decision": REFUSE, "reason": f"{evidence['reason']}; a required comparison that says nothing fails"}
    return {"decision": ALLOW, "reason": evidence["reason"]}


def write_evidence(lake: Lake, evidence: Mapping[str, Any]) -> str:
    """``comparison.json`` of the version, replaced atomically; returns its URI."""
    from sluice.evaluation.numbers import json_object

    key = report_key(evidence["model"], evidence["version"])
    lake.put_files(key.rsplit("/", 1)[0], {"comparison.json": json.dumps(json_object(evidence), indent=1).encode()})
    return lake.uri(key)


def read_evidence(lake: Lake, model: str, version: str | int) -> dict[str, Any] | None:
    key = report_key(model, version)
    try:
        data: dict[str, Any] = json.loads(lake.read(key))
    except FileNotFoundError:
        return None
    return data


def summary_lines(evidence: Mapping[str, Any]) -> list[str]:
    """The evidence as text lines: the verdict, then one line per shadow day (mails, logs)."""
    lines = [f"Shadow evidence ({evidence.get('role', 'challenger')} v{evidence['version']}): {evidence['reason']}"]
    for d in evidence.get("days", []):
        if d["status"] == "labelled":
            lines.append(
                f"  ds={d['ds']}: {d['rows']} rows, {evidence['metric']} shadow {_fmt(d['shadow_metric'])} vs "
                f"champion v{d['champion_version']} {_fmt(d['champion_metric'])}"
            )
        else:
            lines.append(f"  ds={d['ds']}: {d['status'].replace('_', ' ')} (labels at ds={d['label_ds']})")
    return lines


DAY_HEADER = ("ds", "status", "labels at", "rows", "shadow", "champion", "champion version")


def day_rows(evidence: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One text row per shadow day under :data:`DAY_HEADER` (the mails' and the view's table)."""
    out: list[tuple[str, ...]] = []
    for d in evidence.get("days", []):
        labelled = d["status"] == "labelled"
        out.append(
            (
                str(d["ds"]),
                str(d["status"]).replace("_", " "),
                str(d["label_ds"]),
                str(d.get("rows", "-")) if labelled else "-",
                _fmt(d.get("shadow_metric")) if labelled else "-",
                _fmt(d.get("champion_metric")) if labelled else "-",
                f"v{d['champion_version']}" if labelled else "-",
            )
        )
    return out


def roles_now(cfg: ModelConfig, registry: Any) -> tuple[str | None, dict[str, str]]:
    """``(champion, {version: role})`` from the registry's aliases and the alias ledger, now."""
    from sluice.registry import ledger
    from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION

    champ = registry.by_alias(cfg.name, CHAMPION)
    chall = registry.by_alias(cfg.name, CHALLENGER)
    champion = str(champ.version) if champ else None
    previous = ledger.previous_champion(registry, cfg.name) if cfg.deploy.shadow == "always" else None
    roles = shadow_roles(cfg, champion=champion, challenger=str(chall.version) if chall else None, previous=previous)
    return champion, roles


def shadowed_versions(lake: Lake, model: str) -> list[str]:
    """Every version with shadow scores in the lake, oldest first."""
    found = {k.split("/")[2] for k in lake.list(f"{ZONE}/{model}") if len(k.split("/")) > 3}
    return sorted((v[1:] for v in found if v.startswith("v") and v[1:].isdigit()), key=int)


def signal_once(cfg: ModelConfig, lake: Lake, evidence: Mapping[str, Any]) -> bool:
    """True the first time a version's evidence is decisive under ``deploy.require_shadow_days`` (enough labelled
    days): the deployment DAG is then started again to decide. A marker next to the comparison makes it once."""
    if not cfg.deploy.require_shadow_days or decide(cfg, evidence)["decision"] == WAIT:
        return False
    key = report_key(cfg.name, evidence["version"]).rsplit("/", 1)[0] + "/signalled.json"
    try:
        lake.read(key)
        return False
    except FileNotFoundError:
        pass
    marker = {
        "version": evidence["version"],
        "labelled_days": evidence["labelled_days"],
        "verdict": evidence["verdict"],
    }
    lake.put_files(key.rsplit("/", 1)[0], {"signalled.json": json.dumps(marker).encode()})
    return True
