"""Worker text timings as livekit-agents aligned transcripts.

The worker reports, with the frame where its audio starts, the span of the utterance text
that each word (or, from engines without word times, each clause) speaks and when, on the
utterance's audio clock. livekit-agents wants `TimedString`s on its audio frames whose
concatenation is the transcript, each timed like the speech it holds: so each piece here
runs from the end of the previous one to the end of a timed span (the spaces and
punctuation before a word travel with it), and whatever follows the last timed span comes
at the end of the audio. AgentSession's transcript synchronizer then paces captions by these
times and, on an interruption, cuts the saved transcript at the playback position.
"""

from __future__ import annotations

from collections.abc import Iterable

from livekit.agents.types import TimedString

from tts_rpc.v1 import tts_pb2


class TranscriptAligner:
    """The text sent to the worker, and how much of it has been handed out as timed pieces."""

    def __init__(self) -> None:
        self._text = ""
        self._cursor = 0

    @property
    def text(self) -> str:
        return self._text

    def add_text(self, text: str) -> None:
        """Text as it is sent to the worker (its spans index this, in code points)."""
        self._text += text

    def timed(self, timings: Iterable[tts_pb2.TextTiming]) -> list[TimedString]:
        """The pieces ending at each timing's span, in order; a span already covered (never
        sent by a well-behaved worker) adds nothing."""
        pieces = []
        for timing in timings:
            end = min(timing.text_span.end, len(self._text))
            if end <= self._cursor:
                continue
            pieces.append(
                TimedString(
                    self._text[self._cursor : end],
                    start_time=timing.start_seconds,
                    end_time=timing.end_seconds,
                )
            )
            self._cursor = end
        return pieces

    def rest(self, end_seconds: float) -> list[TimedString]:
        """What no timing covered, once the utterance is over, timed at the end of its audio
        (end_seconds): the transcript stays whole and every piece has a time."""
        if self._cursor >= len(self._text):
            return []
        piece = TimedString(
            self._text[self._cursor :], start_time=end_seconds, end_time=end_seconds
        )
        self._cursor = len(self._text)
        return [piece]
