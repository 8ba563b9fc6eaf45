"""Text as an LLM writes it, made ready for a voice: markdown, emoji, numbers, prices, times,
dates, units, addresses, each said the way a person would, with a map back to the
caller's own text so timings and spans point at what the caller sent.

Why not a text-normalization library: wetext (WeTextProcessing's English grammar) reads
"$49.95" as "forty nine point nine five dollars", spells "**" out as "asterisk", and takes
about 0.6 ms per character; NeMo's grammars need a minute to compile and 50-150 ms per
sentence; neither maps its output back to the input. num2words does the part a library
does well, numbers as words; CJK text is left to the engines' own frontends (CosyVoice
normalizes Chinese with WeTextProcessing itself).
"""

from __future__ import annotations

from orchestrator.synthesis.text.mapping import NormalizedText, TextBuilder
from orchestrator.synthesis.text.markdown import strip_markdown
from orchestrator.synthesis.text.spoken import speak

__all__ = ["NormalizedText", "normalize", "verbatim"]


def normalize(text: str) -> NormalizedText:
    """The words to speak for `text`, markdown and written forms resolved."""
    builder = TextBuilder(text)
    strip_markdown(builder, text, speak)
    return builder.build()


def verbatim(text: str) -> NormalizedText:
    """`text` as it is (normalization turned off), with the same interface."""
    builder = TextBuilder(text)
    builder.copy(0, len(text))
    return builder.build()
