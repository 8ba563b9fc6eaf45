"""Word times from phoneme durations: which samples of a chunk speak which word of the text.

An aligned Piper voice reports how many samples each phoneme took. espeak-ng separates the
words of its phoneme string with spaces, so the spoken words of a sentence are the runs of
phonemes between spaces and punctuation. Matching them to the words of the text needs the
number of phoneme words each text word becomes ("3.14" is four, "Dr." one): the caller
phonemizes each text word alone to learn it. When the counts add up, every text word gets
exactly its own phonemes' time; when they do not (espeak sometimes runs two words into
one), words share the phonemes in proportion to their own phoneme counts.

Nothing here imports Piper: it works on plain phoneme strings and sample counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Phoneme-string characters that are not sounds: word gaps, clause and sentence
# punctuation espeak keeps, and Piper's sentence begin/end markers.
_SILENT = frozenset(" \t\n.,;:!?¡¿—–-…\"'«»“”()[]^$_")
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class TokenShape:
    """What one text word becomes when phonemized on its own."""

    words: int
    """Phoneme words (0 for punctuation, 4 for "3.14")."""
    phonemes: int
    """Sounding phonemes, the weight when counts do not add up."""


@dataclass(frozen=True)
class SpokenWord:
    """A run of sounding phonemes, as indices into one sentence's phoneme list."""

    first: int
    last: int


@dataclass(frozen=True)
class Placement:
    """Where a text word is spoken: phoneme indices in one sentence."""

    start: int
    """Code point offsets of the word in the text."""
    end: int
    sentence: int
    first: int
    last: int


def text_tokens(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated tokens that hold a letter or digit, as (start, end) offsets."""
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text) if any(c.isalnum() for c in m[0])]


def spoken_words(phonemes: Sequence[str]) -> list[SpokenWord]:
    """The runs of sounding phonemes between word gaps and punctuation."""
    words: list[SpokenWord] = []
    first: int | None = None
    for index, phoneme in enumerate(phonemes):
        if phoneme in _SILENT or phoneme.isspace():
            if first is not None:
                words.append(SpokenWord(first, index - 1))
                first = None
        elif first is None:
            first = index
    if first is not None:
        words.append(SpokenWord(first, len(phonemes) - 1))
    return words


def shape_of(phonemes: Sequence[str]) -> TokenShape:
    words = spoken_words(phonemes)
    return TokenShape(len(words), sum(w.last - w.first + 1 for w in words))


def place_words(
    tokens: Sequence[tuple[int, int]],
    shapes: Sequence[TokenShape],
    sentences: Sequence[Sequence[str]],
) -> list[Placement]:
    """Place each text token on the phonemes of the sentences that speak it."""
    spoken = [(index, word) for index, s in enumerate(sentences) for word in spoken_words(s)]
    wanted = sum(shape.words for shape in shapes)
    if wanted == len(spoken):
        placements: list[Placement] = []
        cursor = 0
        for (start, end), shape in zip(tokens, shapes, strict=True):
            if shape.words == 0:
                continue
            first_sentence, first_word = spoken[cursor]
            last_sentence, last_word = spoken[cursor + shape.words - 1]
            # A token never straddles sentences in practice; if it did, keep its first one.
            last = last_word.last if last_sentence == first_sentence else first_word.last
            placements.append(Placement(start, end, first_sentence, first_word.first, last))
            cursor += shape.words
        return placements
    return _place_in_proportion(tokens, shapes, spoken)


def _place_in_proportion(
    tokens: Sequence[tuple[int, int]],
    shapes: Sequence[TokenShape],
    spoken: Sequence[tuple[int, SpokenWord]],
) -> list[Placement]:
    phones = [
        (sentence, index) for sentence, word in spoken for index in range(word.first, word.last + 1)
    ]
    weighted = [(span, shape) for span, shape in zip(tokens, shapes, strict=True) if shape.words]
    total = sum(shape.phonemes for _, shape in weighted)
    if not phones or not total:
        return []
    placements: list[Placement] = []
    done = 0
    for (start, end), shape in weighted:
        lo = min(len(phones) - 1, done * len(phones) // total)
        done += shape.phonemes
        hi = max(lo, min(len(phones), done * len(phones) // total) - 1)
        sentence, first = phones[lo]
        last_sentence, last = phones[hi]
        if last_sentence != sentence:
            last = max(i for s, i in phones[lo : hi + 1] if s == sentence)
        placements.append(Placement(start, end, sentence, first, last))
    return placements


def sample_offsets(phoneme_samples: Sequence[int]) -> list[int]:
    """Where each phoneme starts, in samples, plus the end of the last one."""
    offsets = [0]
    for samples in phoneme_samples:
        offsets.append(offsets[-1] + samples)
    return offsets
