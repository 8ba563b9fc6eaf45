"""The audio of one spoken utterance, kept while it plays so a paused utterance can resume
at the exact sample the listener heard, and so "heard" maps back to text.

"Heard" text comes from the word timings the worker sends (a word counts once its audio
has started), or, from an engine without them, from each frame's clause and the share of
the clause played. Captions and the `text_heard` of events use the same mapping, so a
caption never shows a word the events say was not heard.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable

from tts_rpc.v1 import tts_pb2

BYTES_PER_SAMPLE = 2


class UtteranceAudio:
    """PCM (s16le mono) of one utterance as it arrives, with the text span of each frame."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pcm = bytearray()
        self._span_starts: list[int] = []  # sample index where each frame starts
        self._spans: list[tuple[int, int]] = []
        self._word_starts: list[int] = []  # sample where each timed word starts, in order
        self._word_ends: list[int] = []  # where its text ends (code points)
        self._more = asyncio.Event()
        self.complete = False
        self.text = ""

    @property
    def samples(self) -> int:
        return len(self._pcm) // BYTES_PER_SAMPLE

    def pcm(self) -> bytes:
        """Every sample received so far."""
        return bytes(self._pcm)

    def append(self, frame: tts_pb2.AudioFrame) -> None:
        self._span_starts.append(self.samples)
        self._spans.append((frame.text_span.start, frame.text_span.end))
        self._pcm += frame.audio
        self.add_timings(frame.timings)
        self._more.set()

    def add_timings(self, timings: Iterable[tts_pb2.TextTiming]) -> None:
        """Word timings of the utterance (those of clauses are left to the frames' spans)."""
        for timing in timings:
            if timing.unit == tts_pb2.TIMING_UNIT_WORD:
                start = round(timing.start_seconds * self.sample_rate)
                at = bisect.bisect_right(self._word_starts, start)
                self._word_starts.insert(at, start)
                self._word_ends.insert(at, timing.text_span.end)

    def next_word_start(self, samples: int) -> int | None:
        """The first timed word starting after `samples` (None: none known, or no timings),
        when the heard text changes next."""
        at = bisect.bisect_right(self._word_starts, samples)
        return self._word_starts[at] if at < len(self._word_starts) else None

    @property
    def words(self) -> list[tuple[int, int]]:
        """Each timed word: the sample its audio starts at, the code point its text ends at."""
        return list(zip(self._word_starts, self._word_ends, strict=True))

    def finish(self) -> None:
        self.complete = True
        self._more.set()

    async def read(self, position: int, max_samples: int) -> bytes | None:
        """Up to max_samples from position on, waiting for the worker if needed; None at
        the end of a complete utterance."""
        while position >= self.samples:
            if self.complete:
                return None
            self._more.clear()
            await self._more.wait()
        start = position * BYTES_PER_SAMPLE
        end = min(self.samples, position + max_samples) * BYTES_PER_SAMPLE
        return bytes(self._pcm[start:end])

    def text_heard(self, samples: int) -> str:
        """The text spoken by the first `samples`: with word timings, every word whose audio
        started before them; otherwise whole clauses, plus the share of the current clause's
        characters matching the share of its audio played, cut back to a word boundary."""
        if samples <= 0:
            return ""
        if self._word_starts:
            words = bisect.bisect_left(self._word_starts, samples)
            return self.text[: self._word_ends[words - 1]].strip() if words else ""
        if not self._spans:
            return ""
        index = bisect.bisect_right(self._span_starts, samples) - 1
        start, end = self._spans[index]
        clause_first = index
        while clause_first > 0 and self._spans[clause_first - 1] == (start, end):
            clause_first -= 1
        clause_last = index
        while clause_last + 1 < len(self._spans) and self._spans[clause_last + 1] == (start, end):
            clause_last += 1
        clause_begin = self._span_starts[clause_first]
        clause_end: float = (
            self._span_starts[clause_last + 1]
            if clause_last + 1 < len(self._spans)
            else self.samples
        )
        if clause_last + 1 == len(self._spans) and not self.complete and start > 0:
            # The clause's audio is still arriving, so its length is not known yet: estimated
            # at the rate of the clauses before it, or a caption would show the whole clause
            # while its first samples play.
            clause_end = max(clause_end, clause_begin + (end - start) * clause_begin / start)
        share = (samples - clause_begin) / max(clause_end - clause_begin, 1)
        cut = start + int(share * (end - start))
        if share < 1.0:
            space = self.text.rfind(" ", start, cut + 1)
            cut = space if space > start else (start if share < 0.5 else end)
        return self.text[:cut].strip()
