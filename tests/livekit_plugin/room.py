"""An AgentSession with our plugin in a real LiveKit room, and a listener in the same room
that records what it receives: what a LiveKit Agents user would run."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from livekit import api, rtc
from livekit.agents import NOT_GIVEN, Agent, AgentSession, llm, room_io, tts

from fleet.aio import poll_until
from tests.audio_checks import Pcm, normalize, transcribe
from tests.livekit_server import LiveKitServer
from tests.sessions.listener import RATE, Listener

AGENT = "agent"
USER = "user"
# Quieter than this (s16) is silence: Piper's speech peaks in the thousands.
_SILENCE = 200


def _token(server: LiveKitServer, identity: str, room: str, kind: str | None = None) -> str:
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity)
    token = token.with_grants(api.VideoGrants(room_join=True, room=room))
    return (token.with_kind(kind) if kind else token).to_jwt()


@dataclass
class AgentInRoom:
    session: AgentSession
    listener: Listener

    def received(self, since: int = 0) -> npt.NDArray[np.int16]:
        """What the listener received (48 kHz) from sample `since` on."""
        return self.listener.recording.pcm()[since:]

    async def wait_for_speech(self, since: int, seconds: float, within: float = 30) -> None:
        """Until the listener has received `seconds` of audio after the speech that started
        (after sample `since`) first became audible."""
        recording = self.listener.recording

        def enough() -> bool:
            loud = np.flatnonzero(np.abs(recording.pcm()[since:].astype(np.int32)) > _SILENCE)
            return bool(loud.size) and recording.samples() - since - loud[0] >= seconds * RATE

        assert await poll_until(enough, timeout_seconds=within, interval_seconds=0.05)

    async def settle(self) -> None:
        """Until the audio sent so far has reached the listener: its track plays on, so a
        further half second received means nothing before it is still in flight."""
        recording = self.listener.recording
        await recording.wait_for(recording.samples() + RATE // 2, within=10)


@contextlib.asynccontextmanager
async def agent_in_room(
    server: LiveKitServer, plugin: tts.TTS, model: llm.LLM | None = None, **session: object
) -> AsyncIterator[AgentInRoom]:
    """A fresh room; the listener joins first, then the agent's session starts on a room
    connection of its own (no job, no worker process: standalone use). No microphone input:
    the tests interrupt through the speech handle, as AgentSession does itself."""
    room_name = f"plugin-{uuid.uuid4().hex[:8]}"
    listener = Listener()
    room = rtc.Room()
    agent_session = AgentSession(
        tts=plugin,
        llm=model if model is not None else NOT_GIVEN,
        vad=None,
        turn_handling={"turn_detection": "manual"},
        **session,  # type: ignore[arg-type]
    )
    try:
        await listener.join(server.url, _token(server, USER, room_name))
        await room.connect(server.url, _token(server, AGENT, room_name, "agent"))
        await agent_session.start(
            Agent(instructions="You are a test agent."),
            room=room,
            room_options=room_io.RoomOptions(
                audio_input=False, text_input=False, participant_identity=USER
            ),
        )
        # RoomIO publishes the agent's track as the session starts; audio sent before the
        # listener subscribes would be lost.
        await asyncio.wait_for(listener.subscribed.wait(), timeout=15)
        yield AgentInRoom(agent_session, listener)
    finally:
        await agent_session.aclose()
        await room.disconnect()
        await listener.leave()


def speech(pcm: npt.NDArray[np.int16]) -> Pcm:
    """The received audio from its first to its last audible sample (the track carries
    silence around speech, and Whisper invents words in long silence)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _SILENCE)
    if not loud.size:
        return Pcm(pcm[:0], RATE)
    pad = RATE // 10
    return Pcm(pcm[max(0, loud[0] - pad) : loud[-1] + pad], RATE)


def heard(pcm: npt.NDArray[np.int16]) -> str:
    return transcribe(speech(pcm))


def words_heard_of(reference: str, hypothesis: str) -> int:
    """How many words of `reference`, from its start, the hypothesis says: the prefix whose
    word edit distance to the hypothesis is smallest (the longest such prefix on a tie)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    best, best_distance = 0, len(hyp)
    row = list(range(len(hyp) + 1))  # distances of ref[:0] to every prefix of hyp
    for i, word in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (word != h))
        if row[len(hyp)] <= best_distance:
            best, best_distance = i, row[len(hyp)]
    return best


def assistant_messages(session: AgentSession) -> list[llm.ChatMessage]:
    return [
        item
        for item in session.history.items
        if item.type == "message" and item.role == "assistant"
    ]
