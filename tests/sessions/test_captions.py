"""The agent's caption follows what was heard: a word appears once its audio has started
playing (the worker's word timings), nothing moves while paused, a cancel ends the caption
at the heard position, and a finished utterance shows all its text."""

from __future__ import annotations

import asyncio

from fleet.aio import poll_until
from orchestrator.sessions.captions import AgentCaptions
from orchestrator.sessions.utterance_audio import UtteranceAudio
from tts_rpc.v1 import tts_pb2

RATE = 1000  # one sample a millisecond
TEXT = "Good morning. The central branch opens at eight."
# (word, start ms): each word's audio starts there and lasts until the next one.
WORDS = [("Good", 0), ("morning", 300), ("The", 900), ("central", 1000), ("branch", 1400)]
WORDS += [("opens", 1800), ("at", 2100), ("eight", 2200)]


def timed_audio() -> UtteranceAudio:
    audio = UtteranceAudio(RATE)
    audio.text = TEXT
    timings = []
    at = 0
    for word, start in WORDS:
        first = TEXT.index(word, at)
        at = first + len(word)
        timings.append(
            tts_pb2.TextTiming(
                text_span=tts_pb2.TextSpan(start=first, end=at),
                start_seconds=start / RATE,
                end_seconds=(start + 250) / RATE,
                unit=tts_pb2.TIMING_UNIT_WORD,
            )
        )
    audio.append(
        tts_pb2.AudioFrame(
            audio=b"\x00\x00" * 2600,
            sample_rate=RATE,
            text_span=tts_pb2.TextSpan(start=0, end=len(TEXT)),
            timings=timings,
        )
    )
    audio.finish()
    return audio


class Writer:
    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.closed = asyncio.Event()

    async def write(self, delta: str) -> None:
        self.deltas.append(delta)

    async def close(self) -> None:
        self.closed.set()

    @property
    def text(self) -> str:
        return "".join(self.deltas)


class Playout:
    """The heard position, moved by the test."""

    def __init__(self) -> None:
        self.heard = 0

    def __call__(self) -> int:
        return self.heard


async def caption_at(playout: Playout, writer: Writer, heard: int, expected: str) -> None:
    playout.heard = heard
    assert await poll_until(lambda: writer.text == expected, timeout_seconds=2.0), (
        heard,
        writer.text,
    )


async def test_words_appear_as_their_audio_starts_and_the_rest_at_the_end() -> None:
    audio, playout, writer = timed_audio(), Playout(), Writer()
    captions = AgentCaptions(audio, playout, writer)
    task = asyncio.create_task(captions.run())
    await caption_at(playout, writer, 1, "Good")
    await caption_at(playout, writer, 300, "Good")  # "morning" starts at 300: not yet heard
    await caption_at(playout, writer, 301, "Good morning")
    await caption_at(playout, writer, 1001, "Good morning. The central")
    captions.finish()
    await asyncio.wait_for(task, 2.0)
    assert writer.closed.is_set()
    assert writer.text == TEXT  # the final punctuation included
    assert writer.deltas[:3] == ["Good", " morning", ". The central"]


async def test_a_cancel_ends_the_caption_at_the_heard_position() -> None:
    audio, playout, writer = timed_audio(), Playout(), Writer()
    captions = AgentCaptions(audio, playout, writer)
    task = asyncio.create_task(captions.run())
    await caption_at(playout, writer, 950, "Good morning. The")
    playout.heard = 2500  # the playout moved on, but the cancel came at 1500
    captions.stop_at(1500)
    await asyncio.wait_for(task, 2.0)
    assert writer.text == "Good morning. The central branch"
    assert writer.text == audio.text_heard(1500)
    assert writer.closed.is_set()


async def test_a_cancel_before_any_word_leaves_an_empty_caption() -> None:
    audio, writer = timed_audio(), Writer()
    captions = AgentCaptions(audio, Playout(), writer)
    task = asyncio.create_task(captions.run())
    captions.stop_at(0)
    await asyncio.wait_for(task, 2.0)
    assert writer.deltas == []
    assert writer.closed.is_set()


async def test_between_word_starts_the_caption_holds_then_goes_on() -> None:
    """A position inside a word (a pause there, or a slow feed) shows that word; the caption
    goes on from it when the position moves again."""
    audio, playout, writer = timed_audio(), Playout(), Writer()
    captions = AgentCaptions(audio, playout, writer)
    task = asyncio.create_task(captions.run())
    await caption_at(playout, writer, 1405, "Good morning. The central branch")
    await caption_at(playout, writer, 1801, "Good morning. The central branch opens")
    captions.stop_at(1801)
    await asyncio.wait_for(task, 2.0)
    assert writer.deltas[-1] == " opens"


def clause_frame(start: int, end: int, samples: int) -> tts_pb2.AudioFrame:
    return tts_pb2.AudioFrame(
        audio=b"\x00\x00" * samples,
        sample_rate=RATE,
        text_span=tts_pb2.TextSpan(start=start, end=end),
    )


def test_a_clause_still_arriving_is_not_shown_ahead_of_its_audio() -> None:
    """Without word timings, a clause is revealed in the share of its audio played; while
    its audio still arrives that share is of an estimate, not of what has arrived: at the
    first samples of "The central branch opens at eight." the caption must not show it all."""
    audio = UtteranceAudio(RATE)
    audio.text = TEXT
    second = TEXT.index("The")
    audio.append(clause_frame(0, second, 900))  # "Good morning. ": 14 characters, 0.9 s
    audio.append(clause_frame(second, len(TEXT), 100))  # the first 0.1 s of the next clause
    assert audio.text_heard(950) == "Good morning."
    audio.append(clause_frame(second, len(TEXT), 2000))
    audio.finish()
    # Complete: the clause's true length decides, as before.
    assert audio.text_heard(1000 + 1050) == "Good morning. The central branch"
