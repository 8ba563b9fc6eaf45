"""Cuts incremental text into segments the engine can speak while more text arrives.

A segment ends at a sentence end, or at a clause boundary (, ; : and dashes) once it is
long enough, so a long first sentence starts playing after its first clause. Offsets are
in code points of the whole utterance text, so frames can say which text they speak.

Chinese and Japanese put no spaces between words and have their own full-width
punctuation (。！？ end sentences, ，、；： end clauses). Those marks are unambiguous, so
they need no space after them to count, and a closing quote or bracket right after one
stays with its sentence. Lengths are weighed by how long text takes to say: one CJK
character counts as `CJK_CHAR_WEIGHT` Latin ones (Mandarin is read at about four to five
characters a second, English at fifteen or so), so a Chinese clause is cut as soon as an
English clause of the same spoken length would be. Text with neither spaces nor
punctuation is cut between two CJK characters past the length limit.

The first segment of an utterance is shorter, so its audio starts after a few words: it
ends at the first natural break once it holds `first_segment_words` words (a CJK character
counts as one): any clause mark, or a space before a word that opens a phrase ("and",
"because", "with"...), unless the sentence is known to end within a few words anyway.
`split_segment` cuts a segment further, at the best break within a length, for the
scheduler (tts_worker/scheduler.py) when a chunk must stay short.
"""

from __future__ import annotations

from dataclasses import dataclass

_SENTENCE_END = frozenset(".!?…")
_CLAUSE_END = frozenset(",;:—–")
_CJK_SENTENCE_END = frozenset("。！？｡")
_CJK_CLAUSE_END = frozenset("，、；：､")
# Closing quotes and brackets that belong to the sentence a CJK mark just ended.
_CJK_CLOSERS = frozenset("」』”’）》】〕〉〗〙〛\"')")
# Periods after these words rarely end a sentence; splitting there would add a pause.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "no", "approx"}
)
CJK_CHAR_WEIGHT = 4
# Words that open a clause: a pause before them sounds natural, so a short first segment
# (or a chunk cut under load) may end just before one. Prepositions are not listed: a piece
# that starts with "by" or "past" loses it to the listener ("by Thursday" is heard as "bye
# Thursday" when it begins an engine call), and "of" and "to" bind too tightly anyway.
PHRASE_OPENERS = frozenset(
    {
        "and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while",
        "whereas", "if", "unless", "until", "when", "whenever", "where", "wherever", "which",
        "who", "whom", "whose", "since", "before", "after", "then",
    }
)  # fmt: skip


def is_cjk(char: str) -> bool:
    """A Han, kana or Hangul character (written without spaces between words)."""
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3134F  # CJK extensions B-G
    )


def _weight(char: str) -> int:
    return CJK_CHAR_WEIGHT if is_cjk(char) else 1


@dataclass(frozen=True)
class Segment:
    """A piece of the utterance text to synthesize in one engine call."""

    text: str
    start: int
    end: int


