"""The page when LiveKit is out of reach, from the server or from the browser: it says so,
and the text-to-speech form still works."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from orchestrator.cli import Orchestrator
from tests.conftest import livekit_settings, running_orchestrator
from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess, free_port
from tests.web.browser import Console, new_page


@pytest.fixture(scope="module")
async def no_livekit(piper_worker: WorkerProcess) -> AsyncIterator[Orchestrator]:
    """An orchestrator whose LiveKit URL answers nothing (a free port)."""
    async with running_orchestrator(
        workers=[piper_worker.address],
        livekit_url=f"ws://127.0.0.1:{free_port()}",
        livekit_connect_timeout_seconds=2.0,
    ) as orch:
        yield orch


@pytest.fixture(scope="module")
async def unreachable_for_clients(
    piper_worker: WorkerProcess, livekit_server: LiveKitServer
) -> AsyncIterator[Orchestrator]:
    """The agent joins the real LiveKit, but hands browsers a URL where nothing listens."""
    async with running_orchestrator(
        workers=[piper_worker.address],
        livekit_public_url=f"ws://127.0.0.1:{free_port()}",
        **livekit_settings(livekit_server),
    ) as orch:
        yield orch


async def speak_form_plays(page: Page) -> None:
    await page.get_by_role("button", name="Speak").click()
    await expect(page.get_by_role("status").filter(has_text="Finished playing.")).to_be_visible(
        timeout=30_000
    )


async def test_server_cannot_reach_livekit(browser: Browser, no_livekit: Orchestrator) -> None:
    """POST /sessions fails (503 livekit_unreachable): the page says LiveKit is unavailable,
    offers Start again, and speaks typed text as before."""
    console = Console()
    page = await new_page(browser, f"http://127.0.0.1:{no_livekit.settings.port}", console)
    await page.get_by_role("button", name="Start conversation").click()
    status = page.get_by_role("status").filter(has_text="Could not start")
    await expect(status).to_contain_text("LiveKit is unavailable", timeout=30_000)
    await expect(status).to_contain_text("Text to speech still works")
    await expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
    await speak_form_plays(page)
    assert console.besides(503) == []
    await page.context.close()


async def test_browser_cannot_reach_livekit(
    browser: Browser, unreachable_for_clients: Orchestrator
) -> None:
    """The session starts but the browser cannot join its room: the page says LiveKit is
    unavailable at the URL it was given, ends the session, and speaks typed text as before."""
    console = Console()
    page = await new_page(
        browser, f"http://127.0.0.1:{unreachable_for_clients.settings.port}", console
    )
    await page.get_by_role("button", name="Start conversation").click()
    status = page.get_by_role("status").filter(has_text="Could not start")
    await expect(status).to_contain_text(
        "LiveKit is unavailable: could not join LiveKit at ws://127.0.0.1:", timeout=60_000
    )
    await expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
    await speak_form_plays(page)
    sessions = unreachable_for_clients.services.sessions
    assert not [s for s in sessions.local.values() if s.state.value == "active"]
    await page.context.close()
