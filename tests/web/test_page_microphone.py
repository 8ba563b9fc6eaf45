"""A person who refuses the microphone: the page says the agent cannot hear them, leaves the
microphone off, and the agent still speaks into the room."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from orchestrator.cli import Orchestrator
from tests.web.browser import wait_for_entry

MIC_ALLOWED = False


@pytest.fixture(scope="module")
def stack(session_orchestrator: Orchestrator) -> Orchestrator:
    return session_orchestrator


async def test_denied_microphone_is_explained(page: Page) -> None:
    await page.get_by_role("button", name="Start conversation").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "Microphone: microphone access was denied. The agent can still speak, but it cannot "
        "hear you.",
        timeout=30_000,
    )
    await expect(page.get_by_role("button", name="Microphone")).to_have_attribute(
        "aria-pressed", "false"
    )
    await page.get_by_role("textbox", name="Make the agent say").fill("Can you hear me?")
    await page.get_by_role("button", name="Say").click()
    started = await wait_for_entry(page, "speech_started", within=30)
    await wait_for_entry(page, "finished", after=started, within=30)
    await page.get_by_role("button", name="End conversation").click()
    await expect(page.get_by_role("status").filter(has_text="Conversation ended.")).to_be_visible()
