"""The page's bundle, built once from package-lock.json, and one Playwright driver."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Playwright, async_playwright

from orchestrator.web.page import PageOptions
from tests.processes import ROOT


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
