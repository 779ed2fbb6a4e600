"""A ``GateDecision`` for people: plain text (the "why not promoted" email) and self-contained HTML (the
report logged to MLflow, no external assets).

Both show the same things in the same order: the decision, the metrics of candidate and champion with
their difference, the bootstrap interval, every rule with its verdict and numbers (failing ones first),
the slices (those that failed the gate, then those beyond the limit that were too small or not significant
to decide it) and the links. Every value is escaped: HTML-escaped in HTML, control characters
removed in text; a link whose scheme is not http(s) or mailto (or a relative path) is shown, not linked.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.config import METRICS
from sluice.evaluation.gate import GateDecision, RuleResult, Verdict
from sluice.safehtml import link_list, safe_url

_ORDER = {Verdict.FAIL: 0, Verdict.INCONCLUSIVE: 1, Verdict.PASS: 2, Verdict.SKIPPED: 3}
_MARK = {
    Verdict.FAIL: "** FAIL **",
    Verdict.INCONCLUSIVE: "INCONCLUSIVE",
    Verdict.PASS: "pass",
    Verdict.SKIPPED: "skipped",
}
_COLOR = {"FAIL": "#b42318", "INCONCLUSIVE": "#b54708", "PASS": "#067647", "SKIPPED": "#667085"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(value: Any) -> str:
    """Text-safe: no control characters (a label cannot forge lines or terminal escapes)."""
    return _CONTROL.sub(" ", str(value)).replace("\n", " ")


def _num(value: Any, fmt: str = ".4f") -> str:
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else str(value).lower()
    try:
        x = float(value)
    except (TypeError, ValueError):
        return _clean(value)
    return "n/a" if not math.isfinite(x) else format(x, fmt)


def ordered_rules(decision: GateDecision) -> list[RuleResult]:
    """Failing rules first, then inconclusive, passed, skipped (configured order kept within each)."""
    return sorted(decision.rules, key=lambda r: _ORDER[Verdict(r.verdict)])


def _metric_rows(decision: GateDecision) -> list[tuple[str, str, str, str, str]]:
    """(metric, candidate, champion, candidate - champion, better/worse) per metric, primary first."""
    champ = decision.champion_metrics or {}
    names = list(dict.fromkeys([decision.primary_metric, *decision.candidate_metrics, *champ]))
    rows = []
    for name in names:
        c, h = decision.candidate_metrics.get(name), champ.get(name)
        diff, judgement = None, ""
        if c is not None and h is not None and math.isfinite(float(c)) and math.isfinite(float(h)):
            diff = float(c) - float(h)
            hib = METRICS.get(name, ("", False, True))[2]
            judgement = "same" if diff == 0 else ("better" if (diff > 0) == hib else "worse")
        label = f"{name} (primary)" if name == decision.primary_metric else name
        if name in METRICS and not METRICS[name][2]:
            label += ", lower is better"
        rows.append((label, _num(c), _num(h) if decision.champion_metrics else "-", _num(diff, "+.4f"), judgement))
    return rows


def bootstrap_line(decision: GateDecision) -> str:
    """ "roc_auc difference +0.012 [95% CI -0.004, +0.027], 1000 resamples, 12,345 rows"."""
    b = decision.bootstrap
    if not b:
        return "no bootstrap interval (no champion to compare with)" if not decision.has_champion else "no bootstrap"
    metric = _clean(b.get("metric"))
    conf = f"{float(b.get('confidence', 0)) * 100:g}%"
    line = (
        f"{metric} difference {_num(b.get('point_difference'), '+.3f')} "
        f"[{conf} CI {_num(b.get('lower'), '+.3f')}, {_num(b.get('upper'), '+.3f')}], "
        f"{b.get('n_samples')} resamples, {int(b.get('n_rows') or 0):,} rows"
    )
    if metric in METRICS and not METRICS[metric][2]:
        line += " (champion - candidate: positive means the candidate is better)"
    return line


def _table_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[_clean(c) for c in header], *[[_clean(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


_SLICE_HEADER = ("column", "value", "candidate", "champion", "regression", "rows (pos/neg)", "p (Holm)", "status")


def _rows_cell(s: Mapping[str, Any]) -> str:
    n = s.get("n_rows", s.get("n_candidate"))
    pos, neg = s.get("positives"), s.get("negatives")
    return f"{n}" + (f" ({pos}/{neg})" if pos is not None and neg is not None else "")


def _p_cell(s: Mapping[str, Any]) -> str:
    if s.get("p_value") is None:
        return "-"
    adjusted = s.get("p_adjusted")
    return _num(s.get("p_value"), ".3g") + ("" if adjusted is None else f" ({_num(adjusted, '.3g')})")


def _slice_rows(slices: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            str(s.get("column")),
            str(s.get("value")),
            _num(s.get("candidate")),
            _num(s.get("champion")),
            _num(s.get("regression"), "+.4f"),
            _rows_cell(s),
            _p_cell(s),
            " ".join(str(x) for x in (s.get("status") or "regressed", s.get("why") and f"({s['why']})") if x),
        )
        for s in slices
    ]


def slice_sections(decision: GateDecision) -> list[tuple[str, list[tuple[str, ...]]]]:
    """``(title, rows)``: the slice values that failed the gate, then those beyond the limit that did not
    decide it (too small, not significant, undefined), so a reader sees both and why."""
    metric = decision.primary_metric
    reported = [s for s in decision.slice_findings if s.get("status") != "regressed"]
    sections = []
    if decision.regressed_slices:
        sections.append((f"Regressed slices ({metric}), decisive", _slice_rows(decision.regressed_slices)))
    if reported:
        title = f"Slices beyond the limit ({metric}), reported, not decisive: too small or not significant"
        sections.append((title, _slice_rows(reported)))
    return sections


def _not_compared(decision: GateDecision) -> str:
    """Why a gate decision holds no champion metrics while a champion serves."""
    if any(r.rule == "training_suite" for r in decision.failing_rules):
        return "the training-set suite failed, so the candidate was not evaluated"
    return "the evaluation compared the candidate with no champion"


def as_judged_against(
    decision: GateDecision, champion: Any, compared: str = "current champion"
) -> tuple[GateDecision, str]:
    """``(decision as shown, champion label)`` given the version the registry's ``champion`` alias names
    (None: there is none); ``compared`` labels the champion the evaluation compared with, when it did.

    A gate judged without a champion's metrics although one serves (the training-set suite failed, so nothing
    was compared) names that champion and says why it was not compared, instead of "no champion yet": its
    notes and rule details are reworded, the verdicts untouched. Every report of a decision (the gate report
    in MLflow, the "not promoted" mail) shows it through here."""
    from sluice.evaluation.gate import NO_CHAMPION_NOTE

    if decision.champion_metrics is not None:
        return decision, compared
    if champion is None:
        return decision, "none (first model)"
    why = f"champion v{champion} serves but was not compared: {_not_compared(decision)}"

    def reword(text: str) -> str:
        if text == NO_CHAMPION_NOTE:
            return why
        return f"{why}; {text.removeprefix('no champion yet and ')}" if text.startswith("no champion yet") else text

    rules = tuple(dataclasses.replace(r, detail=reword(r.detail)) for r in decision.rules)
    shown = dataclasses.replace(
        decision, has_champion=True, notes=tuple(reword(n) for n in decision.notes), rules=rules
    )
    return shown, f"v{champion} (serving, not compared: {_not_compared(decision)})"


def _headline(decision: GateDecision, model: str, candidate_label: str, champion_label: str | None) -> str:
    versus = f"champion {champion_label}" if decision.has_champion and champion_label else "no champion yet"
    return f"Model {model}: candidate {candidate_label} vs {versus}: gate {Verdict(decision.decision).value}"


def render_text(
    decision: GateDecision,
    *,
    model: str,
    candidate_label: str,
    champion_label: str | None,
    links: Mapping[str, str],
) -> str:
    lines = [_clean(_headline(decision, model, candidate_label, champion_label))]
    failing = decision.failing_rules
    if failing:
        lines.append(_clean(f"Failing rules: {', '.join(r.rule for r in failing)}"))
    lines += [_clean(f"Note: {n}") for n in decision.notes]
    lines += ["", "Metrics (difference = candidate - champion):"]
    lines += _table_text(("metric", "candidate", "champion", "difference", ""), _metric_rows(decision))
    lines += ["", _clean(f"Bootstrap: {bootstrap_line(decision)}"), "", "Rules (failing first):"]
    rule_rows = [
        (_MARK[Verdict(r.verdict)], r.rule, _num(r.observed), _num(r.threshold), r.detail)
        for r in ordered_rules(decision)
    ]
    lines += _table_text(("verdict", "rule", "observed", "threshold", "detail"), rule_rows)
    for title, rows in slice_sections(decision):
        lines += ["", _clean(f"{title}:")]
        lines += _table_text(_SLICE_HEADER, rows)
    if links:
        lines += ["", "Links:"]
        lines += [f"  {_clean(k)}: {_clean(v)}" for k, v in links.items()]
    return "\n".join(lines) + "\n"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _safe_href(url: str) -> bool:
    return safe_url(url) is not None


def _table_html(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        f'<tr class="{_e(row_classes[i]) if i < len(row_classes) else ""}">'
        + "".join(f"<td>{_e(c)}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#101828}
h1{font-size:1.3em} h2{font-size:1.05em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0} th,td{border:1px solid #d0d5dd;padding:.3em .6em;text-align:left;
vertical-align:top;font-size:.9em} th{background:#f2f4f7}
.badge{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff;font-weight:bold}
tr.FAIL td{background:#fef3f2} tr.FAIL td:first-child{color:#b42318;font-weight:bold}
tr.INCONCLUSIVE td{background:#fffaeb} tr.SKIPPED td{color:#667085}
.note{color:#475467} code{background:#f2f4f7;padding:0 .2em}
"""


