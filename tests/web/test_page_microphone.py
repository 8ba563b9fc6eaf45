"""A person who refuses the microphone: the page says the agent cannot hear them, leaves the
microphone off, and the agent still speaks into the room, here text streamed in chunks."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from orchestrator.cli import Orchestrator
from tests.web.browser import log_entries, wait_for_entry

MIC_ALLOWED = False
STREAMED = (
    "You said no to the microphone, so I cannot hear you, but I can still talk to you "
    "for as long as you like, one small piece of text at a time."
)


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
    # Streamed like an LLM: a first chunk opens the utterance, the rest follows in pieces.
    await page.get_by_role("checkbox", name="Stream like an LLM").check()
    await page.get_by_role("textbox", name="Make the agent say").fill(STREAMED)
    await page.get_by_role("button", name="Say").click()
    started = await wait_for_entry(page, "speech_started", within=30)
    finished = await wait_for_entry(page, "finished", after=started, within=60)
    played = re.search(
        r"(\d+\.\d+) s played", (await log_entries(page).all_inner_texts())[finished]
    )
    assert played and float(played.group(1)) > 4.0  # the whole text, not its first chunk
    await page.get_by_role("button", name="End conversation").click()
    await expect(page.get_by_role("status").filter(has_text="Conversation ended.")).to_be_visible()
