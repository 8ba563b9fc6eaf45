"""The livekit-agents TTS plugin speaks through a real worker, chunked and streaming."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIStatusError

from livekit_plugin.tts import WorkerTTS
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.processes import WorkerProcess

TEXT = "This sentence travels to our worker, and the worker speaks it back to the agent."


def pcm_of(frames: list[rtc.AudioFrame]) -> Pcm:
    data = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    return Pcm(data, frames[0].sample_rate)


async def test_synthesize_collects_48khz_speech(piper_worker: WorkerProcess) -> None:
    plugin = WorkerTTS(piper_worker.address)
    try:
        frame = await plugin.synthesize(TEXT).collect()
        assert frame.sample_rate == 48000 and frame.num_channels == 1
        assert 3.0 < frame.duration < 10.0
        assert word_error_rate(TEXT, transcribe(pcm_of([frame]))) <= 0.2
    finally:
        await plugin.aclose()


async def test_stream_takes_llm_deltas_and_ends_with_one_final_frame(
    piper_worker: WorkerProcess,
) -> None:
    plugin = WorkerTTS(piper_worker.address, sample_rate=24000)
    try:
        stream = plugin.stream()
        for word in TEXT.split(" "):
            stream.push_text(word + " ")
        stream.end_input()
        frames, finals = [], 0
        async for audio in stream:
            frames.append(audio.frame)
            finals += audio.is_final
        await stream.aclose()
        assert finals == 1
        assert {f.sample_rate for f in frames} == {24000}
        assert word_error_rate(TEXT, transcribe(pcm_of(frames))) <= 0.2
    finally:
        await plugin.aclose()


async def test_unknown_voice_is_a_non_retryable_error(piper_worker: WorkerProcess) -> None:
    plugin = WorkerTTS(piper_worker.address, voice="en_XX-nobody")
    try:
        with pytest.raises(APIStatusError, match="NOT_FOUND"):
            await plugin.synthesize("hello").collect()
    finally:
        await plugin.aclose()