def render_html(
    decision: GateDecision,
    *,
    model: str,
    candidate_label: str,
    champion_label: str | None,
    links: Mapping[str, str],
) -> str:
    verdict = Verdict(decision.decision).value
    parts = [
        f"<h1>{_e(_headline(decision, model, candidate_label, champion_label))} "
        f'<span class="badge" style="background:{_COLOR[verdict]}">{_e(verdict)}</span></h1>'
    ]
    if decision.failing_rules:
        names = ", ".join(f"<code>{_e(r.rule)}</code>" for r in decision.failing_rules)
        parts.append(f"<p><b>Failing rules:</b> {names}</p>")
    parts += [f'<p class="note">Note: {_e(n)}</p>' for n in decision.notes]
    parts.append("<h2>Metrics</h2><p>difference = candidate - champion</p>")
    parts.append(_table_html(("metric", "candidate", "champion", "difference", ""), _metric_rows(decision)))
    parts.append(f"<h2>Bootstrap</h2><p>{_e(bootstrap_line(decision))}</p>")
    rules = ordered_rules(decision)
    parts.append("<h2>Rules (failing first)</h2>")
    parts.append(
        _table_html(
            ("verdict", "rule", "observed", "threshold", "detail"),
            [(Verdict(r.verdict).value, r.rule, _num(r.observed), _num(r.threshold), r.detail) for r in rules],
            [Verdict(r.verdict).value for r in rules],
        )
    )
    for title, rows in slice_sections(decision):
        parts.append(f"<h2>{_e(title)}</h2>")
        parts.append(_table_html(_SLICE_HEADER, rows))
    if links:
        parts.append(f"<h2>Links</h2>{link_list(links)}")
    title = _e(f"{model}: gate {verdict}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def _md(value: Any) -> str:
    """Markdown-safe text: HTML-escaped, markdown punctuation backslash-escaped, no line breaks."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(_clean(value), quote=True))


def undecided_rules(decision: GateDecision) -> list[RuleResult]:
    """The rules that made the decision what it is: failing ones, else the inconclusive ones."""
    return [r for r in ordered_rules(decision) if Verdict(r.verdict) in (Verdict.FAIL, Verdict.INCONCLUSIVE)]


def render_markdown(
    decision: GateDecision,
    *,
    model: str,
    candidate_label: str,
    champion_label: str | None,
    links: Mapping[str, str],
) -> str:
    """The evidence as Markdown, for the Airflow approval form: decision, metrics, interval, reasons, links."""
    lines = [f"**{_md(_headline(decision, model, candidate_label, champion_label))}**", ""]
    lines += ["| metric | candidate | champion | difference | |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in _metric_rows(decision)]
    lines += ["", f"Bootstrap: {_md(bootstrap_line(decision))}", "", "Why the gate could not decide:"]
    lines += [
        f"- **{_md(r.rule)}** ({_md(Verdict(r.verdict).value)}): {_md(r.detail)}" for r in undecided_rules(decision)
    ]
    lines += [f"- note: {_md(n)}" for n in decision.notes]
    safe = [(name, url) for name, url in links.items() if url and _safe_href(url)]
    if safe:
        lines += [
            "",
            " · ".join(f"[{_md(name)}](<{url.replace('>', '%3E').replace(' ', '%20')}>)" for name, url in safe),
        ]
    return "\n".join(lines) + "\n"
