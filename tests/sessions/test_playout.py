"""Playout through a real rtc.AudioSource (no room needed: the source drains in real time
by itself): pause drops what is queued and reports the heard sample, resume continues from
exactly there (also when the pause cut a capture short), stop ends the utterance."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from fleet.aio import poll_until
from orchestrator.sessions.playout import AgentSource, Playout
from orchestrator.sessions.utterance_audio import UtteranceAudio
from tts_rpc.v1 import tts_pb2

RATE = 48000


class RecordingSource(AgentSource):
    """The session's real source, remembering every sample handed to rtc (a capture
    withdrawn before that never reaches it)."""

    def __init__(self) -> None:
        super().__init__(RATE, queue_size_ms=100)
        self.pushed: list[np.ndarray] = []

    async def _capture(self, frame: rtc.AudioFrame) -> None:
        self.pushed.append(np.frombuffer(frame.data, dtype=np.int16).copy())
        await super()._capture(frame)


def ramp_audio(seconds: float) -> tuple[UtteranceAudio, np.ndarray]:
    """A complete utterance whose every sample is distinct, so positions can be checked."""
    samples = (np.arange(int(seconds * RATE)) % 30000).astype(np.int16)
    audio = UtteranceAudio(RATE)
    audio.append(tts_pb2.AudioFrame(audio=samples.tobytes(), sample_rate=RATE))
    audio.finish()
    return audio, samples


async def test_pause_drops_queued_audio_and_resume_continues_at_the_heard_sample() -> None:
    source = RecordingSource()
    audio, samples = ramp_audio(1.0)
    playout = Playout(source, audio)
    playout.start()
    assert await poll_until(lambda: sum(map(len, source.pushed)) >= RATE // 2, timeout_seconds=5)

    pushed_before = sum(map(len, source.pushed))
    heard = playout.pause()
    # Whatever was queued inside the source is gone, and was not counted as heard.
    assert source.queued_duration == 0  # the queue was full: the pause cut a capture short
    assert 0 < heard <= pushed_before
    assert heard >= pushed_before - RATE * 0.1 - RATE // 50  # at most the queue and a frame
    assert playout.heard_samples == heard

    resume_from = len(source.pushed)
    playout.resume()
    await playout.wait_finished()
    after = np.concatenate(source.pushed[resume_from:])
    assert np.array_equal(after, samples[heard:])
    await playout.aclose()
    await source.aclose()


async def test_stop_ends_the_utterance_where_it_was_heard() -> None:
    source = RecordingSource()
    audio, _ = ramp_audio(2.0)
    playout = Playout(source, audio)
    playout.start()
    assert await poll_until(lambda: len(source.pushed) >= 10, timeout_seconds=5)
    heard = playout.stop()
    assert playout.finished
    pushed = len(source.pushed)
    playout.resume()  # a stopped utterance stays stopped
    await playout.wait_finished()
    assert len(source.pushed) == pushed
    assert heard <= sum(map(len, source.pushed))
    await playout.aclose()
    await source.aclose()


async def test_playout_waits_for_audio_still_arriving() -> None:
    """The worker is slower than playout: the feeder waits instead of ending early."""
    source = RecordingSource()
    audio = UtteranceAudio(RATE)
    playout = Playout(source, audio)
    playout.start()
    chunk = np.ones(RATE // 10, np.int16)
    for _ in range(3):
        audio.append(tts_pb2.AudioFrame(audio=chunk.tobytes(), sample_rate=RATE))
        assert await poll_until(
            lambda: sum(map(len, source.pushed)) >= audio.samples, timeout_seconds=5
        )
        assert not playout.finished
    audio.finish()
    await playout.wait_finished()
    assert sum(map(len, source.pushed)) == 3 * len(chunk)
    await playout.aclose()
    await source.aclose()


async def test_a_capture_rtc_has_not_queued_is_withdrawn_not_played() -> None:
    """A pause can come between a capture's request and its task's start: that frame was
    not heard, and it must not reach rtc after the pause."""
    source = RecordingSource()
    frame = rtc.AudioFrame(np.ones(960, np.int16).tobytes(), RATE, 1, 960)
    capturing = asyncio.ensure_future(source.capture(frame))
    await asyncio.sleep(0)  # capture() has asked for its task; the task has not run yet
    assert source.queued_samples == 960
    assert source.withdraw_unstarted() == 960
    with pytest.raises(asyncio.CancelledError):
        await capturing
    assert source.pushed == []
    assert source.queued_samples == 0
    assert source.withdraw_unstarted() == 0
    await source.aclose()
