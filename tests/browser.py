"""Pages in a real browser: Playwright driving Debian's Chromium (``make test`` installs the
``chromium`` package when it is missing; Playwright's own browser download is not used).

Screenshots go to one folder per test session, printed at its end, to be looked at:
``shot(page, "build-running")`` writes ``build-running.png`` there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.stack import Stack

CHROMIUM = (os.environ.get("SLIPWAY_TEST_CHROMIUM") or shutil.which("chromium")
            or "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 900}
#: A common phone's CSS viewport (an iPhone 12–15's width).
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: run `make test`, which "
                    "installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots", numbered=False)


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A desktop-sized page of a fresh browser context (no cookies of another test)."""
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser) -> Iterator[Page]:
    """A phone-sized page (390 × 844, touch, device scale 3) of a fresh context."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True,
                                  has_touch=True)
    yield context.new_page()
    context.close()


@pytest.fixture
def stack(tmp_path, redis_url, redis_client, database_url, docker_client) -> Iterator[Stack]:
    """Slipway's four Procfile processes with one runner (:mod:`tests.stack`)."""
    with Stack(tmp_path / "stack", redis_url, database_url) as started:
        yield started


def shot(page: Page, screenshots: Path, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``NAME.png`` in the session's folder."""
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no sideways scrolling)."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth")
