"""Normalized text that remembers where each of its characters came from in the caller's.

Normalization copies most of the text as it is and replaces some spans ("$5" becomes "five
dollars", "**" becomes nothing). Each copied or replaced run is a piece; a span of the
normalized text maps back through the pieces it touches: inside a copied piece character
for character, and a replaced piece as a whole (any part of "five dollars" is "$5").
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class _Piece:
    out_start: int
    src_start: int
    src_end: int
    copied: bool


@dataclass(frozen=True)
class NormalizedText:
    """The text to speak, and the way back to the text the caller sent."""

    text: str
    source: str
    _pieces: tuple[_Piece, ...] = field(repr=False)
    _starts: tuple[int, ...] = field(repr=False)

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the caller's text that normalized text[start:end] speaks."""
        if not self._pieces:
            return 0, 0
        start = max(0, min(start, len(self.text)))
        end = max(start, min(end, len(self.text)))
        first = self._pieces[self._at(start)]
        last = self._pieces[self._at(max(start, end - 1))]
        src_start = first.src_start + (start - first.out_start) if first.copied else first.src_start
        src_end = last.src_start + (end - last.out_start) if last.copied else last.src_end
        if start == end:
            return src_start, src_start
        return src_start, max(src_start, src_end)

    def _at(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._starts, offset) - 1)


class TextBuilder:
    """Collects the pieces of a normalized text, in source order."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._parts: list[str] = []
        self._pieces: list[_Piece] = []
        self._length = 0

    def copy(self, src_start: int, src_end: int) -> None:
        """Take source[src_start:src_end] as it is."""
        if src_end <= src_start:
            return
        last = self._pieces[-1] if self._pieces else None
        if (
            last is not None
            and last.copied
            and last.src_end == src_start
            and last.out_start + (last.src_end - last.src_start) == self._length
        ):
            # Contiguous with the previous copy: one piece, so long texts stay compact.
            self._pieces[-1] = _Piece(last.out_start, last.src_start, src_end, True)
        else:
            self._pieces.append(_Piece(self._length, src_start, src_end, True))
        self._parts.append(self._source[src_start:src_end])
        self._length += src_end - src_start

    def replace(self, text: str, src_start: int, src_end: int) -> None:
        """Say `text` for source[src_start:src_end] (text may be empty: the span is dropped)."""
        if not text:
            return
        self._pieces.append(_Piece(self._length, src_start, src_end, False))
        self._parts.append(text)
        self._length += len(text)

    def last_char(self) -> str:
        """The last character written so far ("" at the start)."""
        for part in reversed(self._parts):
            if part:
                return part[-1]
        return ""

    def build(self) -> NormalizedText:
        return NormalizedText(
            "".join(self._parts),
            self._source,
            tuple(self._pieces),
            tuple(p.out_start for p in self._pieces),
        )
