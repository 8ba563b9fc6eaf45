"""livekit-agents' own AgentSession with our plugin, in a real LiveKit room with a listener:
what it says is heard; an interrupted message keeps exactly the words that were heard
(aligned transcripts) and the worker ends that utterance as cancelled; a worker killed
before a reply is replaced before anything is heard."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from fleet.aio import poll_until
from livekit_plugin import WorkerTTS
from tests.audio_checks import normalize, word_error_rate
from tests.fakes.scripted_llm import ScriptedLLM
from tests.livekit_plugin.conftest import DEFAULT_VOICE, stream_outcomes
from tests.livekit_plugin.room import (
    agent_in_room,
    assistant_messages,
    heard,
    words_heard_of,
)
from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess

SAY = "Good morning. This is the voice orchestrator, speaking through a LiveKit agent session."
REPLY = ["Certainly. ", "The weather ", "today is ", "sunny and warm, ", "with a light ", "breeze."]
LONG = (
    "The museum opens early in the morning and closes before dinner. Visitors can walk "
    "through the garden before the galleries open. On the upper floor there is a collection "
    "of old maps and clocks. The cafe near the entrance serves coffee, tea and fresh bread. "
    "Children enter for free on every weekend of the summer. Guided tours leave from the "
    "main hall once every hour, and the last tour ends at the gift shop."
)
# Interrupted after this much of LONG was heard: well inside it, and past the plugin's
# default lead, so the worker is still mid-utterance (paused) when it is cancelled.
HEARD_BEFORE_INTERRUPTION = 2.5


async def test_say_and_a_streamed_reply_are_heard(
    livekit_server: LiveKitServer, piper_worker: WorkerProcess
) -> None:
    plugin = WorkerTTS(workers=[piper_worker.address])
    try:
        async with agent_in_room(livekit_server, plugin, ScriptedLLM(REPLY)) as agent:
            await agent.session.say(SAY).wait_for_playout()
            await agent.settle()
            mark = agent.listener.recording.samples()
            assert word_error_rate(SAY, heard(agent.received())) <= 0.2
            await agent.session.generate_reply(user_input="How is the weather?").wait_for_playout()
            await agent.settle()
            assert word_error_rate("".join(REPLY), heard(agent.received(mark))) <= 0.2
    finally:
        await plugin.aclose()


@dataclass(frozen=True)
class Interrupted:
    saved: str  # the interrupted assistant message, as AgentSession saved it
    heard: str  # Whisper on what the listener received
    outcomes_before: dict[str, float]
    outcomes_after: dict[str, float]


@pytest.fixture(scope="module")
async def interrupted(livekit_server: LiveKitServer, piper_worker: WorkerProcess) -> Interrupted:
    """One long say() interrupted through its speech handle, with aligned transcripts on;
    two tests read it."""
    plugin = WorkerTTS(workers=[piper_worker.address])
    before = await stream_outcomes(piper_worker)
    try:
        async with agent_in_room(livekit_server, plugin, use_tts_aligned_transcript=True) as agent:
            start = agent.listener.recording.samples()
            handle = agent.session.say(LONG)
            await agent.wait_for_speech(start, HEARD_BEFORE_INTERRUPTION)
            handle.interrupt()
            await handle.wait_for_playout()
            await agent.settle()
            received = agent.received(start)
            message = assistant_messages(agent.session)[-1]
            assert message.interrupted
            saved = message.text_content or ""
    finally:
        await plugin.aclose()

    # The worker counts the outcome as its stream ends: a bounded poll for it.
    outcomes = before
    for _ in range(50):
        outcomes = await stream_outcomes(piper_worker)
        if sum(outcomes.values()) > sum(before.values()):
            break
        await asyncio.sleep(0.1)
    return Interrupted(saved, heard(received), before, outcomes)


def test_an_interrupted_message_keeps_the_words_heard(interrupted: Interrupted) -> None:
    """With use_tts_aligned_transcript the saved message is the start of the text up to
    where the listener stopped hearing it, within one word of what Whisper hears in the
    received audio."""
    saved, text = normalize(interrupted.saved), normalize(LONG)
    assert saved == text[: len(saved)]
    heard_words = words_heard_of(LONG, interrupted.heard)
    assert 5 <= heard_words < len(text) - 10, interrupted.heard
    assert abs(len(saved) - heard_words) <= 1, (interrupted.saved, interrupted.heard)


def test_an_interruption_cancels_the_worker_stream(interrupted: Interrupted) -> None:
    """The worker ends the interrupted utterance itself, as cancelled (CANCEL in band), not
    completed and not cut off by its client."""
    before, after = interrupted.outcomes_before, interrupted.outcomes_after
    changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert changed == {"cancelled": 1}


async def test_a_worker_killed_before_a_reply_is_replaced_unheard(
    livekit_server: LiveKitServer,
    worker_pair: list[WorkerProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Of two workers, the one the plugin would pick dies just before a reply: the reply is
    spoken whole by the other, and its start is heard once (no restart)."""
    plugin = WorkerTTS(workers=[w.address for w in worker_pair])
    victim: WorkerProcess | None = None
    try:
        registry = await plugin._pool.registry()  # the plugin's own choice, to kill it
        assert await poll_until(lambda: len(registry.workers) == 2, timeout_seconds=10)
        chosen = registry.pick(DEFAULT_VOICE).address
        victim = next(w for w in worker_pair if w.address == chosen)
        survivor = next(w for w in worker_pair if w is not victim)
        before = await stream_outcomes(survivor)
        async with agent_in_room(livekit_server, plugin, ScriptedLLM(REPLY)) as agent:
            victim.kill()
            mark = agent.listener.recording.samples()
            with caplog.at_level(logging.WARNING, logger="orchestrator.workers.stream"):
                await agent.session.generate_reply(user_input="And tomorrow?").wait_for_playout()
            await agent.settle()
            text = heard(agent.received(mark))
        retried = [r for r in caplog.records if "retrying on another" in r.getMessage()]
        assert [getattr(r, "worker_id", None) for r in retried] == [victim.worker_id]
        assert word_error_rate("".join(REPLY), text) <= 0.2, text
        assert normalize(text).count("certainly") == 1, text
        after = await stream_outcomes(survivor)
        assert after["completed"] == before["completed"] + 1
    finally:
        await plugin.aclose()
        if victim is not None and victim.proc is not None and victim.proc.poll() is not None:
            victim.start()  # the pair is shared: whole again for the next test
