"""The livekit-agents TTS plugin speaks through a real worker, chunked and streaming."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIStatusError
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT, NotGivenOr, TimedString

from livekit_plugin.tts import WorkerTTS
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.processes import WorkerProcess
from tests.tts_worker.word_times import Word, median_offset, whisper_words

TEXT = "This sentence travels to our worker, and the worker speaks it back to the agent."


def pcm_of(frames: list[rtc.AudioFrame]) -> Pcm:
    data = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    return Pcm(data, frames[0].sample_rate)


def timed_text(frames: list[rtc.AudioFrame]) -> list[TimedString]:
    """The aligned transcript livekit-agents hands an AgentSession, riding on the frames."""
    return [piece for f in frames for piece in f.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])]


def seconds(value: NotGivenOr[float]) -> float:
    assert isinstance(value, float), "every piece is timed"
    return value


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


async def test_stream_transcript_is_aligned_with_the_voice(piper_worker: WorkerProcess) -> None:
    """The streamed transcript comes as timed words that add up to the text pushed, and
    their times agree with where Whisper hears each word in the audio."""
    plugin = WorkerTTS(piper_worker.address)
    assert plugin.capabilities.aligned_transcript
    try:
        stream = plugin.stream()
        for word in TEXT.split(" "):
            stream.push_text(word + " ")
        stream.end_input()
        frames = [audio.frame async for audio in stream]
        await stream.aclose()
        pieces = timed_text(frames)
        assert "".join(pieces).strip() == TEXT
        assert len(pieces) == len(TEXT.split(" "))  # one per word (Piper times words)
        starts = [seconds(p.start_time) for p in pieces]
        assert starts == sorted(starts)
        audio = pcm_of(frames)
        assert seconds(pieces[-1].end_time) <= audio.seconds + 1e-6
        ours = [Word(p.strip(), seconds(p.start_time), seconds(p.end_time)) for p in pieces]
        median, matched = median_offset(ours, whisper_words(audio))
        assert matched >= 0.8 * len(ours)
        assert median <= 0.12, (median, ours)
    finally:
        await plugin.aclose()


async def test_synthesize_transcript_adds_up_to_the_text(piper_worker: WorkerProcess) -> None:
    """A one-shot synthesis also hands out its text as timed pieces, in order, within the
    audio."""
    plugin = WorkerTTS(piper_worker.address)
    try:
        frames = [audio.frame async for audio in plugin.synthesize(TEXT)]
        pieces = timed_text(frames)
        assert "".join(pieces).strip() == TEXT
        ends = [seconds(p.end_time) for p in pieces]
        assert ends == sorted(ends)
        assert 0 < ends[-1] <= pcm_of(frames).seconds + 1e-6
    finally:
        await plugin.aclose()
