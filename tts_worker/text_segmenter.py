"""Cuts incremental text into segments the engine can speak while more text arrives.

A segment ends at a sentence end, or at a clause boundary (, ; : and dashes) once it is
long enough, so a long first sentence starts playing after its first clause. Offsets are
in code points of the whole utterance text, so frames can say which text they speak.
"""

from __future__ import annotations

from dataclasses import dataclass

_SENTENCE_END = frozenset(".!?…")
_CLAUSE_END = frozenset(",;:—–")
# Periods after these words rarely end a sentence; splitting there would add a pause.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "no", "approx"}
)


@dataclass(frozen=True)
class Segment:
    """A piece of the utterance text to synthesize in one engine call."""

    text: str
    start: int
    end: int


class TextSegmenter:
    """Incremental segmenter: push text as it arrives, get back complete segments."""

    def __init__(self, min_clause_chars: int = 30, max_segment_chars: int = 250) -> None:
        self._min_clause = min_clause_chars
        self._max_segment = max_segment_chars
        self._buffer = ""
        self._offset = 0  # utterance offset of _buffer[0]
        self._scanned = 0  # positions of _buffer below this were already examined

    def push(self, text: str) -> list[Segment]:
        self._buffer += text
        return self._cut(final=False)

    def flush(self) -> list[Segment]:
        """End of input: everything left becomes the last segment."""
        return self._cut(final=True)

    def _cut(self, final: bool) -> list[Segment]:
        segments: list[Segment] = []
        i = self._scanned
        while i < len(self._buffer):
            # A boundary is confirmed by the whitespace after it; at the end of the
            # buffer wait for more text unless input has ended.
            boundary = self._is_boundary(i, final)
            if boundary is None:
                break
            if boundary:
                segments += self._emit(i + 1)
                i = 0
                continue
            if i >= self._max_segment and self._buffer[i].isspace():
                segments += self._emit(i)
                i = 0
                continue
            i += 1
        self._scanned = i
        if final:
            segments += self._emit(len(self._buffer))
            self._scanned = 0
        return segments

    def _is_boundary(self, i: int, final: bool) -> bool | None:
        char = self._buffer[i]
        if char == "\n":
            return True
        if char not in _SENTENCE_END and char not in _CLAUSE_END:
            return False
        if i + 1 >= len(self._buffer):
            return True if final else None
        if not self._buffer[i + 1].isspace():
            return False
        if char in _CLAUSE_END:
            return len(self._buffer[:i].strip()) >= self._min_clause
        if char == ".":
            words = self._buffer[:i].split()
            return not (words and words[-1].lower().rstrip(".") in _ABBREVIATIONS)
        return True

    def _emit(self, cut: int) -> list[Segment]:
        piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
        start = self._offset
        self._offset += cut
        stripped = piece.strip()
        # Whitespace or punctuation alone makes no sound; skip it rather than ask the engine.
        if not any(c.isalnum() for c in stripped):
            return []
        lead = len(piece) - len(piece.lstrip())
        return [Segment(stripped, start + lead, start + lead + len(stripped))]
