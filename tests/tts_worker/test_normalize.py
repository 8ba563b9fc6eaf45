"""Text normalization: LLM-style text comes out as a person would read it, every span maps
back into the caller's text, and big or hostile markdown costs linear time."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.audio_checks import parse_pcm, transcribe, word_error_rate
from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, text
from tts_worker.text import normalize, verbatim

# (what an LLM writes, what should be spoken)
TABLE: list[tuple[str, str]] = [
    # money
    ("It costs $49.95 today.", "It costs forty-nine dollars and ninety-five cents today."),
    ("Only $5!", "Only five dollars!"),
    ("That's $1.", "That's one dollar."),
    ("A coffee is $0.99.", "A coffee is ninety-nine cents."),
    ("Revenue hit $1.2 million.", "Revenue hit one point two million dollars."),
    ("A $3.5B deal", "A three point five billion dollars deal"),
    ("It was £20 or €15.50.", "It was twenty pounds or fifteen euros and fifty cents."),
    (
        "The API costs $0.002 per token.",
        "The API costs zero point zero zero two dollars per token.",
    ),
    ("We lost -$5 there.", "We lost minus five dollars there."),
    ("That is $1,250 in total.", "That is one thousand two hundred and fifty dollars in total."),
    # percentages
    ("Growth was 12.5% this year.", "Growth was twelve point five percent this year."),
    ("Prices fell -3%.", "Prices fell minus three percent."),
    ("Expect 10-20% more.", "Expect ten to twenty percent more."),
    # times
    ("Meet at 3:30 pm.", "Meet at three thirty PM."),
    ("Call at 9am tomorrow.", "Call at nine AM tomorrow."),
    ("It starts at 10:05.", "It starts at ten oh five."),
    ("Doors open at 7:00 p.m. Bring a friend.", "Doors open at seven PM. Bring a friend."),
    ("The train leaves at 15:45.", "The train leaves at fifteen forty-five."),
    ("We open at 10:00.", "We open at ten o'clock."),
    # dates and years
    ("Released on 2024-01-05.", "Released on January fifth twenty twenty-four."),
    ("Due Jan 5, 2024.", "Due January fifth twenty twenty-four."),
    ("Born on 12/25/1990.", "Born on December twenty-fifth nineteen ninety."),
    ("On the 3rd of March 2023 it rained.", "On the third of March twenty twenty-three it rained."),
    ("It happened in 1999.", "It happened in nineteen ninety-nine."),
    ("Music from the 1980s is back.", "Music from the nineteen eighties is back."),
    ("Sales grew in Q4 2023.", "Sales grew in Q4 twenty twenty-three."),
    # ordinals, numbers
    ("She finished 2nd in the 21st race.", "She finished second in the twenty-first race."),
    (
        "We have 1,234,567 users.",
        "We have one million two hundred and thirty-four thousand five hundred and "
        "sixty-seven users.",
    ),
    ("Pi is about 3.14.", "Pi is about three point one four."),
    ("It is -5 outside.", "It is minus five outside."),
    ("Read pages 10-20.", "Read pages ten to twenty."),
    ("Python 3.11.2 is out.", "Python three point eleven point two is out."),
    ("Over 50k people came.", "Over fifty thousand people came."),
    ("It is 3x faster.", "It is three times faster."),
    ("Half: 1/2 of them.", "Half: one half of them."),
    ("We are open 24/7.", "We are open twenty-four seven."),
    ("Try 2 * 3 = 6.", "Try two times three equals six."),
    ("The #1 choice", "The number one choice"),
    ("It takes ~5 minutes.", "It takes about five minutes."),
    ("Call 555-123-4567 now.", "Call five five five one two three four five six seven now."),
    # units
    ("It weighs 5 kg.", "It weighs five kilograms."),
    ("It weighs 1 kg.", "It weighs one kilogram."),
    (
        "Drive at 60 mph or 100 km/h.",
        "Drive at sixty miles per hour or one hundred kilometers per hour.",
    ),
    ("It is 72°F outside.", "It is seventy-two degrees Fahrenheit outside."),
    ("Download 2.5GB first.", "Download two point five gigabytes first."),
    # addresses
    ("Visit https://www.example.com/docs?ref=chat.", "Visit example dot com slash docs."),
    ("See example.org for more.", "See example dot org for more."),
    ("Mail bob.smith@example.com today.", "Mail bob dot smith at example dot com today."),
    # words and symbols
    ("Fruit, e.g. apples & pears.", "Fruit, for example apples and pears."),
    # markdown
    ("This is **really** important.", "This is really important."),
    ("Use *italics* and _this_ but keep snake_case.", "Use italics and this but keep snake_case."),
    ("~~Old~~ new price", "Old new price"),
    ("Run `pip install` first.", "Run pip install first."),
    ("Read [the docs](https://example.com/docs) now.", "Read the docs now."),
    ("# Getting Started", "Getting Started."),
    ("## Done!", "Done!"),
    ("- First item\n- Second item", "First item\nSecond item"),
    ("1. Wash\n2. Dry", "Wash\nDry"),
    ("> A quoted line.", "A quoted line."),
    ("Code:\n```python\nprint(1)\n```\nDone.", "Code:\nDone."),
    ("| Plan | Price |\n|------|-------|\n| Pro | $5 |", "Plan, Price\n\nPro, five dollars"),
    ("A line that wraps\nonto the next one.", "A line that wraps onto the next one."),
    ("Text<br>more <b>bold</b>", "Text more bold"),
    ("Escaped \\*stars\\*", "Escaped *stars*"),
    ("---\nAfter the rule.", "\nAfter the rule."),
    # emoji
    ("Great job 🎉!", "Great job !"),
    ("Thanks👍🏽so much", "Thanks so much"),
    ("## 🚀 Launch", " Launch."),
    ("Family 👨‍👩‍👧 and flag 🇺🇸 done.", "Family  and flag  done."),
]


@pytest.mark.parametrize(("written", "spoken"), TABLE, ids=[w[:30] for w, _ in TABLE])
def test_llm_text_is_spoken_as_a_person_would(written: str, spoken: str) -> None:
    assert normalize(written).text == spoken


def test_the_table_is_big_enough() -> None:
    assert len(TABLE) >= 40


@pytest.mark.parametrize(("written", "spoken"), TABLE, ids=[w[:30] for w, _ in TABLE])
def test_every_spoken_word_maps_back_into_the_written_text(written: str, spoken: str) -> None:
    """Each word of the output points at a span of the input, in order, and a word copied
    as it is points at itself: the caller's offsets survive normalization."""
    normalized = normalize(written)
    previous_start = 0
    for word in re.finditer(r"\S+", normalized.text):
        start, end = normalized.source_span(word.start(), word.end())
        assert 0 <= previous_start <= start <= end <= len(written)
        previous_start = start
        if word[0] in written[start:end] and written[start:end] == word[0]:
            continue
        assert start < end, (word[0], start, end)


