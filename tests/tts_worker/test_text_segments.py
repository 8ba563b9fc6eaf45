"""Normalization in the worker, segment by segment as text streams in: each segment reads as
the whole text would, fenced code is dropped even when its fences arrive in pieces, block
markers count only at a line start, and every word time points into the text as sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from tests.audio_checks import parse_pcm, transcribe
from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, text
from tts_worker.engines.base import WordTime
from tts_worker.text.segments import UtteranceText
from tts_worker.text_segmenter import TextSegmenter

MARKDOWN = (
    "## Price 🚀\n"
    "It costs **$49.95** today, due Jan 5, 2024 at 3:30 pm.\n"
    "```python\n"
    "print('hello world')\n"
    "x = 1\n"
    "```\n"
    "- Mail bob@example.com or see [the docs](https://example.com/docs).\n"
    "| Plan | Price |\n"
    "|---|---|\n"
    "| Pro | $5 |\n"
    "Done. # not a heading - not an item"
)
SPOKEN = [
    "Price .",
    "It costs forty-nine dollars and ninety-five cents today, due January fifth twenty "
    "twenty-four at three thirty PM.",
    "Mail bob at example dot com or see the docs.",
    "Plan, Price",
    "Pro, five dollars",
    "Done.",
    "# not a heading - not an item",
]


def spoken(source: str, chunk: int, **options: bool) -> list[str]:
    """What the engine would be asked to say, with the text arriving `chunk` characters at
    a time (as the worker does it: segmenter and normalizer fed the same pieces)."""
    words = UtteranceText(**options)
    segmenter = TextSegmenter(min_clause_chars=30, max_segment_chars=250)
    segments = []
    for i in range(0, len(source), chunk):
        piece = source[i : i + chunk]
        words.push(piece)
        segments += segmenter.push(piece)
    segments += segmenter.flush()
    said = [words.spoken(segment) for segment in segments]
    return [s.text for s in said if s is not None]


@pytest.mark.parametrize("chunk", [1, 3, 7, 10_000])
def test_streamed_markdown_reads_as_a_person_would(chunk: int) -> None:
    """However the text is chunked: code is not read, markers go, numbers are words."""
    assert spoken(MARKDOWN, chunk) == SPOKEN


def test_a_date_is_not_cut_before_its_year() -> None:
    """The clause cut at ", " waits for what follows a digit: "Jan 5, 2024" stays one
    segment, so the year is read as a year and not as a number."""
    text = "The meeting with the whole product team is due Jan 5, 2024, in the big room."
    said = " ".join(spoken(text, 4))
    assert "January fifth twenty twenty-four" in said


def test_verbatim_and_other_languages() -> None:
    """normalize off: the text as sent. A non-English voice: markdown and emoji go, numbers
    stay for the engine's own frontend to read in its language."""
    assert spoken("Keep **this** $5.", 5, normalize_text=False) == ["Keep **this** $5."]
    assert spoken("价格是**$5**，好的🎉。", 2, written_forms=False) == ["价格是$5，好的。"]


def test_word_times_map_back_and_merge() -> None:
    """Engine words over the normalized text become timings over the caller's text: the
    five words said for "$49.95" are one timing spanning all of them."""
    source = "It costs **$49.95** today."
    words = UtteranceText()
    words.push(source)
    segmenter = TextSegmenter()
    [segment] = segmenter.push(source) + segmenter.flush()
    said = words.spoken(segment)
    assert said is not None
    engine_words = []
    sample = 0
    for token in said.text.split():
        at = said.text.index(token, engine_words[-1].end if engine_words else 0)
        engine_words.append(WordTime(at, at + len(token), sample, sample + 100))
        sample += 120
    timed = said.words(engine_words)
    assert [source[w.start : w.end] for w in timed] == ["It", "costs", "$49.95", "today."]
    price = timed[2]
    assert (price.start_sample, price.end_sample) == (240, 240 + 4 * 120 + 100)


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


async def heard(channel: grpc.aio.Channel, words: str, **fields: object) -> str:
    stream = Stream(channel)
    await stream.send(config(utterance_id="segments", sample_rate=16000, **fields), text(words))
    await stream.send(END)
    received = await stream.read_all()
    return transcribe(parse_pcm(b"".join(f.audio for f in received.frames), 16000)).lower()


async def test_the_worker_normalizes_unless_told_verbatim(channel: grpc.aio.Channel) -> None:
    """Through real Piper, as Whisper hears it: by default the emphasis markers are silent
    and fenced code is not read; with verbatim the engine gets the text as it is, and Piper
    says "asterisk" and reads the code."""
    source = "It is **really** cheap.\n```\nprint(banana)\n```\nThanks."
    normalized = await heard(channel, source)
    assert "asterisk" not in normalized and "banana" not in normalized, normalized
    as_sent = await heard(channel, source, verbatim=True)
    assert "asterisk" in as_sent and "banana" in as_sent, as_sent
