"""The segmenter cuts at sentences and long clauses, incrementally, with exact offsets."""

from __future__ import annotations

from tts_worker.text_segmenter import TextSegmenter

TEXT = (
    "Hello there. Dr. Smith walked all the way to the market, and he bought apples, "
    "pears and plums; then he left! Why? Pi is 3.14 and that is all"
)


def segment(text: str, step: int, **kwargs: int) -> list[str]:
    segmenter = TextSegmenter(**kwargs)
    pieces = []
    for i in range(0, len(text), step):
        pieces += segmenter.push(text[i : i + step])
    pieces += segmenter.flush()
    for piece in pieces:
        assert text[piece.start : piece.end] == piece.text
    return [p.text for p in pieces]


def test_same_segments_whatever_the_chunking() -> None:
    """Token-by-token input gives the same segments as the whole text at once."""
    expected = [
        "Hello there.",
        "Dr. Smith walked all the way to the market,",
        "and he bought apples, pears and plums;",
        "then he left!",
        "Why?",
        "Pi is 3.14 and that is all",
    ]
    for step in (1, 3, 7, len(TEXT)):
        assert segment(TEXT, step) == expected


def test_short_clauses_are_not_split() -> None:
    assert segment("Yes, I agree, let us go.", 4) == ["Yes, I agree, let us go."]


def test_long_text_without_punctuation_splits_at_a_space() -> None:
    words = " ".join(["word"] * 100)
    pieces = segment(words, 5, max_segment_chars=60)
    assert all(len(p) <= 60 + len(" word") for p in pieces)  # the first space past the limit
    assert " ".join(pieces) == words


def test_a_segment_is_only_emitted_once_confirmed() -> None:
    """A period at the end of the buffer may be '3.' of '3.5': wait for the next character."""
    segmenter = TextSegmenter()
    assert segmenter.push("It costs 3.") == []
    assert [s.text for s in segmenter.push("5 dollars. Next")] == ["It costs 3.5 dollars."]
    assert [s.text for s in segmenter.flush()] == ["Next"]


def test_punctuation_only_makes_no_segment() -> None:
    assert segment(" ... !? ", 2) == []
