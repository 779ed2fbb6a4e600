"""HTML every Sluice report and view is built with: every value escaped, every link checked.

Data values, column and file names come from producers the platform does not control, and the pages are
served on the Airflow API's origin, so one unescaped value would be a stored XSS against whoever opens the
evidence. Reports build their markup with :func:`esc` and their links with :func:`link`; a link whose
target is not http(s) or a relative path (``javascript:``, ``data:``, ``vbscript:``, ``file:``) is shown as
text, never as a link.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

#: served with every Sluice page: nothing loads or runs but the page's own inline styles and data: images
_CSP_DOC = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
CSP = f"{_CSP_DOC}; frame-ancestors 'self'"
#: the same policy as a meta tag (frame-ancestors is ignored there), so a copy opened from disk or from
#: MLflow's artifact view is as restricted as the served page
#: with an empty icon, so the browser fetches no /favicon.ico the policy would refuse (a console error)
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{_CSP_DOC}"><link rel="icon" href="data:,">'
SAFE_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f]")  # browsers drop these when they parse a URL's scheme


def esc(value: object) -> str:
    """Text for HTML content and quoted attribute values (``None`` is empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def safe_url(url: object) -> str | None:
    """``url`` if it is http(s) or relative; None for any other scheme (``javascript:``, ``data:``...)."""
    if not isinstance(url, str) or not url.strip():
        return None
    probe = _INVISIBLE.sub("", url).replace("\\", "/")
    match = _SCHEME.match(probe)
    if match and match.group(1).lower() not in SAFE_SCHEMES:
        return None
    if probe.startswith("//") and not match:
        return None  # protocol-relative: another host with the page's scheme; spell the scheme out
    return url.strip()


def link(name: object, url: object, *, new_tab: bool = False) -> str:
    """``<a href>`` for a safe target; the escaped name and target as plain text otherwise."""
    target = safe_url(url)
    if target is None:
        return f"{esc(name)}: <code>{esc(url)}</code>" if url else esc(name)
    extra = ' target="_blank" rel="noopener noreferrer"' if new_tab else ' rel="noreferrer"'
    return f'<a href="{esc(target)}"{extra}>{esc(name)}</a>'


def link_list(links: Mapping[str, object] | None) -> str:
    """A ``<ul>`` of :func:`link` items (empty string when there is nothing to list)."""
    items = "".join(f"<li>{link(k, v)}</li>" for k, v in (links or {}).items() if v)
    return f"<ul>{items}</ul>" if items else ""


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A bordered table of text cells, every cell escaped (mail clients ignore a page's stylesheet)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"


def page(title: str, body: str, *, style: str = "") -> str:
    """A complete, self-contained page: no script, no external asset, the CSP as a meta tag."""
    base = (
        "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px;text-align:left}"
        "th{background:#f0f0f0}code{white-space:pre-wrap;word-break:break-all}.ok{color:#1a7f37}"
        ".bad{color:#b2182b;font-weight:bold}small{color:#555}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{CSP_META}"
        f"<title>{esc(title)}</title><style>{base}{style}</style></head><body>{body}</body></html>"
    )
