"""One utterance's text as the engine should hear it, segment by segment, as it streams in.

The worker cuts incoming text into segments (`text_segmenter.py`, at sentences, clauses and
every line break) and normalizes each one just before the engine speaks it, so the first
clause is not held back for the rest. What a segment alone cannot tell is kept here as the
text arrives: which lines lie inside a fenced code block (dropped: code is not read out,
and the closing fence holds no word, so the segmenter never shows it), and whether a
segment starts its line (only then are `#`, `-`, `>` and `|` block markers).

Offsets are code points of the whole utterance text as the client sent it; a spoken segment
maps any span of its normalized text back there.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from tts_worker.engines.base import WordTime
from tts_worker.text import verbatim
from tts_worker.text.mapping import NormalizedText, TextBuilder
from tts_worker.text.markdown import FENCE, inline, strip_markdown
from tts_worker.text.spoken import drop_emoji, speak
from tts_worker.text_segmenter import Segment

_HEAD_CHARS = 16  # enough of a line to tell a fence: up to 3 spaces and the marker


@dataclass(frozen=True)
class SpokenSegment:
    """A segment's words as the engine gets them, and the way back to the utterance text."""

    normalized: NormalizedText
    offset: int
    """Utterance offset of the segment's first character."""

    @property
    def text(self) -> str:
        return self.normalized.text

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The utterance span that normalized text[start:end] speaks."""
        src_start, src_end = self.normalized.source_span(start, end)
        return self.offset + src_start, self.offset + src_end

    def words(self, words: Iterable[WordTime]) -> list[WordTime]:
        """Engine word times with their spans moved into the utterance text. Words that
        speak one written form ("forty-nine dollars" for "$49.95") become one timing over
        that form, so each piece of the caller's text is timed once, in order."""
        timed: list[WordTime] = []
        for word in words:
            start, end = self.source_span(word.start, word.end)
            if start >= end:
                continue  # nothing of the caller's text (an added pause)
            if timed and start < timed[-1].end:
                last = timed[-1]
                timed[-1] = WordTime(
                    last.start,
                    max(last.end, end),
                    last.start_sample,
                    max(last.end_sample, word.end_sample),
                )
            else:
                timed.append(WordTime(start, end, word.start_sample, word.end_sample))
        return timed


class UtteranceText:
    """Watches an utterance's text as it arrives; turns its segments into spoken words."""

    def __init__(self, *, normalize_text: bool = True, written_forms: bool = True) -> None:
        self._normalize = normalize_text
        self._speak = speak if written_forms else drop_emoji
        self._offset = 0  # characters seen
        self._line_starts = [0]
        self._text_starts: list[int | None] = [None]  # each line's first non-blank offset
        self._head = ""  # the current line's first characters
        self._fence: str | None = None  # the marker of the code block now open
        self._code_from = 0  # where the open block's opening fence line starts
        self._code: list[tuple[int, int]] = []  # closed blocks, fence lines included

    def push(self, text: str) -> None:
        """Text as it arrives, in order (after the worker's own one-for-one cleaning)."""
        pos = 0
        while pos <= len(text):
            newline = text.find("\n", pos)
            end = len(text) if newline < 0 else newline
            piece = text[pos:end]
            if self._text_starts[-1] is None and piece.strip():
                self._text_starts[-1] = self._offset + len(piece) - len(piece.lstrip())
            if len(self._head) < _HEAD_CHARS:
                self._head += piece[: _HEAD_CHARS - len(self._head)]
            self._offset += len(piece)
            if newline < 0:
                return
            self._end_line()
            pos = newline + 1

    def spoken(self, segment: Segment) -> SpokenSegment | None:
        """The words to say for a segment; None when there is nothing to say (code)."""
        if not self._normalize:
            return SpokenSegment(verbatim(segment.text), segment.start)
        if self._in_code(segment.start):
            return None
        builder = TextBuilder(segment.text)
        if self._starts_line(segment.start):
            strip_markdown(builder, segment.text, self._speak)
        else:
            inline(builder, segment.text, 0, len(segment.text), self._speak)
        normalized = builder.build()
        if not any(c.isalnum() for c in normalized.text):
            return None
        return SpokenSegment(normalized, segment.start)

    def _end_line(self) -> None:
        line_start = self._line_starts[-1]
        fence = FENCE.match(self._head)
        if self._fence is None:
            if fence is not None:
                self._fence, self._code_from = fence[1], line_start
        elif (
            fence is not None
            and fence[1][0] == self._fence[0]
            and len(fence[1]) >= len(self._fence)
        ):
            self._code.append((self._code_from, self._offset))
            self._fence = None
        self._offset += 1  # the newline
        self._line_starts.append(self._offset)
        self._text_starts.append(None)
        self._head = ""

    def _in_code(self, offset: int) -> bool:
        if self._fence is not None and offset >= self._code_from:
            return True
        index = bisect.bisect_right(self._code, offset, key=lambda block: block[0]) - 1
        if index >= 0 and self._code[index][0] <= offset < self._code[index][1]:
            return True
        # The line being read opens a block (its segment came before its line break).
        return (
            offset >= self._line_starts[-1]
            and self._fence is None
            and FENCE.match(self._head) is not None
        )

    def _starts_line(self, offset: int) -> bool:
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return self._text_starts[index] == offset
