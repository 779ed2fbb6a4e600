"""Every page Sluice renders escapes data values and links only to http(s) or relative targets."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from sluice.safehtml import link, link_list, safe_url

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "</td><svg onload=alert(4)>"]
#: markup a browser would act on: a script/img/iframe/object tag, an on* handler inside a tag, a script link
ACTIVE = re.compile(
    r"<(script|img|iframe|object|embed)\b|<[a-z]+[^>]*\son[a-z]+\s*=|<a\s[^>]*href=\"\s*(javascript|data|vbscript):",
    re.I,
)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "//evil.example.com/x",
        "\\\\evil.example.com/x",
        "",
        None,
    ],
)
def test_unsafe_targets_are_dropped(url) -> None:
    assert safe_url(url) is None
    assert "href" not in link("x", url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/sluice/lake/x", "https://example.com/a?b=1", "/sluice/ui/", "x/y"]
)
def test_http_and_relative_targets_are_kept_and_escaped(url) -> None:
    assert safe_url(url) == url
    assert link('a"<', url).startswith('<a href="') and "a&quot;&lt;" in link('a"<', url)


def test_link_list_escapes_names_and_drops_bad_targets() -> None:
    html = link_list({XSS[0]: "javascript:alert(1)", "ok": "https://ok.example.com"})
    assert ACTIVE.search(html) is None and 'href="https://ok.example.com"' in html


@pytest.fixture(scope="module")
def outcome():
    """One GX validation with hostile failing values (a GX run costs seconds; both tests only read it)."""
    from sluice.validation.gx import validate

    df = pd.DataFrame({"loan_id": [f"L{i}" for i in range(6)], "grade": ["A", "B", *XSS, "A"]})
    suite = {
        "name": "s",
        "expectations": [
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "grade", "value_set": ["A", "B"]}},
        ],
    }
    return validate(df, suite, sample_rows=20, id_column="loan_id")


def test_data_docs_escape_values_show_ids_and_load_nothing(outcome) -> None:
    from sluice.validation.gx import render_data_docs

    page = render_data_docs(outcome.result, "grade check", "loan_id")
    assert page is not None and ACTIVE.search(page) is None, page
    assert "loan_id=L2: &lt;script&gt;alert(1)&lt;/script&gt;" in page
    external = r"<script\b|@import|<link[^>]*href=\"(?!data:)|https?://"
    assert not re.search(external, page), "Data Docs must render offline"


def test_failure_samples_carry_row_ids_in_mail_and_summary(outcome) -> None:
    from sluice.validation.gx import failure_rows, render_summary_html

    (row,) = failure_rows(outcome.failures)
    assert row[4].startswith("loan_id=L2: <script>alert(1)</script>, loan_id=L3: ")
    page = render_summary_html(XSS[1], outcome.failures, {XSS[2]: "javascript:alert(1)", "log": "http://log"})
    assert ACTIVE.search(page) is None and "loan_id=L2: &lt;script&gt;" in page


def test_drift_report_escapes_names_and_drops_javascript_links() -> None:
    from sluice.monitoring.report import render_drift_html

    page = render_drift_html(
        XSS[0],
        {"drift": True, "reasons": XSS, "not_checked": {XSS[1]: XSS[2]}},
        [{"feature": v, "kind": v, "reason": v, "drifted": True} for v in XSS],
        {XSS[0]: (XSS, [0.5, 0.3, 0.2], [0.1, 0.1, 0.8])},
        {"js": "javascript:alert(5)", "data": "data:text/html,x", "ok": "https://example.com/runbook"},
    )
    assert ACTIVE.search(page) is None
    assert 'href="https://example.com/runbook"' in page and "Content-Security-Policy" in page
