"""The page's bundle, built once from package-lock.json; one Playwright driver; one Chromium
per module; a fresh tab per test on the module's `stack` orchestrator."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright

from orchestrator.cli import Orchestrator
from orchestrator.web.page import PageOptions
from tests.processes import ROOT
from tests.web.browser import Console, launch, new_page


@pytest.fixture(scope="session")
def page_bundle() -> None:
    """Builds the page as `make run` does. Without Node.js the page tests fail, saying why."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "build_web.sh")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"building the page failed:\n{done.stderr[-3000:]}"
    assert PageOptions().built


@pytest.fixture(scope="session")
async def playwright(page_bundle: None) -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def mic_wav() -> Path | None:
    """What the fake microphone plays: Chromium's own beep unless a module overrides this."""
    return None


@pytest.fixture(scope="module")
async def browser(
    playwright: Playwright, mic_wav: Path | None, request: pytest.FixtureRequest
) -> AsyncIterator[Browser]:
    """One Chromium per test module. A module feeds the fake microphone by overriding
    `mic_wav`, and refuses the microphone with `MIC_ALLOWED = False`."""
    allowed = getattr(request.module, "MIC_ALLOWED", True)
    browser = await launch(playwright, mic_wav, mic_allowed=allowed)
    yield browser
    await browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
async def page(
    browser: Browser, stack: Orchestrator, console: Console, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A fresh tab (its own storage) on the module's `stack` orchestrator, console watched."""
    allowed = getattr(request.module, "MIC_ALLOWED", True)
    page = await new_page(
        browser, f"http://127.0.0.1:{stack.settings.port}", console, mic_allowed=allowed
    )
    yield page
    await page.context.close()
