"""Every attack on the Sluice routes of the Airflow API server, with the answer it must get.

One real stack for the module (PostgreSQL, api-server, scheduler, triggerer, SMTP sink). A producer lands
a partition whose category values and file name are XSS payloads; the real features DAG quarantines it;
then each attempt below is made over HTTP against the real API server:

| attempt                                                        | expected                          |
|----------------------------------------------------------------|-----------------------------------|
| payload in category values -> Data Docs, summary page          | escaped; no <script>/<img> tag    |
| payload in a landing file name -> record folder listing        | escaped, href URL-quoted          |
| payload in feature names + javascript:/data: links -> drift    | escaped; no href to those schemes |
| extra links endpoint, every task of every DAG                  | 200; validate's link opens 200    |
| no credential (API client)                                     | 401, no content                   |
| no credential (browser navigation)                             | 302 to Airflow's login            |
| forged / expired-looking token                                 | 403                               |
| the UI's _token cookie, or a Bearer token                      | 200                               |
| Host: evil.example.com (valid token)                           | 400                               |
| symlink from the zone to /etc/passwd, to landing/              | 404                               |
| .., %2e%2e, %252e, backslash, NUL, hidden, 5,000 chars, 3,000 levels | 404                         |
| raw parquet of a quarantine record                             | attachment, octet-stream          |
| any served page, error pages included                          | strict CSP + nosniff              |
| POST/PUT/DELETE (CSRF surface), with the cookie                | 405: only GET exists              |
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import time
from urllib.parse import urlsplit

import pytest
import requests

from sluice.config import get_model_config
from sluice.datagen import loans
from sluice.datagen.corrupt import render
from sluice.lake import open_lake

DAG = "loans_features"
DS = dt.date(2025, 1, 12)
XSS_VALUES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "</td><svg onload=alert(4)>"]
XSS_FILE = 'x"><img src=x onerror=alert(3)>.parquet'
#: markup a browser would act on: a script/img/iframe/object tag, an on* handler inside a tag, a script link
ACTIVE = re.compile(
    r"<(script|img|iframe|object|embed)\b|<[a-z]+[^>]*\son[a-z]+\s*=|<a\s[^>]*href=\"\s*(javascript|data|vbscript):",
    re.I,
)


def assert_inert(html: str, where: str) -> None:
    found = ACTIVE.search(html)
    assert found is None, (
        f"{where}: active markup {found.group(0)!r} in {html[max(0, found.start() - 200) : found.end() + 200]!r}"
    )


def assert_strict_headers(r: requests.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src" not in csp, (r.url, r.status_code, csp)
    assert r.headers.get("x-content-type-options") == "nosniff", (r.url, r.headers)


def raw_get(base: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET with the exact request target (no client-side normalisation of ``..`` or encodings)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for k, v in {"Host": u.netloc, **headers}.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def evidence(stack):
    """The hostile partition landed and quarantined by the real features DAG; a hostile drift report."""
    settings, api = stack
    lake = open_lake(settings.lake)
    cfg = get_model_config("loans")
    events = loans.generate_events(DS, seed=3)
    for i in range(len(events) // 10 + 1):  # 10% of the rows: over the suite's `mostly: 0.95` tolerance
        events.loc[events.index[i], "purpose"] = XSS_VALUES[i % len(XSS_VALUES)]
    lake.put_landing("landing", cfg.dataset.name, DS, {XSS_FILE: render(events, "parquet")})

    from sluice.monitoring.report import render_drift_html

    drift_page = render_drift_html(
        f"drift {XSS_VALUES[0]}",
        {"drift": True, "reasons": XSS_VALUES, "not_checked": {XSS_VALUES[1]: XSS_VALUES[2]}},
        [{"feature": v, "kind": v, "reason": v, "drifted": True} for v in XSS_VALUES],
        {XSS_VALUES[0]: (XSS_VALUES, [0.5, 0.3, 0.2], [0.1, 0.1, 0.8])},
        {
            "js": "javascript:alert(5)",
            "tab": "java\tscript:alert(6)",
            "data": "data:text/html,<script>x</script>",
            "vb": "vbscript:x",
            "ok": "https://example.com/runbook",
        },
    )
    lake.put_files(f"reports/loans/drift/ds={DS}", {"drift.html": drift_page.encode()})

    api.wait_for_dag(DAG)
    api.call("PATCH", f"/dags/{DAG}", json={"is_paused": False})
    run = api.call("POST", f"/dags/{DAG}/dagRuns", json={"logical_date": f"{DS}T00:00:00Z", "dag_run_id": "xss"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = api.call("GET", f"/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances/validate")["state"]
        if state in ("failed", "success", "upstream_failed"):
            break
        time.sleep(1)
    assert state == "failed", f"validate ended {state}: the hostile partition must be quarantined"
    records = [k for k in lake.list(f"quarantine/loans/ds={DS}") if k.endswith("/_RECORD.json")]
    assert records, lake.list("quarantine")
    return settings, api, lake, run["dag_run_id"], records[0].rsplit("/", 1)[0]


@pytest.fixture(scope="module")
def web(evidence):
    """``get(path, **kw)`` on the API server with the admin's Bearer token; and the token itself."""
    settings, api = evidence[:2]
    token = api.session.headers["Authorization"].split(" ", 1)[1]

    def get(path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return requests.get(f"{settings.airflow_url}{path}", headers=headers, timeout=60, **kwargs)

    return get, token, settings.airflow_url


def test_data_docs_and_summary_escape_hostile_values_and_render_offline(evidence, web) -> None:
    get, _, _ = web
    folder = evidence[4]
    for page in ("data_docs.html", "summary.html"):
        r = get(f"/sluice/lake/{folder}/{page}")
        assert r.status_code == 200, (page, r.status_code, r.text[:300])
        assert_strict_headers(r)
        assert "sandbox" in r.headers["content-security-policy"]
        for value in XSS_VALUES:
            assert value not in r.text, f"{page} echoes the landed value {value!r} unescaped"
        assert_inert(r.text, page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, f"{page} does not show the failing value"
        assert not re.search(r"<script\b|@import|<link[^>]*href=\"(?!data:)", r.text), f"{page} loads an external asset"
    docs = get(f"/sluice/lake/{folder}/data_docs.html").text
    assert re.search(r"application_id=[^:<]+: &lt;script&gt;", docs), "failing rows carry no ids"


def test_listing_escapes_a_hostile_file_name(evidence, web) -> None:
    get, _, _ = web
    r = get(f"/sluice/lake/{evidence[4]}/raw/")
    assert r.status_code == 200 and "onerror" in r.text  # the name is shown...
    assert_inert(r.text, "listing")  # ...as text
    assert_strict_headers(r)


def test_raw_parquet_is_an_attachment_never_rendered(evidence, web) -> None:
    get, _, _ = web
    listing = get(f"/sluice/lake/{evidence[4]}/raw/").text
    href = re.search(r'href="([^"]+\.parquet)"', listing).group(1).replace("&amp;", "&")
    r = get(href)
    assert r.status_code == 200 and r.content.startswith(b"PAR1")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")


def test_drift_report_drops_non_http_links_and_escapes_names(evidence, web) -> None:
    get, _, _ = web
    r = get(f"/sluice/lake/reports/loans/drift/ds={DS}/drift.html")
    assert r.status_code == 200
    assert_inert(r.text, "drift report")
    assert 'href="https://example.com/runbook"' in r.text
    assert_strict_headers(r)


def test_extra_links_answer_for_every_task_of_every_dag_and_open_the_evidence(evidence, web) -> None:
    settings, api, _, run_id, folder = evidence
    get, _, _ = web
    links = api.call("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/validate/links")["extra_links"]
    assert links["Data Docs"].endswith(f"/sluice/lake/{folder}/data_docs.html"), links
    assert links["Quarantine record"], links
    opened = get(urlsplit(links["Data Docs"]).path)
    assert opened.status_code == 200 and "&lt;script&gt;" in opened.text
    dags = [d["dag_id"] for d in api.call("GET", "/dags", params={"limit": 200})["dags"]]
    assert len(dags) >= 5, dags
    checked = 0
    for dag_id in dags:
        runs = api.runs(dag_id)
        if not runs:  # a paused DAG's run stays queued, but its task instances exist
            made = api.session.post(f"{settings.airflow_url}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
            if made.status_code != 200:  # e.g. a form with required fields: nothing to look at
                continue
            runs = [made.json()]
        for ti in api.call("GET", f"/dags/{dag_id}/dagRuns/{runs[0]['dag_run_id']}/taskInstances")["task_instances"]:
            r = api.session.get(
                f"{settings.airflow_url}/api/v2/dags/{dag_id}/dagRuns/{runs[0]['dag_run_id']}"
                f"/taskInstances/{ti['task_id']}/links",
                timeout=60,
            )
            assert r.status_code == 200, (dag_id, ti["task_id"], r.status_code, r.text[:500])
            checked += 1
    assert checked >= 15, checked


@pytest.mark.parametrize("path", ["/sluice/lake/reports/", "/sluice/ui/", "/sluice/ui/models/loans"])
def test_no_credential_no_content(evidence, web, path) -> None:
    _, _, base = web
    r = requests.get(f"{base}{path}", timeout=60, allow_redirects=False)
    assert r.status_code == 401 and "loans" not in r.text, (r.status_code, r.text[:200])
    assert_strict_headers(r)
    nav = requests.get(
        f"{base}{path}",
        headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
        timeout=60,
        allow_redirects=False,
    )
    assert nav.status_code == 302 and "/auth/login" in nav.headers["location"], (nav.status_code, nav.headers)
    forged = requests.get(f"{base}{path}", headers={"Authorization": "Bearer e30.e30.x"}, timeout=60)
    assert forged.status_code == 403 and "loans" not in forged.text


def test_the_ui_cookie_and_a_bearer_token_are_both_accepted(evidence, web) -> None:
    get, token, base = web
    assert get("/sluice/ui/").status_code == 200
    r = requests.get(f"{base}/sluice/ui/models/loans", cookies={"_token": token}, timeout=120)
    assert r.status_code == 200 and str(DS) in r.text and "quarantined" in r.text, r.text[:500]
    assert_inert(r.text, "model view")
    assert_strict_headers(r)


@pytest.mark.parametrize("host", ["evil.example.com", "localhost.evil.example.com", "127.0.0.1.nip.io", "a b"])
def test_a_foreign_host_header_is_refused(evidence, web, host) -> None:
    _, token, base = web
    status, body = raw_get(base, "/sluice/ui/", {"Host": host, "Authorization": f"Bearer {token}"})
    assert status == 400 and b"loans" not in body


def test_symlinks_out_of_a_zone_are_not_served(evidence, web) -> None:
    settings, _, lake = evidence[:3]
    get, _, _ = web
    folder = os.path.join(settings.lake, "reports", "loans")
    os.makedirs(folder, exist_ok=True)
    for name, target in (("passwd.txt", "/etc/passwd"), ("landing", os.path.join(settings.lake, "landing"))):
        if not os.path.lexists(os.path.join(folder, name)):
            os.symlink(target, os.path.join(folder, name))
    assert get("/sluice/lake/reports/loans/passwd.txt").status_code == 404
    assert get(f"/sluice/lake/reports/loans/landing/loans/ds={DS}/_SUCCESS").status_code == 404
    listing = get("/sluice/lake/reports/loans/")
    assert "passwd" not in listing.text and "root:" not in listing.text


@pytest.mark.parametrize(
    "path",
    [
        f"/sluice/lake/landing/loans/ds={DS}/_SUCCESS",
        f"/sluice/lake/quarantine/../landing/loans/ds={DS}/_SUCCESS",
        f"/sluice/lake/quarantine/%2e%2e/landing/loans/ds={DS}/_SUCCESS",
        f"/sluice/lake/quarantine/%2E%2E%2Flanding%2Floans%2Fds={DS}%2F_SUCCESS",
        "/sluice/lake/quarantine/%252e%252e/%252e%252e/etc/passwd",
        "/sluice/lake/quarantine/..%5c..%5c..%5cetc%5cpasswd",
        "/sluice/lake/quarantine/loans%00.html",
        "/sluice/lake/quarantine//etc/passwd",
        "/sluice/lake/reports/.secret",
        "/sluice/lake/%2fetc%2fpasswd",
        "/sluice/lake/quarantine/" + "a" * 5000,
        "/sluice/lake/quarantine/" + "a/" * 3000,
        "/sluice/ui/models/..%2f..%2fetc",
        f"/sluice/ui/models/loans/runs/{'0' * 32}/model.skops",
    ],
)
def test_traversal_encodings_and_oversized_paths_are_404(evidence, web, path) -> None:
    _, token, base = web
    status, body = raw_get(base, path, {"Authorization": f"Bearer {token}"})
    assert status == 404, (path[:120], status, body[:300])
    assert b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_no_state_changing_route_exists(evidence, web, method) -> None:
    _, token, base = web
    for path in ("/sluice/ui/", "/sluice/ui/models/loans", f"/sluice/lake/{evidence[4]}/data_docs.html"):
        r = requests.request(
            method,
            f"{base}{path}",
            cookies={"_token": token},
            headers={"Origin": "https://evil.example.com"},
            timeout=60,
        )
        assert r.status_code == 405, (method, path, r.status_code)


def test_error_pages_carry_the_strict_headers_too(evidence, web) -> None:
    get, _, _ = web
    for path in ("/sluice/lake/reports/nope.html", "/sluice/lake/landing/x", "/sluice/ui/models/nope"):
        r = get(path)
        assert r.status_code == 404
        assert_strict_headers(r)


def test_rows_ids_reach_the_evidence_not_nan(evidence) -> None:
    lake, folder = evidence[2], evidence[4]
    import json

    record = json.loads(lake.read(f"{folder}/_RECORD.json"))
    failing = [f for f in record["failures"] if f.get("column") == "purpose"]
    assert failing and failing[0]["sample_ids"], failing
    assert len(failing[0]["sample_ids"]) == len(failing[0]["sample"])
    assert all(i not in (None, "", "nan") for i in failing[0]["sample_ids"]), failing[0]
