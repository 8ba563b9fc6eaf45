"""Markdown as a voice should read it: the words stay, the markup goes.

Headings, list items, quotes and table rows keep their text and lose their markers (a
heading without a final mark gets a period, so it is spoken as a sentence of its own);
emphasis, strike-through, inline code and links keep their words; code blocks, rules,
HTML tags, link targets and reference definitions are dropped. Soft line breaks inside a
paragraph become spaces, so a wrapped sentence is not cut in two. The words go on to
`speak()` for numbers, prices, addresses and emoji.

Every pattern is anchored to a line or bounded in length, so the pass is linear in the
text: two megabytes of markdown cost time in proportion, never a blow-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tts_worker.text.mapping import TextBuilder

FENCE = re.compile(r"[ ]{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"[ ]{0,3}#{1,6}(?:[ \t]+|$)")
_HEADING_TAIL = re.compile(r"(?:[ \t]+#+)?[ \t]*$")
_RULE = re.compile(r"[ ]{0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|=+[ \t]*)$")
_QUOTE = re.compile(r"[ ]{0,3}(?:>[ ]?)+")
_ITEM = re.compile(r"[ \t]*(?:[-*+•]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_TABLE_SEPARATOR = re.compile(r"[ \t]*\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?$")
_REFERENCE = re.compile(r"[ ]{0,3}\[[^\]\n]{1,200}\]:[ \t]*\S")
_BLANK_RUN = re.compile(r"(?:\n[ \t]*)*(?=\n)")
_SENTENCE_MARKS = frozenset(".!?:;…。！？")
_BODY = 300  # longest link text or alt text looked for: bounds the regex's search

_URL = r"[^()\[\]\s]{0,2000}"  # a link target: no brackets, so a scan stops at the next one
_TITLE = r'(?:[ \t]+"[^"\n]{0,200}")?'  # [text](url "title")
_INLINE = re.compile(
    "|".join(
        [
            rf"(?P<code>(?P<ticks>`{{1,3}})(?P<code_body>[^`\n]{{1,{4 * _BODY}}})(?P=ticks))",
            rf"(?P<image>!\[(?P<alt>[^\[\]\n]{{0,{_BODY}}})\]\({_URL}{_TITLE}\))",
            rf"(?P<link>\[(?P<link_text>[^\[\]\n]{{1,{_BODY}}})\]"
            rf"(?:\({_URL}{_TITLE}\)|\[[^\[\]\n]{{0,200}}\]))",
            r"(?P<autolink><(?P<target>(?:https?://|mailto:)[^<>\s]{1,2000})>)",
            r"(?P<html></?[A-Za-z][A-Za-z0-9-]{0,30}(?:\s[^<>\n]{0,500})?/?>)",
            # Emphasis markers go wherever they touch a word on one side (CommonMark's
            # flanking rule, without the pairing: an unpaired one is no word either).
            # Underscores inside a word (snake_case) stay; "2 * 3" is for speak().
            r"(?P<stars>\*{1,3}(?=[^\s*])|(?<=[^\s*])\*{1,3})",
            r"(?P<underscores>(?<![\w_])_{1,3}(?=[^\s_])|(?<=[^\s_])_{1,3}(?![\w_]))",
            r"(?P<strike>~~)",
            r"(?P<escape>\\(?P<escaped>[\\`*_{}\[\]()#+\-.!|>~]))",
        ]
    )
)

Speak = Callable[[TextBuilder, str, int, int], None]


@dataclass(frozen=True)
class _Line:
    start: int
    end: int  # the newline (or the end of the text)
    kind: str


def strip_markdown(builder: TextBuilder, source: str, speak: Speak) -> None:
    """Write the spoken words of markdown `source` into builder; `speak` takes the text runs."""
    lines = _classify(source)
    for index, line in enumerate(lines):
        _line(builder, source, line, speak)
        if line.end >= len(source):
            continue
        following = lines[index + 1].kind if index + 1 < len(lines) else ""
        if line.kind in ("dropped", "fence"):
            continue  # the newline went with the line
        if line.kind == "text" and following == "text":
            builder.replace(" ", line.end, line.end + 1)  # a soft wrap, not a new sentence
        else:
            builder.copy(line.end, line.end + 1)


def _classify(source: str) -> list[_Line]:
    lines: list[_Line] = []
    fence: str | None = None
    start = 0
    while start <= len(source):
        end = source.find("\n", start)
        if end < 0:
            end = len(source)
        text = source[start:end]
        opened = FENCE.match(text)
        if fence is not None:
            closes = (
                opened is not None and opened[1][0] == fence[0] and len(opened[1]) >= len(fence)
            )
            kind = "fence" if closes else "dropped"
            if closes:
                fence = None
        elif opened is not None:
            fence, kind = opened[1], "dropped"
        elif not text.strip():
            kind = "blank"
            # A run of blank lines is one line here: a megabyte of newlines stays cheap.
            run = _BLANK_RUN.match(source, end)
            if run is not None and run.end() > end:
                end = run.end() - 1
        elif _RULE.match(text) or _REFERENCE.match(text) or _TABLE_SEPARATOR.match(text):
            kind = "rule"
        elif _HEADING.match(text):
            kind = "heading"
        elif text.lstrip().startswith("|"):
            kind = "table"
        elif _QUOTE.match(text) or _ITEM.match(text):
            kind = "block"
        else:
            kind = "text"
        lines.append(_Line(start, end, kind))
        if end >= len(source):
            break
        start = end + 1
    return lines


def _line(builder: TextBuilder, source: str, line: _Line, speak: Speak) -> None:
    start, end = line.start, line.end
    if line.kind in ("dropped", "fence", "rule"):
        return
    if line.kind == "blank":
        builder.copy(start, end)
        return
    if line.kind == "heading":
        marker = _HEADING.match(source, start, end)
        assert marker is not None
        tail = _HEADING_TAIL.search(source, marker.end(), end)
        body_end = tail.start() if tail is not None else end
        inline(builder, source, marker.end(), body_end, speak)
        if body_end > marker.end() and source[body_end - 1] not in _SENTENCE_MARKS:
            builder.replace(".", body_end, body_end)
        return
    if line.kind == "table":
        _table_row(builder, source, start, end, speak)
        return
    if line.kind == "block":
        quote = _QUOTE.match(source, start, end)
        if quote is not None:
            start = quote.end()
        item = _ITEM.match(source, start, end)
        if item is not None:
            start = item.end()
    inline(builder, source, start, end, speak)


def _table_row(builder: TextBuilder, source: str, start: int, end: int, speak: Speak) -> None:
    cells = [i for i in range(start, end) if source[i] == "|" and source[i - 1 : i] != "\\"]
    bounds = [start, *cells, end]
    written = False
    for left, right in zip(bounds, bounds[1:], strict=False):
        cell_start = left + 1 if left in cells else left
        text = source[cell_start:right]
        if not text.strip():
            continue
        lead = len(text) - len(text.lstrip())
        cell_end = cell_start + len(text.rstrip())
        if written:
            builder.replace(", ", left, left + 1)  # a pause between cells
        inline(builder, source, cell_start + lead, cell_end, speak)
        written = True


def inline(builder: TextBuilder, source: str, start: int, end: int, speak: Speak) -> None:
    """Inline markup in source[start:end]: markers dropped, words kept."""
    cursor = start
    for m in _INLINE.finditer(source, start, end):
        kind = m.lastgroup
        speak(builder, source, cursor, m.start())
        if kind == "code":
            speak(builder, source, m.start("code_body"), m.end("code_body"))
        elif kind == "image":
            speak(builder, source, m.start("alt"), m.end("alt"))
        elif kind == "link":
            inline(builder, source, m.start("link_text"), m.end("link_text"), speak)
        elif kind == "autolink":
            speak(builder, source, m.start("target"), m.end("target"))
        elif kind == "html":
            if m[0].lower().startswith("<br"):
                builder.replace(" ", m.start(), m.end())
        elif kind == "escape":
            builder.replace(m["escaped"], m.start(), m.end())
        cursor = m.end()
    speak(builder, source, cursor, end)
