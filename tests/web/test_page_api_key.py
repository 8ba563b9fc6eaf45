"""The page on a server that requires an API key: it asks for one, says when the key is
wrong or lacks a scope, works with the right one (the event stream included), and keeps the
key in the tab only, never in a URL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from orchestrator.cli import Orchestrator
from tests.conftest import livekit_settings, running_orchestrator
from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess
from tests.web.browser import Console, named_controls, wait_for_entry

FULL_KEY = "page-test-full-key-0123456789"
SPEECH_ONLY_KEY = "page-test-speech-only-key-98765"


@pytest.fixture(scope="module")
async def stack(
    piper_worker: WorkerProcess, livekit_server: LiveKitServer
) -> AsyncIterator[Orchestrator]:
    keys = {FULL_KEY: ["synthesize", "sessions"], SPEECH_ONLY_KEY: ["synthesize"]}
    async with running_orchestrator(
        workers=[piper_worker.address],
        api_keys=json.dumps(keys),
        **livekit_settings(livekit_server),
    ) as orch:
        yield orch


async def use_key(page: Page, key: str) -> None:
    await page.get_by_role("textbox", name="API key").fill(key)
    await page.get_by_role("textbox", name="API key").press("Enter")


async def test_page_asks_for_a_key_and_reports_a_wrong_one(page: Page, console: Console) -> None:
    """Without a key the page asks for one; a wrong key is reported as refused."""
    key_section = page.get_by_role("region", name="API key")
    await expect(key_section).to_be_visible()
    await expect(key_section.get_by_role("status")).to_have_text("This server requires an API key.")
    await expect(page.get_by_role("textbox", name="API key")).to_be_focused()
    assert len(await named_controls(key_section)) == 3  # the key, Use key, Forget key

    await use_key(page, "not-the-right-key-at-all")
    await expect(key_section.get_by_role("status")).to_have_text(
        "The server refused this API key: the API key is not valid."
    )
    await expect(page.get_by_role("alert")).to_contain_text("API key needed")
    assert console.besides(401) == []


async def test_the_right_key_works_and_stays_in_the_tab(page: Page, console: Console) -> None:
    """With the right key, voices load, speech plays, and a conversation starts with its
    event stream (read with the key in a header); no request URL carries the key."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await use_key(page, FULL_KEY)
    await expect(page.get_by_role("region", name="API key").get_by_role("status")).to_have_text(
        "The API key works."
    )
    await expect(
        page.get_by_role("combobox", name="Voice").get_by_role("option")
    ).not_to_have_count(0)

    await page.get_by_role("button", name="Speak").click()
    await expect(page.get_by_role("status").filter(has_text="Finished playing.")).to_be_visible(
        timeout=30_000
    )
    await page.get_by_role("button", name="Start conversation").click()
    await wait_for_entry(page, "session_started", within=30)  # from the SSE stream
    await page.get_by_role("button", name="End conversation").click()
    await expect(page.get_by_role("status").filter(has_text="Conversation ended.")).to_be_visible()

    assert urls and not [u for u in urls if FULL_KEY in u]
    stored = await page.evaluate(
        "() => [sessionStorage.length, localStorage.length, document.cookie]"
    )
    assert stored == [1, 0, ""]
    assert console.besides(401) == []


async def test_a_key_without_the_sessions_scope_is_explained(page: Page, console: Console) -> None:
    """A key that may only synthesize cannot start a conversation, and the page says why."""
    await use_key(page, SPEECH_ONLY_KEY)
    await expect(page.get_by_role("region", name="API key").get_by_role("status")).to_have_text(
        "The API key works."
    )
    await page.get_by_role("button", name="Start conversation").click()
    await expect(page.get_by_role("status").filter(has_text="Could not start")).to_contain_text(
        "This API key may not do that: this API key lacks the 'sessions' scope"
    )
    assert console.besides(401, 403) == []
