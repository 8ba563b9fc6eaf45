"""Speed and text timings from the real Piper worker: speed reaches the engine, out-of-range
speeds are refused, and the word times the worker reports are where Whisper hears them."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.audio_checks import Pcm, parse_pcm
from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Received, Stream, config, text
from tests.tts_worker.word_times import median_offset, our_words, whisper_words
from tts_rpc.v1 import tts_pb2

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
TWO_SENTENCES = SENTENCE + " Seven happy children were singing loudly in the garden."
RATE = 16000


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


async def speak(channel: grpc.aio.Channel, words: str, **fields: object) -> Received:
    stream = Stream(channel)
    await stream.send(config(utterance_id="timing", sample_rate=RATE, **fields), text(words), END)
    return await stream.read_all()


def audio(received: Received) -> Pcm:
    return parse_pcm(b"".join(f.audio for f in received.frames), RATE)


async def test_speed_reaches_piper(channel: grpc.aio.Channel) -> None:
    """speed 1.5 becomes Piper's length_scale: the same text comes out clearly shorter, and
    0 (unset) is the voice's own pace, like 1.0."""
    normal = await speak(channel, TWO_SENTENCES, speed=1.0)
    unset = await speak(channel, TWO_SENTENCES)
    fast = await speak(channel, TWO_SENTENCES, speed=1.5)
    slow = await speak(channel, TWO_SENTENCES, speed=0.5)
    # Piper draws durations with noise (a few %); 1.5x leaves about two thirds.
    assert fast.audio_seconds < 0.8 * normal.audio_seconds
    assert slow.audio_seconds > 1.5 * normal.audio_seconds
    assert unset.audio_seconds == pytest.approx(normal.audio_seconds, rel=0.1)


@pytest.mark.parametrize("speed", [0.1, 0.2499, 4.01, 10.0, -1.0, math.nan, math.inf])
async def test_speed_out_of_range_is_invalid_argument(
    channel: grpc.aio.Channel, speed: float
) -> None:
    """Outside 0.25-4.0 (NaN included) the stream ends before any audio, naming speed."""
    stream = Stream(channel)
    # Only the refused config: a text written after it would race the worker's abort.
    await stream.send(config(utterance_id="bad-speed", speed=speed))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read_all()
    assert not stream.received.frames
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speed" in (caught.value.details() or "")


@pytest.mark.parametrize("speed", [0.25, 4.0])
async def test_speed_limits_are_accepted(channel: grpc.aio.Channel, speed: float) -> None:
    received = await speak(channel, "Hello there.", speed=speed)
    assert received.stats is not None and received.frames


async def test_word_times_are_monotonic_and_cover_the_audio(channel: grpc.aio.Channel) -> None:
    """Every word of the text is timed once, in order, inside the audio, from the first
    word's onset to the last word's end."""
    received = await speak(channel, TWO_SENTENCES)
    words = our_words(TWO_SENTENCES, received.frames, received.stats)
    assert [w.text for w in words] == TWO_SENTENCES.split()
    timings = [t for f in received.frames for t in f.timings]
    assert {t.unit for t in timings} == {tts_pb2.TIMING_UNIT_WORD}
    for before, after in zip(words, words[1:], strict=False):
        assert before.start < before.end <= after.start < after.end
    total = received.audio_seconds
    assert 0 <= words[0].start < 0.3
    assert total - 0.5 < words[-1].end <= total + 1e-6
    # Words fill the audio, apart from the short pauses between them and around the text.
    assert sum(w.end - w.start for w in words) > 0.7 * total


async def test_each_word_time_travels_on_the_frame_where_it_is_heard(
    channel: grpc.aio.Channel,
) -> None:
    """A timing arrives with the frame its audio starts in (within one frame), so a client
    that stops playback also stops receiving words it never played."""
    received = await speak(channel, TWO_SENTENCES)
    assert received.stats is not None and not received.stats.timings
    for frame in received.frames:
        frame_end = frame.start_seconds + frame.duration_seconds
        for timing in frame.timings:
            assert frame.start_seconds - frame.duration_seconds <= timing.start_seconds
            assert timing.start_seconds < frame_end


async def test_word_times_agree_with_whisper(channel: grpc.aio.Channel) -> None:
    """Independent truth: Whisper's own word timestamps on the same audio, median
    difference (starts and ends) within 120 ms."""
    received = await speak(channel, TWO_SENTENCES)
    ours = our_words(TWO_SENTENCES, received.frames, received.stats)
    theirs = whisper_words(audio(received))
    median, matched = median_offset(ours, theirs)
    assert matched >= 0.8 * len(ours), (ours, theirs)
    assert median <= 0.12, (median, ours, theirs)


async def test_word_times_follow_the_speed(channel: grpc.aio.Channel) -> None:
    """At speed 1.5 the words are timed on the faster audio, still as Whisper hears them."""
    received = await speak(channel, SENTENCE, speed=1.5)
    ours = our_words(SENTENCE, received.frames, received.stats)
    assert ours[-1].end <= received.audio_seconds + 1e-6
    median, matched = median_offset(ours, whisper_words(audio(received)))
    assert matched >= 0.8 * len(ours)
    assert median <= 0.12


async def test_numbers_expanded_by_espeak_are_timed_as_one_word(
    channel: grpc.aio.Channel,
) -> None:
    """ "3.14" is four spoken words ("three point one four") and one text word: its span
    covers the whole number, and the words around it keep their own times."""
    words_text = "Pi is 3.14 and Doctor Smith agrees."
    received = await speak(channel, words_text)
    words = our_words(words_text, received.frames, received.stats)
    assert [w.text for w in words] == words_text.split()
    number = words[2]
    # Four spoken words take clearly longer than "is" or "and".
    assert number.end - number.start > 2 * (words[1].end - words[1].start)
    for before, after in zip(words, words[1:], strict=False):
        assert before.end <= after.start
