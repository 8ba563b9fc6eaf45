"""What the listener's words say about a barge-in: only acknowledgements ("yeah", "uh-huh",
"got it"...), which let the agent go on, or anything else, which interrupts it.

The rules read a transcript as a recognizer writes it (capitals, punctuation, hyphens) and
match whole phrases of a per-language list, longest first, so "all right" is one
acknowledgement and "right now" is not. A question mark makes any transcript a question,
and a question always interrupts ("right?" asks; "right." agrees).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ENGLISH_ACKNOWLEDGEMENTS: tuple[str, ...] = (
    "yeah",
    "yeah yeah",
    "yea",
    "yes",
    "yep",
    "yup",
    "ok",
    "okay",
    "right",
    "all right",
    "alright",
    "uh-huh",
    "uh huh",
    "uhuh",
    # Whisper hears a quick "uh-huh" as "uh-uh" as often as not; a listener who means "no"
    # says more than that.
    "uh-uh",
    "mm-hmm",
    "mm hmm",
    "mmhmm",
    "mhm",
    "mm",
    "hmm",
    "hm",
    "uh",
    "um",
    "ah",
    "oh",
    "sure",
    "got it",
    "i see",
    "cool",
    "great",
    "nice",
    "good",
    "fine",
    "exactly",
    "true",
    "indeed",
    "of course",
    "makes sense",
    "sounds good",
    "go on",
    "go ahead",
    "i know",
    "totally",
    "absolutely",
    "perfect",
)
"""English acknowledgements (backchannels): said while listening, they ask nothing."""

DEFAULT_ACKNOWLEDGEMENTS: Mapping[str, Sequence[str]] = {"en": ENGLISH_ACKNOWLEDGEMENTS}

_WORD = re.compile(r"[a-z0-9']+")
# Hums come out with any number of letters ("Mmmm", "Hmmm", "Mhmm"): one spelling each.
_HUMS = (
    (re.compile(r"^m+$"), "mm"),
    (re.compile(r"^h+m+$"), "hmm"),
    (re.compile(r"^m+h+m+$"), "mhm"),
)


def words_of(text: str) -> list[str]:
    """Lower-case words of a transcript: punctuation dropped, hyphenated words split, hums
    spelled one way."""
    words = _WORD.findall(text.lower().replace("-", " "))
    return [next((spelling for hum, spelling in _HUMS if hum.match(w)), w) for w in words]


class Verdict(enum.Enum):
    NOTHING = "nothing"  # no words at all (a cough, a noise, silence)
    ACKNOWLEDGEMENT = "acknowledgement"  # only acknowledgements
    INTERRUPTION = "interruption"  # another word, or a question


@dataclass(frozen=True)
class Heard:
    """What one transcript says about the turn it transcribes."""

    verdict: Verdict
    words: int
    """Words in the transcript (acknowledgements included)."""


class AcknowledgementRules:
    """Classifies transcripts with one language's list of acknowledgements."""

    def __init__(self, phrases: Sequence[str]) -> None:
        self._phrases = {tuple(words_of(p)) for p in phrases if words_of(p)}
        self._longest = max((len(p) for p in self._phrases), default=0)

    def hear(self, text: str) -> Heard:
        words = words_of(text)
        if not words:
            return Heard(Verdict.NOTHING, 0)
        if "?" in text:
            return Heard(Verdict.INTERRUPTION, len(words))
        at = 0
        while at < len(words):
            for size in range(min(self._longest, len(words) - at), 0, -1):
                if tuple(words[at : at + size]) in self._phrases:
                    at += size
                    break
            else:
                return Heard(Verdict.INTERRUPTION, len(words))
        return Heard(Verdict.ACKNOWLEDGEMENT, len(words))


def acknowledgements_for(language: str, lists: Mapping[str, Sequence[str]]) -> Sequence[str]:
    """The list of a language ("en", or "en-US" falling back to "en"); KeyError when there
    is none for it."""
    for key in (language, language.split("-")[0]):
        if key in lists:
            return lists[key]
    raise KeyError(f"no acknowledgement list for language {language!r}")
