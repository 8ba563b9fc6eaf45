"""The page in real Chromium against the whole stack (Piper, livekit-server, Silero): the
text-to-speech form plays audio; a conversation speaks typed text, meters the agent and the
microphone, captions the agent, and the fake microphone's speech over the agent interrupts
and then cancels it.
Everything is driven from the keyboard and found by role and name."""

from __future__ import annotations

import os
import re
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from livekit import api, rtc
from playwright.async_api import Page, expect

from orchestrator.cli import Orchestrator
from tests.audio_checks import parse_wav
from tests.livekit_server import LiveKitServer
from tests.processes import ROOT
from tests.web.browser import (
    Console,
    log_entries,
    named_controls,
    tab_to,
    wait_for_entry,
    wait_for_level,
)

MIC_RATE = 48000
USER_TEXT = "Sorry to interrupt, but I only need the address of the harbour branch."
# After the user's speech, the fake microphone stays silent this long before it loops: the
# short sentence is spoken inside this gap, and the long one still plays when the speech
# comes round again.
MIC_SILENCE_SECONDS = 9.0
SHORT_TEXT = "Hello! I can hear you."
LONG_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays, and on "
    "Saturdays it opens at nine and closes at one. The harbour branch keeps the same hours, "
    "but it stays closed on public holidays, and the airport branch never closes at all."
)
SCREENSHOT = ROOT / "docs" / "images" / "page-in-use.png"
LEVEL = 0.3  # a meter above this (-42 dBFS) is hearing sound, not silence


