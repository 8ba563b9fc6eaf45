"""Listening through a real livekit-server, with real Silero VAD, Whisper and Piper: a
listener speaking in espeak-ng voices (not the agent's) gets transcripts as events and as
room transcriptions; acknowledgements said over the agent resume it and other words cancel
it, with the heard position exact; the agent's captions follow its voice and stop where the
listener stopped hearing; two listeners are heard apart; and a recognizer that cannot load
leaves a session that speaks and decides barge-ins by duration, saying why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from fleet.aio import poll_until
from orchestrator.cli import Orchestrator
from orchestrator.sessions.session import VoiceSession
from orchestrator.sessions.tokens import user_token
from tests.audio_checks import word_error_rate
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess
from tests.sessions.events import EventLog
from tests.sessions.listener import RATE, Listener
from tests.sessions.test_bargein_live import FRAME, received_span
from tests.sessions.voices import ACKNOWLEDGEMENTS, INTERRUPTIONS, VOICES, Clip, speak

pytestmark = pytest.mark.slow

AGENT_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays, and on "
    "Saturdays it opens at nine and closes at one. The harbour branch keeps the same hours, "
    "but it stays closed on public holidays, and the airport branch never closes at all."
)
SHORT_TEXT = "Good morning. The central branch opens at eight, and the harbour branch at nine."
# What the listeners ask. Whisper tiny.en hears espeak's voices poorly: on "Could you tell
# me when the central branch opens on Saturdays?" in en-us+m3 it makes three errors in
# eleven words from the clean clip alone ("of you", "opened", "Saturday"), so one more from
# the room's Opus made a WER bound of 0.3 a draw. The sentences below are the ones of six
# tried that came back with the fewest errors in each voice through Opus round trips at
# low bitrates, with noise and a clipped start (a one-off check, not a benchmark).
QUESTIONS = {
    "en-us+m3": "Can you send me the address of the nearest train station?",
    "en-gb+f3": "I need to change my flight to next Tuesday afternoon.",
}


@pytest.fixture
async def live(
    session_api: httpx.AsyncClient, session_orchestrator: Orchestrator
) -> AsyncIterator[tuple[VoiceSession, Listener, EventLog]]:
    # The orchestrator shares this test process's loop, which a test before may have held
    # for longer than a worker's record lives (seen after the plugin tests: 503 no_worker):
    # let the worker's next poll come first.
    registry = session_orchestrator.services.registry
    assert await poll_until(lambda: bool(registry.workers), timeout_seconds=10)
    response = await session_api.post("/sessions", json={})
    assert response.status_code == 201, response.text
    created = response.json()
    listener = Listener()
    events = EventLog(session_api, created["session_id"])
    await listener.join(created["url"], created["token"])
    await listener.subscribed.wait()
    # Talking before the session hears the microphone loses the first words.
    await events.wait("user_audio_started", participant=listener.room.local_participant.identity)
    yield session_orchestrator.services.sessions.local[created["session_id"]], listener, events
    await listener.leave()
    await events.aclose()
    await session_api.delete(f"/sessions/{created['session_id']}")


async def say_over(
    api: httpx.AsyncClient, session: VoiceSession, events: EventLog, text: str
) -> str:
    said = await api.post(f"/sessions/{session.id}/say", json={"text": text})
    utterance_id: str = said.json()["utterance_id"]
    await events.wait("speech_started", utterance_id=utterance_id)
    return utterance_id


def on_session_clock(session: VoiceSession, onset: float, clip: Clip) -> tuple[float, float]:
    """Where the clip's sound starts and ends, in seconds of the session's clock, as it left
    the listener's microphone."""
    first, last = clip.audible()
    return onset - session.clock_origin + first, onset - session.clock_origin + last


