"""A real Chromium for tests: Playwright for Python driving Debian's chromium, screenshots kept.

Playwright's own browser download is never used (``playwright install`` needs a host this machine does
not reach): the browser is Debian's ``/usr/bin/chromium`` (``AIGEN_CHROMIUM`` to point elsewhere).
Without Playwright or Chromium, :func:`require_browser` skips the calling test with the reason.

Screenshots go to ``test-artifacts/`` at the repo root (``AIGEN_TEST_ARTIFACTS`` to move it; gitignored),
one PNG per call of :func:`screenshot`, named after the test and the step.

Typical use::

    with chromium() as browser, browser_page(browser, server.url) as page:
        odoo_login(page, server.url, server.db, "admin", "admin")
        page.goto(server.url + "/odoo/action-base.action_res_users")
        screenshot(page, "users_list")
        assert not page.errors  # JavaScript errors and failed calls the page logged
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AIGEN_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DEFAULT_TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 900}


def find_chromium() -> str | None:
    """The Chromium binary to drive: ``AIGEN_CHROMIUM``, Debian's, or one on PATH."""
    configured = os.environ.get("AIGEN_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The Chromium path, or skip the calling test with the reason (no Playwright or no Chromium)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium (apt-get install chromium, or set AIGEN_CHROMIUM)")
    return path


@contextmanager
def chromium(headless: bool = True) -> Iterator:
    """A Playwright ``Browser`` on Debian's Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = require_browser()
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium refuses its sandbox
        browser = playwright.chromium.launch(
            executable_path=executable, headless=headless, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(browser, base_url: str | None = None, **context_options) -> Iterator:
    """A fresh page in a context of its own (own cookies); ``page.errors`` collects what went wrong.

    ``page.errors`` holds uncaught JavaScript exceptions, ``console.error`` lines and HTTP answers of
    500 or more, so a test can assert the screen it looked at also worked underneath.
    """
    context_options.setdefault("viewport", VIEWPORT)  # e.g. a phone's, for a mobile layout
    context = browser.new_context(base_url=base_url, locale="en-US", **context_options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and errors.append(f"console: {msg.text}"))
    page.on("response", lambda r: r.status >= 500 and errors.append(f"HTTP {r.status} {r.url}"))
    page.errors = errors
    page.pending_calls = _track_calls(page)
    try:
        yield page
    finally:
        context.close()


def _artifact_name(name: str) -> str:
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    test = test.rsplit("::", 1)[-1] if test else ""
    stem = f"{test}__{name}" if test and test != name else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:150] + ".png"


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save what the page shows now as ``test-artifacts/<test>__<name>.png``; the file's path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / _artifact_name(name)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def odoo_login(page, url: str, db: str, login: str, password: str) -> None:
    """Log in through Odoo's own /web/login form and wait for the web client to be up."""
    page.goto(f"{url}/web/login?db={db}")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(".o_web_client .o_navbar", state="visible")


def odoo_open(page, url: str, path: str) -> None:
    """Go to an /odoo/... client URL and wait until its view has rendered (no loading indicator)."""
    page.goto(f"{url}{path}")
    wait_for_odoo_view(page)


def wait_for_odoo_view(page) -> None:
    """Wait for the current action's view to be rendered and its calls to the server to have settled."""
    page.wait_for_selector(".o_action_manager .o_view_controller", state="visible")
    wait_for_calls(page)


def _long_lived(url: str) -> bool:
    # the bus keeps a websocket or a long poll open for as long as the page lives
    return "/websocket" in url or "/longpolling/" in url or "/bus/" in url


def _track_calls(page) -> set:
    pending: set = set()
    page.on("request", lambda r: not _long_lived(r.url) and pending.add(r))
    page.on("requestfinished", lambda r: pending.discard(r))
    page.on("requestfailed", lambda r: pending.discard(r))
    return pending


def wait_for_calls(page, quiet_ms: int = 300, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
    """Wait until no request (other than the bus's) has been in flight for ``quiet_ms``.

    Playwright's "networkidle" never comes on an Odoo page: the bus holds a connection open.
    """
    quiet = waited = 0
    step = 50
    while quiet < quiet_ms:
        if waited > timeout_ms:
            raise TimeoutError(
                f"calls still in flight after {timeout_ms} ms: {[r.url for r in page.pending_calls]}"
            )
        page.wait_for_timeout(step)
        waited += step
        quiet = quiet + step if not page.pending_calls else 0
