"""The drift report a person reads: one self-contained HTML page (no scripts, no external assets).

For every feature (and the prediction), the reference and current distributions side by side as an inline
SVG bar chart over the reference bins or categories, next to the statistics and the verdict; the
decision and its reasons on top. The JSON next to it carries the same numbers for machines.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.safehtml import CSP_META, link_list

REF_COLOR, CUR_COLOR, BAD = "#8da0cb", "#fc8d62", "#b2182b"


def svg_bars(labels: Sequence[str], reference: Sequence[float], current: Sequence[float], width: int = 360) -> str:
    """Paired bars (reference, current) per bin; heights relative to the largest share."""
    n = max(len(labels), 1)
    height, pad = 110, 18
    top = max([*reference, *current, 1e-9])
    slot = (width - 10) / n
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg width="{width}" height="{height + pad}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i, label in enumerate(labels):
        x = 5 + i * slot
        for j, (share, color) in enumerate(((reference[i], REF_COLOR), (current[i], CUR_COLOR))):
            h = height * share / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{html.escape(label)}: {'reference' if j == 0 else 'current'} {share:.3f}</title></rect>"
            )
        if n <= 12:
            text = html.escape(label if len(label) <= 9 else label[:8] + "…")
            parts.append(f'<text x="{x + bar:.1f}" y="{height + 12}" font-size="8" text-anchor="middle">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def render_drift_html(
    title: str,
    decision: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    charts: Mapping[str, tuple[Sequence[str], Sequence[float], Sequence[float]]],
    links: Mapping[str, str] | None = None,
) -> str:
    """``rows``: per feature ``feature, kind, psi, statistic, p_adjusted, effect, unseen_share, drifted, reason``;
    ``charts``: feature -> (bin labels, reference shares, current shares)."""
    verdict = "DRIFT" if decision.get("drift") else "no drift"
    color = BAD if decision.get("drift") else "#1a9850"
    reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in decision.get("reasons", []))
    link_html = link_list(links)  # javascript:, data: and other non-http(s) targets are shown as text
    cells = []
    for r in rows:
        name = str(r["feature"])
        chart = charts.get(name)
        svg = svg_bars(*chart) if chart else ""
        mark = f'<b style="color:{BAD}">drifted</b>' if r.get("drifted") else "ok"
        cells.append(
            "<tr>"
            f"<td><b>{html.escape(name)}</b><br><small>{html.escape(str(r.get('kind', '')))}</small></td>"
            f"<td>{svg}</td>"
            f"<td>{_fmt(r.get('psi'))}</td><td>{_fmt(r.get('statistic'))}</td><td>{_fmt(r.get('p_adjusted'))}</td>"
            f"<td>{_fmt(r.get('effect'))}</td><td>{_fmt(r.get('unseen_share'))}</td>"
            f"<td>{mark}<br><small>{html.escape(str(r.get('reason') or ''))}</small></td>"
            "</tr>"
        )
    not_checked = "".join(
        f"<li><b>{html.escape(str(c))}</b>: {html.escape(str(why))}</li>"
        for c, why in (decision.get("not_checked") or {}).items()
    )
    not_checked = f"<p>Not checked:</p><ul>{not_checked}</ul>" if not_checked else ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("feature", "reference vs current", "PSI", "statistic", "p (adj.)", "effect", "unseen", "verdict")
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{CSP_META}"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;"
        "vertical-align:top;font-size:13px}table{border-collapse:collapse}</style></head><body>"
        f"<h2>{html.escape(title)}</h2>"
        f'<p style="font-size:18px">Decision: <b style="color:{color}">{verdict}</b></p><ul>{reasons}</ul>'
        f'<p><span style="color:{REF_COLOR}">&#9632;</span> reference (the model\'s training data) '
        f'<span style="color:{CUR_COLOR}">&#9632;</span> current interval</p>'
        f"<table><tr>{head}</tr>{''.join(cells)}</table>{not_checked}{link_html}</body></html>"
    )