async def test_user_transcripts_carry_the_words_with_times_within_the_speech(
    live: tuple[VoiceSession, Listener, EventLog],
) -> None:
    session, listener, events = live
    for voice in VOICES:
        clip = speak(QUESTIONS[voice], voice)
        mark = events.last_seq
        onset = await listener.say(clip.pcm)
        final = await events.wait("user_transcript", within=20, after=mark, final=True)
        assert final["participant"] == listener.room.local_participant.identity
        assert word_error_rate(clip.text, final["text"]) <= 0.3, final["text"]
        # Times: on the session's clock, where the sound arrived. They may lag the sound
        # leaving the microphone by the uplink (tens of ms), and the VAD places the end of
        # speech to within a couple of its 32 ms windows.
        start, end = on_session_clock(session, onset, clip)
        assert start - 0.03 <= final["start_seconds"] <= start + 0.2, (start, final)
        assert end - 0.1 <= final["end_seconds"] <= end + 0.3, (end, final)
        partials = [
            e
            for e in events.of("user_transcript")
            if e["seq"] > mark and e["segment_id"] == final["segment_id"] and not e["final"]
        ]
        assert partials, "no partial transcript while the listener spoke"
        assert all(p["received"] < final["received"] for p in partials)

        # The same segment reached the room, on the listener's behalf, for their mic track.
        async def published(segment: str = final["segment_id"]) -> bool:
            streams = listener.segments(listener.room.local_participant.identity).get(segment)
            return bool(streams) and streams[-1].attributes["lk.transcription_final"] == "true"

        await wait_for(published)
        me = listener.room.local_participant.identity
        streams = listener.segments(me)[final["segment_id"]]
        assert streams[-1].text == final["text"]
        tracks = {s.attributes["lk.transcribed_track_id"] for s in streams}
        assert tracks == {listener.mic_track_sid}
        assert [s.attributes["lk.transcription_final"] for s in streams[:-1]] == ["false"] * (
            len(streams) - 1
        )


