"""A real listener (livekit rtc SDK) in a real livekit-server room hears the agent speak."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from fleet.aio import poll_until
from tests.audio_checks import Pcm, parse_wav, transcribe, word_error_rate
from tests.sessions.events import EventLog
from tests.sessions.listener import RATE, Listener, TextStream

LONG_TEXT = (
    "Welcome to the support line. Your parcel left our warehouse this morning, "
    "and the driver expects to reach your street late in the afternoon."
)


@dataclass
class Joined:
    session_id: str
    listener: Listener
    events: EventLog
    created: dict[str, object]


@pytest.fixture
async def joined(session_api: httpx.AsyncClient) -> AsyncIterator[Joined]:
    created = (await session_api.post("/sessions", json={})).json()
    listener = Listener()
    events = EventLog(session_api, created["session_id"])
    await listener.join(created["url"], created["token"])
    yield Joined(created["session_id"], listener, events, created)
    await listener.leave()
    await events.aclose()
    await session_api.delete(f"/sessions/{created['session_id']}")


async def test_listener_hears_a_long_utterance(
    session_api: httpx.AsyncClient, joined: Joined
) -> None:
    response = await session_api.post(
        f"/sessions/{joined.session_id}/say", json={"text": LONG_TEXT}
    )
    assert response.status_code == 202
    utterance_id = response.json()["utterance_id"]
    await joined.events.wait("speech_started", utterance_id=utterance_id)
    finished = await joined.events.wait("finished", within=60, utterance_id=utterance_id)
    heard = transcribe(Pcm(joined.listener.recording.pcm(), RATE))
    assert word_error_rate(LONG_TEXT, heard) <= 0.2, heard
    assert finished["position_seconds"] > 5.0


async def test_captions_follow_the_voice(session_api: httpx.AsyncClient, joined: Joined) -> None:
    """The agent captions each utterance on `lk.transcription` in the room: one segment,
    named by the utterance (`SG_<utterance id>`), delivered piece by piece while the audio
    plays (not all at once when the text arrives), and the whole text once it has finished."""
    response = await session_api.post(
        f"/sessions/{joined.session_id}/say", json={"text": LONG_TEXT}
    )
    utterance_id = response.json()["utterance_id"]
    finished = await joined.events.wait("finished", within=60, utterance_id=utterance_id)

    def caption() -> TextStream | None:
        streams = [
            stream
            for stream in joined.listener.transcriptions
            if stream.attributes.get("lk.segment_id") == f"SG_{utterance_id}"
        ]
        assert len(streams) <= 1, streams
        return streams[0] if streams and streams[0].complete else None

    assert await poll_until(lambda: caption() is not None, timeout_seconds=10), "no caption"
    stream = caption()
    assert stream is not None and stream.text == LONG_TEXT
    # Paced by the samples played: the pieces span most of the utterance's duration.
    span = stream.chunks[-1][1] - stream.chunks[0][1]
    assert len(stream.chunks) >= 5 and span > 0.6 * float(finished["position_seconds"])
    for delta, _ in stream.chunks[:-1]:
        assert len(delta) < len(LONG_TEXT) / 2, stream.chunks


async def test_streamed_text_is_spoken_as_it_arrives(
    session_api: httpx.AsyncClient, joined: Joined
) -> None:
    """Text sent in chunks, as an LLM produces it, plays before the last chunk is sent."""
    first = await session_api.post(
        f"/sessions/{joined.session_id}/say",
        json={"text": "Let me check that for you, ", "final": False},
    )
    utterance_id = first.json()["utterance_id"]
    path = f"/sessions/{joined.session_id}/utterances/{utterance_id}/text"
    for chunk in ["it will only ", "take a moment. ", "Your booking is confirmed "]:
        assert (await session_api.post(path, json={"text": chunk})).status_code == 202
    await joined.events.wait("speech_started", utterance_id=utterance_id)
    assert (
        await session_api.post(path, json={"text": "for Friday.", "final": True})
    ).status_code == 202
    await joined.events.wait("finished", within=60, utterance_id=utterance_id)
    late = await session_api.post(path, json={"text": "more"})
    assert late.status_code == 409
    heard = transcribe(Pcm(joined.listener.recording.pcm(), RATE))
    expected = (
        "Let me check that for you, it will only take a moment. "
        "Your booking is confirmed for Friday."
    )
    assert word_error_rate(expected, heard) <= 0.25, heard


async def test_chat_messages_are_spoken(session_api: httpx.AsyncClient, joined: Joined) -> None:
    await joined.listener.subscribed.wait()
    await joined.listener.chat("This chat message is spoken in the room.")
    chat = await joined.events.wait("chat_received")
    await joined.events.wait("finished", within=60, utterance_id=chat["utterance_id"])
    heard = transcribe(Pcm(joined.listener.recording.pcm(), RATE))
    assert word_error_rate("This chat message is spoken in the room.", heard) <= 0.2, heard


async def test_say_speed_reaches_the_worker(session_api: httpx.AsyncClient, joined: Joined) -> None:
    """`speed` in the say body: the utterance plays in clearly less time than the same text
    synthesized at the voice's own pace, and is still understood."""
    normal = await session_api.post("/synthesize", json={"text": LONG_TEXT, "format": "wav"})
    normal_seconds = parse_wav(normal.content).seconds
    response = await session_api.post(
        f"/sessions/{joined.session_id}/say", json={"text": LONG_TEXT, "speed": 2.0}
    )
    assert response.status_code == 202
    utterance_id = response.json()["utterance_id"]
    finished = await joined.events.wait("finished", within=60, utterance_id=utterance_id)
    assert finished["position_seconds"] < 0.7 * normal_seconds
    heard = transcribe(Pcm(joined.listener.recording.pcm(), RATE))
    assert word_error_rate(LONG_TEXT, heard) <= 0.25, heard