@pytest.fixture(scope="module")
async def mic_wav(session_api: httpx.AsyncClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone: a listener's sentence (synthesized by the real worker), then
    silence. Chromium loops it from the moment the page opens the microphone."""
    response = await session_api.post(
        "/synthesize", json={"text": USER_TEXT, "sample_rate": MIC_RATE}
    )
    response.raise_for_status()
    speech = parse_wav(response.content).samples
    silence = np.zeros(int(MIC_SILENCE_SECONDS * MIC_RATE), dtype=np.int16)
    path = tmp_path_factory.mktemp("mic") / "listener.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(np.concatenate([speech, silence]).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def stack(session_orchestrator: Orchestrator) -> Orchestrator:
    return session_orchestrator


async def test_text_to_speech_form_plays_audio(page: Page, console: Console) -> None:
    """Speak (pressed with the keyboard) fetches /synthesize and the audio plays to its end."""
    voice = page.get_by_role("combobox", name="Voice")
    await expect(voice.get_by_role("option")).not_to_have_count(0)
    await expect(page.get_by_role("combobox", name="Format")).to_have_value("wav")
    await tab_to(page, page.get_by_role("textbox", name="Text to speak"))
    await page.keyboard.press("Control+A")
    await page.keyboard.type("Testing the text to speech form.")
    await tab_to(page, page.get_by_role("button", name="Speak"))
    await page.keyboard.press("Enter")
    status = page.get_by_role("status").filter(has_text=re.compile("Playing|Could not"))
    await expect(status).to_contain_text("Playing", timeout=30_000)
    await expect(page.get_by_role("status").filter(has_text="Finished playing.")).to_be_visible(
        timeout=30_000
    )
    played = await page.get_by_label("Synthesized speech").evaluate(
        "a => [a.currentTime, a.duration, a.error && a.error.code]"
    )
    assert played[2] is None and played[0] > 1.0 and played[0] == pytest.approx(played[1], abs=0.1)
    assert console.errors == []


async def test_conversation_speaks_and_is_interrupted(page: Page, console: Console) -> None:
    """Start conversation joins the room and publishes the fake microphone; a typed sentence
    is spoken (the agent meter moves; speech_started then finished; the caption shows it);
    speech from the microphone over a long sentence interrupts it at a heard position, then
    cancels it, the caption ends part-way, and the user's caption shows their words."""
    log = log_entries(page)
    await tab_to(page, page.get_by_role("button", name="Start conversation"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status").filter(has_text="Connected to room")).to_be_visible(
        timeout=30_000
    )
    await wait_for_entry(page, "page: microphone published", within=30)

    # The microphone's sentence reaches the agent's VAD, and moves the page's mic meter.
    mic_level = await wait_for_level(page.get_by_label("Microphone level"), LEVEL, within=30)
    assert mic_level > LEVEL
    quiet_from = await wait_for_entry(page, "user_speech_stopped", within=30)

    # Now the microphone is silent for MIC_SILENCE_SECONDS: the short sentence plays whole.
    say = page.get_by_role("textbox", name="Make the agent say")
    await expect(say).to_be_focused()  # the page moves the focus there once connected
    await page.keyboard.type(SHORT_TEXT)
    await page.keyboard.press("Enter")
    started = await wait_for_entry(page, "speech_started", after=quiet_from, within=30)
    agent_level = await wait_for_level(page.get_by_label("Agent level"), LEVEL, within=30)
    assert agent_level > LEVEL
    finished = await wait_for_entry(page, "finished", after=started, within=30)
    caption = page.get_by_label("Agent", exact=True)
    await expect(caption).to_have_text(SHORT_TEXT)  # the agent's captions, from the room
    interrupted_early = [
        e for e in (await log.all_inner_texts())[started:finished] if "interrupted" in e
    ]
    assert not interrupted_early

    # The long sentence is still playing when the microphone's sentence comes round again.
    await page.keyboard.type(LONG_TEXT)
    await page.keyboard.press("Enter")
    started = await wait_for_entry(page, "speech_started", after=finished + 1, within=30)
    interrupted = await wait_for_entry(page, "interrupted", after=started, within=40)
    cancelled = await wait_for_entry(page, "cancelled", after=interrupted, within=30)
    entries = await log.all_inner_texts()
    heard = re.search(r"heard (\d+\.\d+) s \"([^\"]+)\"", entries[interrupted])
    assert heard, entries[interrupted]
    assert float(heard.group(1)) > 0.0 and LONG_TEXT.startswith(heard.group(2).split()[0])
    assert "heard" in entries[cancelled]
    # The caption stops where the voice did: part of the long sentence, not all of it.
    shown = await caption.inner_text()
    assert shown and LONG_TEXT.startswith(shown) and len(shown) < len(LONG_TEXT), shown
    # The session transcribes the microphone: the user's caption shows what they said.
    you = page.get_by_label("You", exact=True)
    await expect(you).to_contain_text(re.compile("address|harbou?r|branch", re.I))
    assert not any(e.split(" — ")[0].endswith(" finished") for e in entries[started:cancelled])

    figures = page.get_by_role("table", name="Barge-in figures")
    await expect(figures.get_by_role("row", name=re.compile("^Interruptions"))).to_contain_text("1")
    await expect(figures.get_by_role("row", name=re.compile("^Cancelled"))).to_contain_text("1")
    await expect(
        figures.get_by_role("row", name=re.compile("^Onset to stop, last"))
    ).to_contain_text(re.compile(r"\d+ ms"))

    # The page in use, for the docs: rewritten when UPDATE_SCREENSHOT=1.
    shot = await page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(shot)

    await tab_to(page, page.get_by_role("button", name="End conversation"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status").filter(has_text="Conversation ended.")).to_be_visible()
    assert console.errors == []


async def test_transcription_streams_in_the_room_become_captions(
    page: Page, console: Console, livekit_server: LiveKitServer
) -> None:
    """What a participant streams on `lk.transcription` (as an agent sends its captions) shows
    as the agent's caption, delta by delta."""
    await page.get_by_role("button", name="Start conversation").click()
    connected = page.get_by_role("status").filter(has_text="Connected to room")
    await expect(connected).to_be_visible(timeout=30_000)
    room_name = re.search(r"Connected to room (\S+)\.", await connected.inner_text())
    assert room_name
    token = (
        api.AccessToken(livekit_server.api_key, livekit_server.api_secret)
        .with_identity("caption-writer")
        .with_grants(api.VideoGrants(room_join=True, room=room_name.group(1)))
        .to_jwt()
    )
    caption = page.get_by_label("Agent", exact=True)
    room = rtc.Room()
    await room.connect(livekit_server.url, token)
    try:
        writer = await room.local_participant.stream_text(
            topic="lk.transcription",
            attributes={"lk.segment_id": "segment-1", "lk.transcription_final": "false"},
        )
        await writer.write("Captions arrive ")
        await expect(caption).to_have_text("Captions arrive", timeout=15_000)
        await writer.write("as the agent speaks.")
        await writer.aclose()
        await expect(caption).to_have_text("Captions arrive as the agent speaks.")
    finally:
        await room.disconnect()
    await page.get_by_role("button", name="End conversation").click()
    await expect(page.get_by_role("status").filter(has_text="Conversation ended.")).to_be_visible()
    assert console.errors == []


async def test_every_control_is_named_and_reachable_by_keyboard(page: Page) -> None:
    """Every control has an accessible name, and Tab alone reaches every enabled one."""
    await expect(
        page.get_by_role("combobox", name="Voice").get_by_role("option")
    ).not_to_have_count(0)
    controls = await named_controls(page)
    assert len(controls) >= 12
    for name in ("Event log", "Barge-in figures", "Captions"):
        assert await page.get_by_label(name, exact=True).count() == 1, name

    focusable = [c for c in controls if await c.evaluate("el => el.tagName !== 'METER'")]
    reachable = [c for c in focusable if await c.is_enabled()]
    focused = set()
    for _ in range(len(reachable) * 2):
        await page.keyboard.press("Tab")
        focused.add(await page.evaluate("() => document.activeElement.id"))
    missing = [c for c in reachable if await c.get_attribute("id") not in focused]
    assert not missing, [await c.get_attribute("id") for c in missing]
