"""Text as an LLM writes it, made ready for a voice: markdown, emoji, numbers, prices, times,
dates, units, addresses, each said the way a person would, with a map back to the
caller's own text so timings and spans point at what the caller sent.

The worker normalizes each segment just before the engine speaks it (`segments.py`), so
every client gets it (HTTP, sessions, the LiveKit plugin) and every span the worker reports
still indexes the text the client sent. Numbers and the like are spelled out for English
voices only; for others markdown and emoji go and the rest is left to the engine's own
frontend (CosyVoice normalizes Chinese with WeTextProcessing itself).

Why not a text-normalization library: wetext (WeTextProcessing's English grammar) reads
"$49.95" as "forty nine point nine five dollars", spells "**" out as "asterisk", and takes
about 0.6 ms per character; NeMo's grammars need a minute to compile and 50-150 ms per
sentence; neither maps its output back to the input. num2words does the part a library
does well, numbers as words.
"""

from __future__ import annotations

from tts_worker.text.mapping import NormalizedText, TextBuilder
from tts_worker.text.markdown import strip_markdown
from tts_worker.text.spoken import drop_emoji, speak

__all__ = ["NormalizedText", "normalize", "verbatim"]


def normalize(text: str, *, written_forms: bool = True) -> NormalizedText:
    """The words to speak for `text`: markdown and emoji resolved, and with `written_forms`
    numbers, prices, dates, units and addresses spelled out (English)."""
    builder = TextBuilder(text)
    strip_markdown(builder, text, speak if written_forms else drop_emoji)
    return builder.build()


def verbatim(text: str) -> NormalizedText:
    """`text` as it is (normalization turned off), with the same interface."""
    builder = TextBuilder(text)
    builder.copy(0, len(text))
    return builder.build()
