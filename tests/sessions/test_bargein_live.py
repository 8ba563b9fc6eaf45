"""Barge-in through a real livekit-server with real Silero VAD: the listener talks over the
agent, the agent falls silent, and the reported heard position matches what arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from fleet.aio import poll_until
from orchestrator.cli import Orchestrator
from orchestrator.sessions.utterance_audio import UtteranceAudio
from tests.audio_checks import Pcm, parse_wav, transcribe, word_error_rate
from tests.processes import WorkerProcess
from tests.sessions.events import EventLog
from tests.sessions.listener import RATE, Listener
from tests.sessions.voices import VOICES, speak

AGENT_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays, and on "
    "Saturdays it opens at nine and closes at one. The harbour branch keeps the same hours, "
    "but it stays closed on public holidays, and the airport branch never closes at all."
)
USER_TEXT = "Sorry to interrupt, but I only need the address of the harbour branch."
AUDIBLE = 1000  # |sample| above this counts as sound (3 % of full scale)
FRAME = RATE // 50  # one 20 ms frame


@pytest.fixture(scope="module")
async def user_speech(session_api: httpx.AsyncClient) -> np.ndarray:
    """The listener's voice: synthesized by the same fleet, at 48 kHz."""
    response = await session_api.post("/synthesize", json={"text": USER_TEXT, "sample_rate": RATE})
    return parse_wav(response.content).samples


@pytest.fixture
async def live(session_api: httpx.AsyncClient) -> AsyncIterator[tuple[str, Listener, EventLog]]:
    created = (await session_api.post("/sessions", json={})).json()
    listener = Listener()
    events = EventLog(session_api, created["session_id"])
    await listener.join(created["url"], created["token"])
    yield created["session_id"], listener, events
    await listener.leave()
    await events.aclose()
    await session_api.delete(f"/sessions/{created['session_id']}")


def audible_span(pcm: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > AUDIBLE)
    assert loud.size, "no audible sound"
    return int(loud[0]), int(loud[-1])


HOP = RATE // 100  # 10 ms: the resolution of the measurement
QUIET = 100.0  # RMS below which a 10 ms block of the agent's audio says nothing about the cut


