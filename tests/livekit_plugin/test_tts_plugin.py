"""The livekit-agents TTS plugin speaks through a real worker, chunked and streaming."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIStatusError, tts
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT, TimedString

from livekit_plugin.tts import WorkerTTS
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.processes import WorkerProcess
from tests.tts_worker.word_times import Word, median_offset, whisper_words

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


@dataclass(frozen=True)
class Aligned:
    pcm: Pcm
    pieces: list[Word]
    """The timed pieces of text, spaces and marks included, as LiveKit receives them."""


def _timed(piece: TimedString) -> Word:
    assert isinstance(piece.start_time, float) and isinstance(piece.end_time, float), piece
    return Word(str(piece), piece.start_time, piece.end_time)


async def spoken(speech: tts.ChunkedStream | tts.SynthesizeStream) -> Aligned:
    """Every frame the plugin emits, and the aligned transcript LiveKit reads off them."""
    frames, pieces = [], []
    async for audio in speech:
        frames.append(audio.frame)
        pieces += [_timed(p) for p in audio.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])]
    await speech.aclose()
    return Aligned(pcm_of(frames), pieces)


@pytest.mark.parametrize("mode", ["stream", "chunked"])
async def test_word_timings_reach_livekit_as_an_aligned_transcript(
    piper_worker: WorkerProcess, mode: str
) -> None:
    """The pieces put together are the text as sent (what LiveKit's synchronizer shows), in
    order and inside the audio, and their times agree with Whisper's own word timestamps on
    the same audio (median difference <= 120 ms)."""
    plugin = WorkerTTS(piper_worker.address, sample_rate=24000)
    assert plugin.capabilities.aligned_transcript
    speech: tts.ChunkedStream | tts.SynthesizeStream
    try:
        if mode == "stream":
            speech = plugin.stream()
            for word in TEXT.split(" "):
                speech.push_text(word + " ")
            speech.end_input()
            sent = TEXT + " "
        else:
            speech = plugin.synthesize(TEXT)
            sent = TEXT
        aligned = await spoken(speech)
    finally:
        await plugin.aclose()
    assert "".join(p.text for p in aligned.pieces) == sent
    starts = [p.start for p in aligned.pieces]
    assert starts == sorted(starts) and starts[0] >= 0
    duration = len(aligned.pcm.samples) / aligned.pcm.sample_rate
    assert all(p.start <= p.end <= duration + 1e-6 for p in aligned.pieces), aligned.pieces
    ours = [Word(p.text.strip(), p.start, p.end) for p in aligned.pieces if p.text.strip(" .,")]
    median, matched = median_offset(ours, whisper_words(aligned.pcm))
    assert matched >= 0.8 * len(ours), ours
    assert median <= 0.12, (median, ours)


async def test_speed_and_normalize_reach_the_worker(piper_worker: WorkerProcess) -> None:
    """speed=1.5 makes the same text clearly shorter and still heard; normalize=False hands
    the engine the text as written, so Piper reads the emphasis markers out."""
    plain = WorkerTTS(piper_worker.address)
    fast = WorkerTTS(piper_worker.address, speed=1.5)
    verbatim = WorkerTTS(piper_worker.address, normalize=False)
    try:
        normal = await plain.synthesize(TEXT).collect()
        quick = await fast.synthesize(TEXT).collect()
        as_written = await verbatim.synthesize("It is **really** cheap.").collect()
    finally:
        for plugin in (plain, fast, verbatim):
            await plugin.aclose()
    assert quick.duration < 0.8 * normal.duration, (quick.duration, normal.duration)
    assert word_error_rate(TEXT, transcribe(pcm_of([quick]))) <= 0.2
    heard = transcribe(pcm_of([as_written])).lower()
    assert "asterisk" in heard, heard


@pytest.mark.parametrize("speed", [0.1, 5.0])
async def test_speed_out_of_range_is_a_non_retryable_error(
    piper_worker: WorkerProcess, speed: float
) -> None:
    """The worker refuses the rate (INVALID_ARGUMENT naming speed): not worth a retry."""
    plugin = WorkerTTS(piper_worker.address, speed=speed)
    try:
        with pytest.raises(APIStatusError, match="speed") as refused:
            await plugin.synthesize("hello").collect()
        assert refused.value.status_code == 400 and not refused.value.retryable
    finally:
        await plugin.aclose()
