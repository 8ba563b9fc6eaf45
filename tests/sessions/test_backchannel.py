"""Which transcripts are only acknowledgements: whole phrases of the language's list as a
recognizer writes them (capitals, punctuation, hyphens, hums of any length); any other
word, or a question, interrupts."""

from __future__ import annotations

import pytest

from orchestrator.metrics.catalogue import BARGEIN_REASONS
from orchestrator.sessions.backchannel import (
    DEFAULT_ACKNOWLEDGEMENTS,
    ENGLISH_ACKNOWLEDGEMENTS,
    AcknowledgementRules,
    Heard,
    Verdict,
    acknowledgements_for,
    words_of,
)
from orchestrator.sessions.bargein import Reason

RULES = AcknowledgementRules(ENGLISH_ACKNOWLEDGEMENTS)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Yeah.", 1),
        ("Okay, sure.", 2),
        ("Uh-huh.", 2),
        ("Mm-hmm.", 2),
        ("Mmmmmm", 1),
        ("Mm-m-m", 3),
        ("Hmmm.", 1),
        ("All right.", 2),
        ("Got it!", 2),
        ("Yeah, yeah, I see.", 4),
    ],
)
def test_acknowledgements_only(text: str, words: int) -> None:
    assert RULES.hear(text) == Heard(Verdict.ACKNOWLEDGEMENT, words)


@pytest.mark.parametrize(
    "text",
    [
        "Wait.",
        "Stop",
        "right now",  # "right" alone agrees; "right now" is not on the list
        "Yeah, but the harbour branch?",
        "Right?",  # a question asks, whatever its words
        "Okay?",
        "Sure, but wait",
        "you",  # what Whisper makes of a noise it took for speech: it does interrupt
    ],
)
def test_any_other_word_or_a_question_interrupts(text: str) -> None:
    assert RULES.hear(text).verdict is Verdict.INTERRUPTION


def test_no_words_is_nothing() -> None:
    assert RULES.hear("") == Heard(Verdict.NOTHING, 0)
    assert RULES.hear(" ... ") == Heard(Verdict.NOTHING, 0)


def test_words_are_lower_case_without_punctuation() -> None:
    assert words_of("Uh-huh. I'm here, OK?") == ["uh", "huh", "i'm", "here", "ok"]


def test_lists_are_per_language_with_a_region_falling_back() -> None:
    lists = {**DEFAULT_ACKNOWLEDGEMENTS, "de": ["ja", "genau"]}
    assert acknowledgements_for("en-GB", lists) is ENGLISH_ACKNOWLEDGEMENTS
    german = AcknowledgementRules(acknowledgements_for("de", lists))
    assert german.hear("Ja, genau.").verdict is Verdict.ACKNOWLEDGEMENT
    assert german.hear("Yeah.").verdict is Verdict.INTERRUPTION
    with pytest.raises(KeyError):
        acknowledgements_for("fr", lists)


def test_the_metric_catalogue_names_every_rule() -> None:
    assert {reason for _, reason in BARGEIN_REASONS} == {r.value for r in Reason}
