"""The audio of one spoken utterance, kept while it plays so a paused utterance can resume
at the exact sample the listener heard, and so "heard" maps back to text."""

from __future__ import annotations

import asyncio
import bisect

from tts_rpc.v1 import tts_pb2

BYTES_PER_SAMPLE = 2


class UtteranceAudio:
    """PCM (s16le mono) of one utterance as it arrives, with the text span of each frame."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pcm = bytearray()
        self._span_starts: list[int] = []  # sample index where each frame starts
        self._spans: list[tuple[int, int]] = []
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
        self._more.set()

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
        """Approximate text spoken by the first `samples`: whole clauses, plus the share of
        the current clause's characters matching the share of its audio played, cut back to
        a word boundary."""
        if samples <= 0 or not self._spans:
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
        clause_end = (
            self._span_starts[clause_last + 1]
            if clause_last + 1 < len(self._spans)
            else self.samples
        )
        share = (samples - clause_begin) / max(clause_end - clause_begin, 1)
        cut = start + int(share * (end - start))
        if share < 1.0:
            space = self.text.rfind(" ", start, cut + 1)
            cut = space if space > start else (start if share < 0.5 else end)
        return self.text[:cut].strip()
