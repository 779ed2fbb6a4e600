"""The plugin's FastAPI app, mounted by the API server at ``/sluice``: GET routes only, each behind
the Host check, Airflow's login and the security headers (see :mod:`sluice.airflow.ui.guard`)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from sluice.airflow.ui import lake, view
from sluice.airflow.ui.guard import LoginRequired, SecurityMiddleware, login_redirect, require_user


def build_app() -> FastAPI:
    app = FastAPI(
        title="Sluice",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(require_user)],
    )
    app.add_middleware(SecurityMiddleware)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.include_router(lake.router)
    app.include_router(view.router)
    return app
