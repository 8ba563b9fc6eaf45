"""The page when no TTS worker answers: it says so on opening, and Speak says why it could
not speak instead of failing silently."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from orchestrator.cli import Orchestrator
from tests.conftest import running_orchestrator
from tests.processes import free_port
from tests.web.browser import Console


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Orchestrator]:
    """An orchestrator whose one configured worker address answers nothing (a free port)."""
    async with running_orchestrator(workers=[f"127.0.0.1:{free_port()}"]) as orch:
        yield orch


async def test_no_worker_is_explained(page: Page, console: Console) -> None:
    """An empty voice list is explained at once; Speak answers 503 and says no worker is
    available, and the form stays usable."""
    await expect(page.get_by_role("alert")).to_have_text(
        "No TTS worker is registered yet: speech will fail until one is.", timeout=30_000
    )
    await expect(page.get_by_role("combobox", name="Voice").get_by_role("option")).to_have_count(0)
    await page.get_by_role("button", name="Speak").click()
    status = page.get_by_role("status").filter(has_text="Could not speak")
    await expect(status).to_contain_text("No TTS worker is available: ", timeout=30_000)
    await expect(page.get_by_role("button", name="Speak")).to_be_enabled()
    assert console.besides(503) == []