async def wait_for(check: Any, within: float = 10.0) -> None:
    """Poll an async predicate until it holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


def caption_of(listener: Listener, session: VoiceSession, utterance_id: str) -> str:
    streams = listener.segments(session.identity).get(f"SG_{utterance_id}", [])
    assert len(streams) == 1, streams
    return streams[0].text


async def test_acknowledgements_resume_and_other_words_cancel_with_exact_positions(
    session_api: httpx.AsyncClient, live: tuple[VoiceSession, Listener, EventLog]
) -> None:
    """The corpus: five acknowledgements and five interruptions in each of two voices,
    spoken over the agent at varied moments."""
    session, listener, events = live
    delays = [1.6, 2.3, 1.9, 2.7, 2.1]
    for voice in VOICES:
        # Acknowledgements: all five over one utterance, which resumes after each and
        # finishes; the listener hears it stop where the events say, each time.
        utterance_id = await say_over(session_api, session, events, AGENT_TEXT)
        audio = session.utterances[utterance_id].audio
        pauses = []
        for text, delay in zip(ACKNOWLEDGEMENTS[voice], delays, strict=True):
            await asyncio.sleep(delay)
            mark = events.last_seq
            await listener.say(speak(text, voice).pcm)
            interrupted = await events.wait("interrupted", within=10, after=mark)
            resumed = await events.wait("resumed", within=10, after=mark)
            assert not [e for e in events.of("cancelled") if e["seq"] > mark], text
            assert resumed["reason"] in ("backchannel", "noise"), (text, resumed)
            pauses.append(round(interrupted["position_seconds"] * RATE))
        finished = await events.wait("finished", within=90, utterance_id=utterance_id)
        assert finished["position_seconds"] == pytest.approx(audio.samples / RATE, abs=0.001)
        await listener.recording.wait_for(listener.recording.samples() + RATE // 2, within=10)
        agent = np.frombuffer(audio.pcm(), np.int16)
        for heard in pauses:
            low, high = received_span(agent, listener.recording.pcm(), heard)
            assert low - FRAME <= heard <= high + FRAME, (low - heard, high - heard)
        await wait_for(lambda u=utterance_id: caption_complete(listener, session, u))
        assert caption_of(listener, session, utterance_id) == AGENT_TEXT

        # Interruptions: each cancels its own utterance where the listener stopped hearing.
        for text, delay in zip(INTERRUPTIONS[voice], delays, strict=True):
            utterance_id = await say_over(session_api, session, events, AGENT_TEXT)
            audio = session.utterances[utterance_id].audio
            await asyncio.sleep(delay)
            await listener.say(speak(text, voice).pcm)
            cancelled = await events.wait("cancelled", within=10, utterance_id=utterance_id)
            assert cancelled["reason"] == "words", (text, cancelled)
            await events.wait("user_transcript", within=15, after=cancelled["seq"], final=True)
            await listener.recording.wait_for(listener.recording.samples() + RATE // 2, within=10)
            heard = round(cancelled["position_seconds"] * RATE)
            agent = np.frombuffer(audio.pcm(), np.int16)
            low, high = received_span(agent, listener.recording.pcm(), heard)
            assert low - FRAME <= heard <= high + FRAME, (text, low - heard, high - heard)
            await wait_for(lambda u=utterance_id: caption_complete(listener, session, u))
            caption = caption_of(listener, session, utterance_id)
            assert caption == cancelled["text_heard"] == audio.text_heard(heard)
            assert AGENT_TEXT.startswith(caption) and len(caption) < len(AGENT_TEXT)


async def caption_complete(listener: Listener, session: VoiceSession, utterance_id: str) -> bool:
    return bool(listener.segments(session.identity).get(f"SG_{utterance_id}"))


async def test_two_listeners_talking_at_once_are_heard_apart(
    session_api: httpx.AsyncClient,
    session_orchestrator: Orchestrator,
    livekit_server: LiveKitServer,
) -> None:
    created = (await session_api.post("/sessions", json={})).json()
    events = EventLog(session_api, created["session_id"])
    first, second = Listener(), Listener()
    second_token = user_token(
        livekit_server.api_key,
        livekit_server.api_secret,
        room=created["room"],
        identity="second-listener",
        ttl_seconds=600,
    )
    try:
        await first.join(created["url"], created["token"])
        await second.join(created["url"], second_token)
        await asyncio.gather(first.subscribed.wait(), second.subscribed.wait())
        for identity in (first.room.local_participant.identity, "second-listener"):
            await events.wait("user_audio_started", participant=identity)
        said = {
            first.room.local_participant.identity: speak(QUESTIONS[VOICES[0]], VOICES[0]),
            "second-listener": speak(QUESTIONS[VOICES[1]], VOICES[1]),
        }
        await asyncio.gather(
            first.say(said[first.room.local_participant.identity].pcm),
            second.say(said["second-listener"].pcm),
        )
        for identity, clip in said.items():
            final = await events.wait(
                "user_transcript", within=30, participant=identity, final=True
            )
            assert word_error_rate(clip.text, final["text"]) <= 0.3, (identity, final["text"])
            # Each listener's words reach the room on their own behalf, for both to see.
            for listener in (first, second):

                async def published(
                    who: str = identity,
                    seen: Listener = listener,
                    segment: str = final["segment_id"],
                ) -> bool:
                    return segment in seen.segments(who)

                await wait_for(published)
    finally:
        await first.leave()
        await second.leave()
        await events.aclose()
        await session_api.delete(f"/sessions/{created['session_id']}")


async def test_without_a_recognizer_the_session_speaks_and_barge_in_goes_by_duration(
    piper_worker: WorkerProcess, livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """The model folder holds no model: the session says why in an `error` event, speaks,
    and an acknowledgement it cannot hear as one cancels by duration."""
    orch = Orchestrator(
        orchestrator_settings(
            workers=[piper_worker.address],
            livekit_url=livekit_server.url,
            livekit_api_key=livekit_server.api_key,
            livekit_api_secret=livekit_server.api_secret,
            asr_model_path=str(tmp_path),
        )
    )
    await orch.start()
    base = f"http://127.0.0.1:{orch.settings.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as api:
            created = (await api.post("/sessions", json={})).json()
            events = EventLog(api, created["session_id"])
            listener = Listener()
            try:
                error = await events.wait("error", within=10)
                assert "speech recognition unavailable" in error["reason"]
                assert f"no Whisper model (model.bin) in {tmp_path}" in error["reason"]
                await listener.join(created["url"], created["token"])
                await listener.subscribed.wait()
                session = orch.services.sessions.local[created["session_id"]]
                utterance_id = await say_over(api, session, events, AGENT_TEXT)
                await asyncio.sleep(1.5)
                await listener.say(speak("yeah, okay", VOICES[0]).pcm)
                cancelled = await events.wait("cancelled", within=10, utterance_id=utterance_id)
                assert cancelled["reason"] == "duration"
                await events.wait("user_speech_stopped", within=10)
                assert not events.of("user_transcript")
                # It did speak: the listener received the agent's voice up to the cancel.
                heard = round(cancelled["position_seconds"] * RATE)
                assert heard > RATE
                assert np.abs(listener.recording.pcm().astype(np.int32)).max() > 1000
            finally:
                await listener.leave()
                await events.aclose()
                await api.delete(f"/sessions/{created['session_id']}")
    finally:
        await orch.stop()