class TextSegmenter:
    """Incremental segmenter: push text as it arrives, get back complete segments."""

    def __init__(
        self, min_clause_chars: int = 30, max_segment_chars: int = 250, first_segment_words: int = 0
    ) -> None:
        """first_segment_words: the first segment ends at the first natural break after this
        many words; 0 treats it like any other."""
        self._min_clause = min_clause_chars
        self._max_segment = max_segment_chars
        self._first_words = first_segment_words
        self._first = first_segment_words > 0  # the first segment is still to come
        self._buffer = ""
        self._offset = 0  # utterance offset of _buffer[0]
        self._scanned = 0  # positions of _buffer below this were already examined
        self._scanned_weight = 0  # spoken length of _buffer[: _scanned]

    def push(self, text: str) -> list[Segment]:
        self._buffer += text
        return self._cut(final=False)

    def flush(self) -> list[Segment]:
        """End of input: everything left becomes the last segment."""
        return self._cut(final=True)

    def _cut(self, final: bool) -> list[Segment]:
        segments: list[Segment] = []
        i, weight = self._scanned, self._scanned_weight
        while i < len(self._buffer):
            # A boundary is confirmed by what follows it; at the end of the buffer wait
            # for more text unless input has ended.
            boundary = self._is_boundary(i, final, weight)
            if boundary is None:
                break
            if boundary:
                segments += self._emit(i + 1)
                i, weight = 0, 0
                continue
            char = self._buffer[i]
            if self._first and char.isspace():
                opener = self._before_opener(i, final)
                if opener is None:
                    break
                if opener:
                    segments += self._emit(i)
                    i, weight = 0, 0
                    continue
            if weight >= self._max_segment and (char.isspace() or (is_cjk(char) and i > 0)):
                segments += self._emit(i)
                i, weight = 0, 0
                continue
            if weight or not char.isspace():  # leading whitespace says nothing
                weight += _weight(char)
            i += 1
        self._scanned, self._scanned_weight = i, weight
        if final:
            segments += self._emit(len(self._buffer))
            self._scanned, self._scanned_weight = 0, 0
        return segments

    def _is_boundary(self, i: int, final: bool, weight: int) -> bool | None:
        """Whether a segment ends after position i; None: cannot tell until more text."""
        char = self._buffer[i]
        if char == "\n":
            return True
        if char in _CJK_SENTENCE_END or char in _CJK_CLAUSE_END:
            return self._cjk_boundary(i, final, weight, sentence=char in _CJK_SENTENCE_END)
        if char in _CJK_CLOSERS and i > 0:
            # A closer right after a CJK mark: the boundary that mark deferred to it.
            j = i - 1
            while j > 0 and self._buffer[j] in _CJK_CLOSERS:
                j -= 1
            mark = self._buffer[j]
            if mark in _CJK_SENTENCE_END or mark in _CJK_CLAUSE_END:
                return self._cjk_boundary(i, final, weight, sentence=mark in _CJK_SENTENCE_END)
        if char not in _SENTENCE_END and char not in _CLAUSE_END:
            return False
        if i + 1 >= len(self._buffer):
            return True if final else None
        following = self._buffer[i + 1]
        # "3.14" and "e.g." stay whole: a Latin mark needs a space (or CJK text) after it.
        if not (following.isspace() or is_cjk(following)):
            return False
        if char in _CLAUSE_END:
            if char == "," and i > 0 and self._buffer[i - 1].isdigit():
                # "Jan 5, 2024" or "1, 2, 3": cut there, the year would be read as a number.
                if i + 2 >= len(self._buffer):
                    if not final:
                        return None
                elif self._buffer[i + 2].isdigit():
                    return False
            return self._long_enough(weight, i)
        if char == ".":
            words = self._buffer[:i].split()
            return not (words and words[-1].lower().rstrip(".") in _ABBREVIATIONS)
        return True

    def _cjk_boundary(self, i: int, final: bool, weight: int, sentence: bool) -> bool | None:
        if i + 1 >= len(self._buffer):
            if not final:
                return None  # a closing quote may follow
        elif self._buffer[i + 1] in _CJK_CLOSERS:
            return False  # the boundary moves onto the closer
        return True if sentence else self._long_enough(weight, i)

    def _long_enough(self, weight: int, i: int) -> bool:
        """Whether a clause mark at i ends the segment."""
        if self._first:
            # A clause mark is the first segment's natural break once it holds a few words.
            return count_words(self._buffer[: i + 1]) >= self._first_words
        return weight >= self._min_clause

    def _before_opener(self, i: int, final: bool) -> bool | None:
        """Whether the first segment ends at the space at i, before a phrase opener; None:
        cannot tell until more text arrives."""
        if i == 0 or self._buffer[i - 1].isspace():
            return False
        rest = self._buffer[i:]
        words = rest.split()
        if not words or (len(words) == 1 and not final and not rest[-1].isspace()):
            return None if not final else False  # the next word may not be complete yet
        if words[0].lower().strip("\"'([") not in PHRASE_OPENERS:
            return False
        if count_words(self._buffer[:i]) < self._first_words:
            return False
        # A sentence that ends within a few words anyway stays whole: "Sure, I can help
        # with that." is not worth a break before "with that."
        return not _ends_soon(rest, self._first_words)

    def _emit(self, cut: int) -> list[Segment]:
        piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
        start = self._offset
        self._offset += cut
        stripped = piece.strip()
        # Whitespace or punctuation alone makes no sound; skip it rather than ask the engine.
        if not any(c.isalnum() for c in stripped):
            return []
        self._first = False
        lead = len(piece) - len(piece.lstrip())
        return [Segment(stripped, start + lead, start + lead + len(stripped))]


def count_words(text: str) -> int:
    """Spoken words: space-separated words, each CJK character counting as one."""
    words = 0
    for token in text.split():
        cjk = sum(1 for c in token if is_cjk(c))
        latin = any(c.isalnum() and not is_cjk(c) for c in token)
        words += cjk + int(latin)
    return words


def _ends_soon(rest: str, words: int) -> bool:
    """Whether a sentence end comes within `words` words of the start of rest."""
    for k, token in enumerate(rest.split()):
        if k >= words:
            return False
        if token[-1] in _SENTENCE_END or token[-1] in _CJK_SENTENCE_END:
            return True
    return False


def split_segment(
    segment: Segment, max_chars: int, min_words: int
) -> tuple[Segment, Segment | None]:
    """Cut a segment to at most max_chars characters at its best break: the last clause
    mark, else the last space before a phrase opener, else the last space; never leaving
    fewer than min_words words on either side. The whole segment (and None) when it is
    short enough or has no such break."""
    text = segment.text
    if len(text) <= max_chars:
        return segment, None
    marks: list[int] = []  # cut after these positions (clause marks)
    openers: list[int] = []  # cut at these spaces (before a phrase opener)
    spaces: list[int] = []
    for i, char in enumerate(text[: max_chars + 1]):
        if not char.isspace() or i == 0 or text[i - 1].isspace():
            continue
        before, after = text[:i], text[i:]
        if count_words(before) < min_words or count_words(after) < min_words:
            continue
        if text[i - 1] in _CLAUSE_END or text[i - 1] in _CJK_CLAUSE_END:
            marks.append(i)
        elif after.split()[0].lower().strip("\"'([") in PHRASE_OPENERS:
            openers.append(i)
        else:
            spaces.append(i)
    for found in (marks, openers, spaces):
        if found:
            return _cut_at(segment, found[-1])
    return segment, None


def _cut_at(segment: Segment, i: int) -> tuple[Segment, Segment]:
    text = segment.text
    head = text[:i].rstrip()
    tail_start = i + (len(text[i:]) - len(text[i:].lstrip()))
    return (
        Segment(head, segment.start, segment.start + len(head)),
        Segment(text[tail_start:], segment.start + tail_start, segment.end),
    )
