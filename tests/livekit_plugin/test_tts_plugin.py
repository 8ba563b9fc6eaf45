"""The livekit-agents TTS plugin speaks through a real worker, chunked and streaming, with
the worker's word timings on its frames as aligned transcripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIStatusError, tts
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT, TimedString

from livekit_plugin import WorkerTTS
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.processes import WorkerProcess
from tests.tts_worker.word_times import Word, median_offset, whisper_words

TEXT = "This sentence travels to our worker, and the worker speaks it back to the agent."
TWO_SENTENCES = TEXT + " Then a second sentence follows, a little longer than the first one."


def pcm_of(frames: list[rtc.AudioFrame]) -> Pcm:
    data = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    return Pcm(data, frames[0].sample_rate)


@pytest.fixture
async def plugin(piper_worker: WorkerProcess) -> AsyncIterator[WorkerTTS]:
    plugin = WorkerTTS(workers=[piper_worker.address])
    yield plugin
    await plugin.aclose()


async def streamed(plugin: WorkerTTS, text: str) -> list[rtc.AudioFrame]:
    """The frames of one streamed utterance, its text pushed word by word like LLM deltas."""
    stream = plugin.stream()
    for word in text.split(" "):
        stream.push_text(word + " ")
    stream.end_input()
    frames, finals = [], 0
    async for audio in stream:
        frames.append(audio.frame)
        finals += audio.is_final
    await stream.aclose()
    assert finals == 1
    return frames


async def test_synthesize_collects_speech_at_roomio_rate(plugin: WorkerTTS) -> None:
    frame = await plugin.synthesize(TEXT).collect()
    assert frame.sample_rate == 24000 and frame.num_channels == 1
    assert 3.0 < frame.duration < 10.0
    assert word_error_rate(TEXT, transcribe(pcm_of([frame]))) <= 0.2


async def test_stream_takes_llm_deltas_and_ends_with_one_final_frame(plugin: WorkerTTS) -> None:
    frames = await streamed(plugin, TEXT)
    assert {f.sample_rate for f in frames} == {24000}
    assert word_error_rate(TEXT, transcribe(pcm_of(frames))) <= 0.2


async def test_frames_carry_word_timings_that_spell_the_text(plugin: WorkerTTS) -> None:
    """Concatenated, the timed pieces are the text as sent; every piece is timed, in order,
    inside the audio, and each piece rides on a frame at or before the moment it starts.
    (Where Whisper hears each word against these times: tests/tts_worker.)"""
    frames = await streamed(plugin, TWO_SENTENCES)
    pieces: list[tuple[TimedString, float]] = []
    position = 0.0
    for frame in frames:
        for piece in frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, []):
            pieces.append((piece, position))
        position += frame.duration
    text = "".join(piece for piece, _ in pieces)
    assert text == "".join(w + " " for w in TWO_SENTENCES.split(" "))
    assert all(isinstance(p.start_time, float) for p, _ in pieces), pieces  # all timed
    timed = [(p, at) for p, at in pieces if p.strip()]  # the words (a trailing space aside)
    assert [p.strip() for p, _ in timed] == TWO_SENTENCES.split()
    starts = [p.start_time for p, _ in timed]
    assert starts == sorted(starts)
    for piece, at in timed:
        assert isinstance(piece.end_time, float)
        assert 0 <= piece.start_time < piece.end_time <= position + 1e-6
        # Handed over no later than its audio: AudioEmitter holds a 10 ms tail back.
        assert at <= piece.start_time + 0.011


async def test_unknown_voice_is_a_non_retryable_404(piper_worker: WorkerProcess) -> None:
    plugin = WorkerTTS(workers=[piper_worker.address], voice="en_XX-nobody")
    try:
        with pytest.raises(APIStatusError, match="en_XX-nobody") as caught:
            await plugin.synthesize("hello").collect()
        assert caught.value.status_code == 404 and not caught.value.retryable
    finally:
        await plugin.aclose()


async def test_prewarm_checks_the_voice_before_any_speech(piper_worker: WorkerProcess) -> None:
    """prewarm() connects and checks the voice: an unknown one raises at once, naming it and
    the voices there are; a known one passes, and so does the fleet's default."""
    plugin = WorkerTTS(workers=[piper_worker.address], voice="en_XX-nobody")
    try:
        with pytest.raises(APIStatusError, match="'en_XX-nobody' is not available") as caught:
            await plugin.prewarm()
        assert caught.value.status_code == 404
        assert "en_US-joe-medium" in str(caught.value)
        plugin.update_options(voice="en_US-joe-medium")
        await plugin.prewarm()
        plugin.update_options(voice="")
        await plugin.prewarm()
    finally:
        await plugin.aclose()


async def test_update_options_speed_reaches_the_worker(plugin: WorkerTTS) -> None:
    """speed goes to the worker with each utterance: after update_options(speed=1.5) the
    same text comes out clearly shorter, and still intelligible."""
    normal = await plugin.synthesize(TEXT).collect()
    plugin.update_options(speed=1.5)
    fast = await plugin.synthesize(TEXT).collect()
    # Piper draws durations with noise (a few %); 1.5x leaves about two thirds.
    assert fast.duration < 0.8 * normal.duration
    assert word_error_rate(TEXT, transcribe(pcm_of([fast]))) <= 0.2


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
    plugin = WorkerTTS(workers=[piper_worker.address], sample_rate=24000)
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


async def test_normalize_false_sends_the_text_as_written(piper_worker: WorkerProcess) -> None:
    """normalize=False hands the engine the text as written, so Piper reads the emphasis
    markers out; by default they are silent."""
    plain = WorkerTTS(workers=[piper_worker.address])
    verbatim = WorkerTTS(workers=[piper_worker.address], normalize=False)
    text = "It is **really** cheap."
    try:
        normalized = await plain.synthesize(text).collect()
        as_written = await verbatim.synthesize(text).collect()
    finally:
        for plugin in (plain, verbatim):
            await plugin.aclose()
    assert "asterisk" not in transcribe(pcm_of([normalized])).lower()
    heard = transcribe(pcm_of([as_written])).lower()
    assert "asterisk" in heard, heard