def test_replaced_spans_point_at_what_they_replace() -> None:
    source = "## Price\nIt costs **$49.95** today at 3:30 pm."
    normalized = normalize(source)

    def source_of(spoken: str) -> str:
        at = normalized.text.index(spoken)
        start, end = normalized.source_span(at, at + len(spoken))
        return source[start:end]

    assert source_of("forty-nine dollars and ninety-five cents") == "$49.95"
    assert source_of("dollars") == "$49.95"
    assert source_of("today") == "today"
    assert source_of("three thirty PM") == "3:30 pm"
    assert source_of("Price") == "Price"
    assert source_of("costs forty-nine") == "costs **$49.95"


def test_verbatim_maps_one_to_one() -> None:
    text = "Keep **this** $5 as it is."
    result = verbatim(text)
    assert result.text == text
    assert result.source_span(13, 15) == (13, 15)


def test_empty_and_whitespace() -> None:
    assert normalize("").text == ""
    assert normalize("").source_span(0, 0) == (0, 0)
    assert normalize("   ").text == "   "


def _seconds_per_char(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        normalize(text)
        best = min(best, time.perf_counter() - started)
    return best / len(text)


HOSTILE = {
    "emphasis markers": "**a " * 50_000,
    "unclosed links": "[a](" * 50_000,
    "digits": "1" * 200_000,
    "emoji": "🎉" * 100_000,
    "blank lines": "\n" * 200_000,
    "underscores": "_a " * 70_000,
    "one long line": "word " * 40_000,
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_markdown_costs_linear_time(kind: str) -> None:
    """Ten times the text costs about ten times the time, never a hundred (a quadratic
    regex would): the work per character stays flat as the text grows."""
    small = HOSTILE[kind]
    per_char_small = _seconds_per_char(small[: len(small) // 10])
    per_char_large = _seconds_per_char(small)
    assert per_char_large < 4 * per_char_small + 1e-6


def test_two_megabytes_of_markdown_normalize() -> None:
    """2 MB of LLM-style markdown goes through (the HTTP routes refuse such a body anyway)."""
    block = "\n".join(written for written, _ in TABLE) + "\n\n"
    text = (block * (2_000_000 // len(block) + 1))[:2_000_000]
    result = normalize(text)
    assert "forty-nine dollars" in result.text
    assert "**" not in result.text and "```" not in result.text
    assert result.source_span(0, len(result.text))[1] <= len(text)


# -- what Piper makes of it, as Whisper hears it -------------------------------------------

ROUND_TRIP = [
    "The **total** is $49.95, due on Jan 5, 2024.",
    "Meet me tomorrow at 10 am in room #4 🎉.",
    "## Results\nGrowth was 12.5% and we have 1,200 users.",
    "Visit https://www.example.com/docs for the 2nd part.",
    "- It weighs 5 kg\n- It costs £20",
]


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


@pytest.mark.slow
@pytest.mark.parametrize("written", ROUND_TRIP)
async def test_piper_says_what_normalization_wrote(channel: grpc.aio.Channel, written: str) -> None:
    """Through the real Piper voice, Whisper hears the spoken form (WER <= 0.2): the
    normalized text is something the voice can say. Whisper writes what it hears as an LLM
    would ("$49.95"), so its transcript is compared after the same normalization."""
    spoken = normalize(written).text
    stream = Stream(channel)
    await stream.send(config(utterance_id="normalize", sample_rate=16000), text(spoken), END)
    received = await stream.read_all()
    heard = transcribe(parse_pcm(b"".join(f.audio for f in received.frames), 16000))
    assert word_error_rate(spoken, normalize(heard).text) <= 0.2, (spoken, heard)
