"""Headless Chromium (Debian's package, driven by its chromedriver) with the checks every page must pass.

``Browser.open(step, path, *texts)`` loads a page of the Airflow UI, waits until each expected text is
visible, saves a screenshot named by test and step, and fails on any HTTP 5xx answer, any 401/403 after
login, and any SEVERE console message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]

# Without the background-networking flags Chromium keeps dialling out, and this machine refuses it.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1000",
)


def artifacts_dir() -> Path:
    return Path(os.environ.get("SLUICE_ARTIFACTS") or REPO / ".sluice" / "artifacts" / "browser")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


class PageError(AssertionError):
    pass


class Browser:
    """One Chromium for the tier; ``test`` (the current test's name) prefixes every screenshot."""

    def __init__(self, base: str, wait_s: float = 30) -> None:
        self.base = base.rstrip("/")
        self.wait_s = wait_s
        self.test = "session"
        self.shots: list[Path] = []
        self.profile = tempfile.mkdtemp(prefix="sluice-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in (*CHROMIUM_ARGS, f"--user-data-dir={self.profile}"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(60)
        self.logged_in = False

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------------ what the page did
    def responses(self) -> list[tuple[int, str]]:
        """HTTP answers since the last call (status, url), from Chrome's performance log."""
        out = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.responseReceived":
                r = msg["params"]["response"]
                out.append((int(r["status"]), r["url"]))
        return out

    def console(self) -> list[dict]:
        return self.driver.get_log("browser")

    def check(self, where: str, allow_401: bool = False) -> None:
        """No 5xx, no 401/403 once logged in, no SEVERE console message since the last check."""
        bad = [
            (s, u) for s, u in self.responses() if s >= 500 or (s in (401, 403) and self.logged_in and not allow_401)
        ]
        severe = [e["message"] for e in self.console() if e["level"] == "SEVERE"]
        if allow_401:
            # the SPA asks /ui/config before it knows it has no session; the 401 sends it to the login page
            severe = [m for m in severe if "status of 401" not in m]
        if bad or severe:
            raise PageError(f"{where}: HTTP errors {bad}; console errors {severe}")

    # ------------------------------------------------------------------ looking at the page
    def wait(self, condition, what: str, timeout: float | None = None):
        try:
            return WebDriverWait(self.driver, timeout or self.wait_s).until(condition)
        except TimeoutException:
            shot = self.shot(f"FAILED-{_slug(what)}")
            raise PageError(f"{self.driver.current_url}: {what} (screenshot {shot})") from None

    def visible_text(self, text: str, timeout: float | None = None) -> str:
        """Wait until ``text`` is part of the page's rendered (visible) text; returns that text."""

        def find(d):
            body = d.find_element(By.TAG_NAME, "body").text
            return body if text in body else False

        return self.wait(find, f"no visible text {text!r}", timeout)

    def button(self, label: str, timeout: float | None = None, within: str = "") -> WebElement:
        """A visible button (or link) whose text or aria-label is ``label``, inside the ``within`` XPath."""
        lit = _xpath_literal(label)
        xpath = (
            f"{within}//button[normalize-space(.)={lit} or @aria-label={lit}]"
            f" | {within}//a[normalize-space(.)={lit} or @aria-label={lit}]"
        )

        def find(d):
            return next((e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()), False)

        return self.wait(find, f"no visible button {label!r}", timeout)

    def body_text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def shot(self, step: str) -> Path:
        folder = artifacts_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_slug(self.test)}--{len(self.shots) + 1:02d}-{_slug(step)}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    # ------------------------------------------------------------------ doing things
    def login(self, user: str, password: str) -> None:
        """Through the UI's own login form (SimpleAuthManager), as a person would."""
        self.driver.get(f"{self.base}/")
        self.wait(ec.url_contains("/auth/login"), "the UI did not send an anonymous visitor to the login page")
        user_box = self.wait(ec.visibility_of_element_located((By.NAME, "username")), "no username field")
        user_box.send_keys(user)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.shot("login-form")
        self.button("Sign in").click()
        self.wait(lambda d: "/auth/login" not in d.current_url, "login did not leave the login page")
        self.check("login", allow_401=True)
        self.logged_in = True

    def open(self, step: str, path: str, *texts: str, timeout: float | None = None) -> None:
        """Load ``path``, wait for every text to be visible, screenshot, then check answers and console."""
        self.driver.get(path if path.startswith("http") else f"{self.base}{path}")
        self.settle(step, *texts, timeout=timeout)

    def settle(self, step: str, *texts: str, timeout: float | None = None) -> None:
        for text in texts:
            self.visible_text(text, timeout)
        time.sleep(0.5)  # let the requests the page started answer before reading the logs
        self.shot(step)
        self.check(f"{step} ({self.driver.current_url})")


def _xpath_literal(s: str) -> str:
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in s.split("'")) + ")"