def received_span(agent: np.ndarray, received: np.ndarray, heard: int) -> tuple[int, int]:
    """Bounds (in samples of the agent's audio) on where the listener stopped receiving it.

    Aligns the recording with the agent's own audio (cross-correlation over the second
    before the reported position), then compares 10 ms blocks within half a second of it.
    A block where the agent is audible is followed when the recording carries at least a
    third of its level there. The lower bound is the end of the last followed block, the
    upper bound the start of the next audible one. Taking the last followed block keeps an
    earlier dip in the recording (a late packet, a jitter-buffer shift) from passing for the cut;
    blocks where the agent itself is near silent tell nothing, so a cut inside a pause
    gives a wider span.
    """
    a, r = agent.astype(np.float64), received.astype(np.float64)
    # Within the utterance: a cut under a second into it (a late first audio under load) has
    # less before it, and a negative start would wrap around to the utterance's end.
    first = max(0, heard - RATE)
    window = a[first : heard - RATE // 10]
    assert len(window) >= RATE // 10, "too little audio before the cut to align on"
    size = 1 << int(np.ceil(np.log2(len(r) + len(window))))
    correlation = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(window, size)), size)
    start = int(np.argmax(correlation[: len(r)])) - first  # where sample 0 landed

    def level(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0

    audible: list[tuple[int, bool]] = []  # (block start, followed)
    for k in range(max(0, heard - RATE // 2), min(heard + RATE // 2, len(a) - HOP), HOP):
        agent_level = level(a[k : k + HOP])
        if agent_level >= QUIET:
            followed = level(r[start + k : start + k + HOP]) >= agent_level / 3
            audible.append((k, followed))
    last = max((i for i, (_, followed) in enumerate(audible) if followed), default=None)
    assert last is not None, "the recording never followed the agent"
    assert last + 1 < len(audible), "the recording never stopped following the agent"
    return audible[last][0] + HOP, audible[last + 1][0]


async def counter(orch: Orchestrator, name: str) -> float:
    """A counter's value on this replica's /metrics."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.ops_port}") as ops:
        text = (await ops.get("/metrics")).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} not exported"
    return values[0]


async def speak_and_capture(
    orch: Orchestrator, session_api: httpx.AsyncClient, session_id: str, events: EventLog
) -> tuple[str, UtteranceAudio]:
    said = await session_api.post(f"/sessions/{session_id}/say", json={"text": AGENT_TEXT})
    utterance_id = said.json()["utterance_id"]
    await events.wait("speech_started", utterance_id=utterance_id)
    return utterance_id, orch.services.sessions.local[session_id].utterances[utterance_id].audio


async def test_barge_in_silences_the_agent_and_reports_what_was_heard(
    session_orchestrator: Orchestrator,
    session_api: httpx.AsyncClient,
    live: tuple[str, Listener, EventLog],
    user_speech: np.ndarray,
    piper_worker: WorkerProcess,
) -> None:
    session_id, listener, events = live
    bargeins = await counter(session_orchestrator, "voiceorch_bargeins_total")
    outcome = "voiceorch_worker_streams_total"
    worker_cancelled = piper_worker.metric(outcome, outcome="cancelled")
    utterance_id, audio = await speak_and_capture(
        session_orchestrator, session_api, session_id, events
    )
    await asyncio.sleep(2.5)
    listener.talk(user_speech)
    interrupted = await events.wait("interrupted", within=10, utterance_id=utterance_id)
    cancelled = await events.wait("cancelled", within=10, utterance_id=utterance_id)
    await events.wait("user_speech_stopped", within=15)
    # Anything still in flight arrives within half a second of the track's own audio.
    await listener.recording.wait_for(len(listener.recording.pcm()) + RATE // 2, within=10)

    heard = round(cancelled["position_seconds"] * RATE)
    assert 2.0 * RATE < heard < 4.5 * RATE
    # The pause came first and nothing was played between pause and cancel.
    assert cancelled["position_seconds"] == interrupted["position_seconds"]
    assert interrupted["text_heard"] and AGENT_TEXT.startswith(interrupted["text_heard"])

    # What arrived at the listener is what the agent says was heard (see received_span).
    agent_pcm = np.frombuffer(audio.pcm(), dtype=np.int16)
    low, high = received_span(agent_pcm, listener.recording.pcm(), heard)
    # Within one frame: the reported position lies no more than a frame outside the span in
    # which the received audio ended.
    assert low - FRAME <= heard <= high + FRAME, (low - heard, high - heard)
    # And after the cancel the agent stays silent.
    _, got_last = audible_span(listener.recording.pcm())
    assert got_last < len(listener.recording.pcm()) - RATE // 4

    assert await counter(session_orchestrator, "voiceorch_bargeins_total") == bargeins + 1
    # The worker kept only a few seconds ahead of the listener (the session reports where it
    # is), so the utterance was still being synthesized when it was cancelled: the worker
    # ends it as cancelled, its remaining text never synthesized.
    assert await poll_until(
        lambda: piper_worker.metric(outcome, outcome="cancelled") == worker_cancelled + 1,
        timeout_seconds=10,
    )
    state = (await session_api.get(f"/sessions/{session_id}")).json()
    assert {u["utterance_id"]: u["state"] for u in state["utterances"]}[utterance_id] == "cancelled"
    # The session goes on speaking: its next utterance plays to its end.
    said = await session_api.post(f"/sessions/{session_id}/say", json={"text": "Of course."})
    await events.wait("finished", within=20, utterance_id=said.json()["utterance_id"])


async def test_short_acknowledgement_is_a_false_interruption_and_speech_resumes(
    session_orchestrator: Orchestrator,
    session_api: httpx.AsyncClient,
    live: tuple[str, Listener, EventLog],
) -> None:
    """A short "okay" over the agent pauses it, then the utterance resumes where it stopped
    and plays out in full. (A bare 150 ms fragment of speech is no longer a false
    interruption when Whisper hears a word in it; the duration rule for short sounds is
    pinned in test_bargein.py and, without a recognizer, in test_listening_live.py.)"""
    session_id, listener, events = live
    false_before = await counter(session_orchestrator, "voiceorch_false_interruptions_total")
    utterance_id, audio = await speak_and_capture(
        session_orchestrator, session_api, session_id, events
    )
    await asyncio.sleep(2.0)
    listener.talk(speak("okay", VOICES[0]).pcm)
    interrupted = await events.wait("interrupted", within=10, utterance_id=utterance_id)
    resumed = await events.wait("resumed", within=10, utterance_id=utterance_id)
    assert resumed["reason"] in ("backchannel", "noise"), resumed
    finished = await events.wait("finished", within=90, utterance_id=utterance_id)
    assert not events.of("cancelled")
    false_after = await counter(session_orchestrator, "voiceorch_false_interruptions_total")
    assert false_after == false_before + 1
    # The rest of the utterance arrived: all of it, from where the listener was cut off.
    assert finished["position_seconds"] == pytest.approx(audio.samples / RATE, abs=0.001)
    assert interrupted["position_seconds"] < finished["position_seconds"]
    heard = transcribe(Pcm(listener.recording.pcm(), RATE))
    assert word_error_rate(AGENT_TEXT, heard) <= 0.25, heard
