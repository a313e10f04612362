"""Browser fixtures: one headless Chromium per session, a fresh context per test, 127.0.0.1 only."""

import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# `make screenshots` points this at docs/screenshots; an ordinary test run keeps the tree clean.
SCREENSHOTS = Path(
    os.environ.get("CHATSHIELD_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "chatshield-screenshots"
)
VIEWPORT = {"width": 1280, "height": 800}

# Playwright's sync API keeps an event loop running in this thread, which makes Django refuse
# ORM calls from the test body (factories, assertions) unless this is set.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def expect_or_skip_module():
    """Playwright's `expect`, for a browser test module to bind at its top; where Chromium or
    Playwright is missing, the module is skipped instead (`make test` says so before it starts).
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests",
            allow_module_level=True,
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    return sync_api.expect


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def _plain_http_cookies(settings):
    # The live server speaks plain HTTP on 127.0.0.1; secure cookies would never come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def live_server_context(browser, live_server):
    """A fresh context (one person's browser) that reaches nothing but the live server: any other
    host is refused before it leaves the browser."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(10_000)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(live_server.url) else route.abort()
        ),
    )
    return context


@pytest.fixture
def new_page(browser, live_server):
    """Open pages in fresh contexts (one per signed-in person); all are closed after the test,
    which fails if the pages' Content-Security-Policy blocked anything on them."""
    contexts = []

    def open_page():
        context = live_server_context(browser, live_server)
        contexts.append(context)
        page = context.new_page()
        # Chromium reports what the pages' Content-Security-Policy blocked on the console.
        page.on(
            "console",
            lambda message: (
                refused.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        return page

    refused = []
    yield open_page
    for context in contexts:
        context.close()
    assert refused == [], "the Content-Security-Policy blocked part of a page"


@pytest.fixture
def screenshot():
    """Save a full-page screenshot into SCREENSHOTS (docs/screenshots under `make screenshots`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / name
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
