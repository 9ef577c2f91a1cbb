"""Playwright driving Debian's chromium (headless) against pytest-django's live server.

A missing browser or Playwright skips locally and fails in CI (tests.services.service_missing);
``scripts/ensure-chromium.sh`` installs the browser. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..services import service_missing
from ..web.seed import PASSWORD, seed_catalogue



@pytest.fixture(scope="package", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread while the browser tests run; their ORM
    calls are still synchronous. Set for this package only: it must not leak into other tests' processes
    (the browser, below, is closed with the package too)."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="package")
def browser(_orm_beside_playwright):
    if not os.path.exists(CHROMIUM):
        service_missing(f"chromium at {CHROMIUM} (run scripts/ensure-chromium.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing(f"playwright: {exc}")
    manager = sync_playwright().start()
    try:
        launched = manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:  # noqa: BLE001 - any launch failure means the browser is unusable here
        manager.stop()
        service_missing(f"chromium did not start: {exc}")
    yield launched
    launched.close()
    manager.stop()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.js_errors = errors
    yield tab
    context.close()


@pytest.fixture
def seeded(transactional_db):
    return seed_catalogue()


@pytest.fixture
def shoot():
    """Save a full-page screenshot as var/screenshots/<name>.png; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(tab, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take


def sign_in(tab, username: str, password: str = PASSWORD) -> None:
    tab.goto("/accounts/login/")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url("**/")
