"""The browser tier: one embedded stack (PostgreSQL, SMTP sink, MLflow, Airflow) with data, one Chromium.

The stack fixture is the e2e tier's (``tests/e2e/conftest.py``), loaded from its file so both tiers start the
stack the same way. ``_populate`` gives the UI something real to show; the tests only look and click.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from browser import Browser, artifacts_dir
from uidata import _populate

_spec = importlib.util.spec_from_file_location("sluice_e2e_stack", Path(__file__).parents[1] / "e2e" / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
stack = _e2e.stack
monkeypatch_module = _e2e.monkeypatch_module


@pytest.fixture(scope="module")
def populated(stack) -> dict:
    t0 = time.monotonic()
    runs = _populate(stack)
    print(f"\nbrowser tier: stack data ready in {time.monotonic() - t0:.0f}s: {runs}")
    return runs


@pytest.fixture(scope="module")
def browser(stack):
    from sluice.stack.embedded import AIRFLOW_USER, airflow_password

    settings, _ = stack
    b = Browser(settings.airflow_url)
    try:
        b.login(AIRFLOW_USER, airflow_password(settings))
        yield b
    finally:
        b.quit()


@pytest.fixture(autouse=True)
def _name_screenshots(request, browser) -> None:
    browser.test = request.node.name
    browser.responses(), browser.console()  # what an earlier (failed) test left unread is not this one's


def pytest_sessionfinish(session) -> None:
    folder = artifacts_dir()
    if folder.exists():
        print(f"\nbrowser tier screenshots: {folder}")


def pytest_collection_modifyitems(items) -> None:
    # the first test also waits for the stack and its data (minutes on a machine shared with other jobs)
    for item in items:
        item.add_marker(pytest.mark.timeout(2400))
