"""What every ``/sluice/...`` route passes before it runs: Host check, Airflow login, security headers.

Authentication is Airflow's own: the JWT the UI keeps in the ``_token`` cookie after login, or an
``Authorization: Bearer`` token from ``POST /auth/token``, resolved by the core API's ``get_user`` and
authorized by the configured auth manager (the same access as the Airflow UI itself: the ``WEBSITE``
view). A browser navigation without a login is sent to Airflow's login page and comes back afterwards;
any other request gets 401 (no credential) or 403 (bad credential / no access). Never content.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.safehtml import CSP

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: a served lake file may also be opened directly: sandboxed (opaque origin: no cookie, no API access)
SANDBOX = "; sandbox allow-popups allow-popups-to-escape-sandbox"
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}

_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def allowed_hosts() -> frozenset[str]:
    """Loopback names, the host of ``[api] base_url``, and ``$SLUICE_ALLOWED_HOSTS`` (comma-separated,
    for a proxy's public name)."""
    hosts = set(LOCAL_HOSTS)
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # outside Airflow (unit tests of the app): the environment says the same
        base = os.environ.get("AIRFLOW__API__BASE_URL", "")
    if base and (name := urlsplit(base).hostname):
        hosts.add(name.lower())
    hosts |= {h.strip().lower() for h in os.environ.get("SLUICE_ALLOWED_HOSTS", "").split(",") if h.strip()}
    return frozenset(hosts)


def host_of(header: str) -> str | None:
    """The host name of a ``Host`` header (port and IPv6 brackets removed); None when it does not parse."""
    if not header or any(c in header for c in "/\\@?# \t\r\n"):
        return None
    try:
        parts = urlsplit(f"//{header}")
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        return None
    return parts.hostname


class SecurityMiddleware:
    """Host check (400) before anything runs, and the security headers on every answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = host_of(headers.get(b"host", b"").decode("latin-1"))
        if host is None or host.lower() not in allowed_hosts():
            await _with_headers(PlainTextResponse("Host not allowed", status_code=400))(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers") or [])
                present = {k.lower() for k, _ in raw}
                raw += [(k, v) for k, v in _RAW_HEADERS if k not in present]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


class LoginRequired(Exception):
    """A browser navigation without a login: answered with a redirect to Airflow's login page."""

    def __init__(self, url: str) -> None:
        self.url = url


def _is_navigation(request: Request) -> bool:
    if request.method != "GET" or request.headers.get("authorization"):
        return False
    mode = request.headers.get("sec-fetch-mode")
    return mode == "navigate" or (mode is None and "text/html" in request.headers.get("accept", ""))


async def require_user(request: Request) -> Any:
    """FastAPI dependency: the Airflow user of the request, who must be allowed to see the Airflow UI."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        user = await get_user(request, None, await bearer_scheme(request))
    except HTTPException as exc:
        if exc.status_code == 401 and _is_navigation(request):
            raise LoginRequired(get_auth_manager().get_url_login(next_url=str(request.url))) from exc
        raise
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="not allowed to see the Airflow UI")
    return user


def login_redirect(request: Request, exc: Exception) -> Response:
    """Registered for LoginRequired only (Starlette types handlers over Exception)."""
    assert isinstance(exc, LoginRequired), exc
    return RedirectResponse(exc.url, status_code=302)
