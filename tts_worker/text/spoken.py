"""Written forms a voice would misread, and how a person says them.

One regular expression finds every candidate in a single left-to-right pass (the
alternatives are tried in priority order, so "$1,234.50" is money before it is a number);
each match is turned into words with num2words. Spans of free text are bounded, so the
pass stays linear in the length of the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache

import regex
from num2words import num2words

from tts_worker.text.mapping import TextBuilder

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH = (
    r"(?P<{name}>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|"
    r"Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
# Symbol -> (singular, plural) of the main unit and of the hundredth.
_CURRENCIES: dict[str, tuple[tuple[str, str], tuple[str, str] | None]] = {
    "$": (("dollar", "dollars"), ("cent", "cents")),
    "£": (("pound", "pounds"), ("penny", "pence")),
    "€": (("euro", "euros"), ("cent", "cents")),
    "¥": (("yen", "yen"), None),
    "₹": (("rupee", "rupees"), ("paisa", "paise")),
    "₩": (("won", "won"), None),
}
_SCALES = {
    "k": "thousand",
    "thousand": "thousand",
    "m": "million",
    "mn": "million",
    "million": "million",
    "b": "billion",
    "bn": "billion",
    "billion": "billion",
    "t": "trillion",
    "trillion": "trillion",
}
# Unit -> (singular, plural).
_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"),
    "mi": ("mile", "miles"),
    "ms": ("millisecond", "milliseconds"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "W": ("watt", "watts"),
    "V": ("volt", "volts"),
}
_UNIT_PATTERN = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True) if u != "°")
_FRACTIONS = {
    (1, 2): "one half",
    (1, 3): "one third",
    (2, 3): "two thirds",
    (1, 4): "one quarter",
    (3, 4): "three quarters",
}
_YEAR_WORDS = "in since by from until till to of year around before after circa during early"
_YEAR_CONTEXT = frozenset(f"{_YEAR_WORDS} late mid summer winter spring autumn fall".split())
_WORDS = {
    "&": "and",
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
    "vs.": "versus",
    "vs": "versus",
    "w/": "with",
    "w/o": "without",
    "%": "percent",
}
_OPERATORS = {
    "+": "plus",
    "×": "times",
    "*": "times",
    "=": "equals",
    "÷": "divided by",
    "-": "minus",
}
_TLDS = "com|org|net|io|ai|dev|app|co|edu|gov|info|me|tv|uk|de|fr|eu|us|ca|au"
# Bounded, and only from the start of a digit run: a megabyte of digits stays linear.
_NUMBER = r"(?<![\d,])(?:\d{1,3}(?:,\d{3}){1,6}|\d{1,30})"

# Alternatives grouped by what they can start with, each group behind a one-character
# lookahead: at most positions only one group is tried (a plain alternation of two dozen
# patterns costs microseconds per character).
_LETTER_LED = [
    r"(?P<url>(?:https?://|www\.)[^\s<>\"'()\[\]{}]{1,2000})",
    r"(?P<email>(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8})",
    rf"(?P<domain>\b[a-z0-9][a-z0-9-]{{0,62}}(?:\.[a-z0-9-]{{1,63}}){{0,4}}"
    rf"\.(?:{_TLDS})\b(?:/[^\s<>\"'()]{{0,500}})?)",
    rf"(?P<mdate>\b{_MONTH.format(name='md_m')}\.?\s(?P<md_d>[12]\d|3[01]|0?[1-9])"
    r"(?:st|nd|rd|th)?\b(?:,?\s(?P<md_y>\d{4})\b)?)",
]
_DIGIT_LED = [
    r"(?P<iso>\b(?P<iso_y>\d{4})-(?P<iso_m>0[1-9]|1[0-2])-(?P<iso_d>0[1-9]|[12]\d|3[01])\b)",
    r"(?P<usdate>\b(?P<us_m>0?[1-9]|1[0-2])/(?P<us_d>0?[1-9]|[12]\d|3[01])/(?P<us_y>\d{4})\b)",
    rf"(?P<dmdate>\b(?P<dm_d>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?\s(?:of\s)?"
    rf"{_MONTH.format(name='dm_m')}\b(?:,?\s(?P<dm_y>\d{{4}})\b)?)",
    r"(?P<clock>\b(?P<c_h>[01]?\d|2[0-3]):(?P<c_m>[0-5]\d)(?::[0-5]\d)?"
    r"(?:\s?(?P<c_ap>[AaPp])(?:\.[Mm]\.|[Mm]\b))?)",
    r"(?P<hour>\b(?P<h_h>1[0-2]|0?[1-9])\s?(?P<h_ap>[AaPp])(?:\.[Mm]\.|[Mm]\b))",
    r"(?P<phone>(?<![\w-])(?:\+?1[ .-])?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])"
    r"|(?<![\w-])\d{3}-\d{4}(?![\w-]))",
    rf"(?P<percent>(?P<p_neg>(?<![\w.])-)?(?P<p_num>(?:{_NUMBER})(?:\.\d{{1,30}})?)\s?%)",
    r"(?P<ordinal>\b(?P<o_n>\d{1,9})(?:st|nd|rd|th)\b)",
    rf"(?P<unit>(?P<u_neg>(?<![\w.])-)?(?P<u_num>(?:{_NUMBER})(?:\.\d{{1,30}})?)\s?"
    rf"(?P<u_unit>{_UNIT_PATTERN}|°(?![CF]))(?![\w/]))",
    r"(?P<always>\b24/7\b)",
    r"(?P<fraction>\b(?P<f_a>\d{1,2})/(?P<f_b>\d{1,2})\b)",
    r"(?P<range>\b(?P<r_a>\d{1,6})(?:[-–]|\s–\s)(?P<r_b>\d{1,6})\b(?![.,]\d))",
    r"(?P<times>\b(?P<t_n>\d{1,6}(?:\.\d{1,3})?)x\b)",
    r"(?P<version>\b\d{1,4}(?:\.\d{1,4}){2,5}\b)",
    rf"(?P<number>(?P<n_neg>(?<![\w.])-)?(?<![\w.])(?P<n_int>{_NUMBER})(?:\.(?P<n_dec>\d{{1,30}}))?"
    r"(?:(?P<n_s>s)|(?P<n_scale>[kK]|M|B|bn|mn))?(?![\w]))",
]
_SYMBOL_LED = [
    rf"(?P<money>(?P<m_neg>-)?(?P<m_sym>[$£€¥₹₩])\s?(?P<m_int>{_NUMBER})(?:\.(?P<m_dec>\d{{1,30}}))?"
    r"(?:\s?(?P<m_scale>[kKmMbBtT]|mn|bn|thousand|million|billion|trillion)\b)?)",
    r"(?P<numsign>(?<![\w#])#(?P<ns_n>\d{1,9})\b)",
    r"(?P<op>(?<=\d)[ \t]?(?P<op_sym>[+×*=÷]|-(?=[ \t]))[ \t]?(?=-?\d))",
    r"(?P<approx>~(?=\d))",
    r"(?P<plus>(?<=\d)\+(?![\d\w]))",
    r"(?P<word>(?<!\w)(?:e\.g\.|i\.e\.|etc\.|vs\.?(?=\s)|w/o?(?=\s))|(?<=\s)&(?=\s)|%)",
    r"(?P<stray>\*+|(?<=\s)[_#~|]+(?=\s))",
]
_PATTERN = re.compile(
    r"(?=[\w.+-])(?:" + "|".join(_LETTER_LED) + ")"
    r"|(?=[-\d(+])(?:" + "|".join(_DIGIT_LED) + ")"
    "|" + "|".join(_SYMBOL_LED)
)


@lru_cache(maxsize=4096)
def cardinal(digits: str) -> str:
    """An integer, as words: "1,234" -> "one thousand two hundred and thirty-four"."""
    value = int(digits.replace(",", ""))
    if len(str(value)) > 15 or (len(digits) > 1 and digits.startswith("0")):
        return _digits(digits)  # serial numbers, codes: read digit by digit
    # num2words separates groups with commas; a comma would make the worker pause there.
    return str(num2words(value)).replace(",", "")


def _digits(digits: str) -> str:
    return " ".join(str(num2words(int(d))) for d in digits if d.isdigit())


def decimal(text: str) -> str:
    """A decimal number: digits after the point read one by one."""
    whole, _, fraction = text.partition(".")
    words = cardinal(whole)
    return f"{words} point {_digits(fraction)}" if fraction else words


@lru_cache(maxsize=1024)
def ordinal(value: int) -> str:
    return str(num2words(value, to="ordinal"))


@lru_cache(maxsize=1024)
def year(value: int) -> str:
    return str(num2words(value, to="year")).replace(",", "")


def _plural_year(value: int) -> str:
    spoken = year(value)
    if spoken.endswith("y"):
        return spoken[:-1] + "ies"  # nineteen ninety -> nineteen nineties
    return spoken + "s"


def _month(name: str) -> str:
    return next(m for m in _MONTHS if m.lower().startswith(name.lower()[:3]))


def _date(month: str, day: int, year_text: str | None, day_first: bool) -> str:
    spoken = f"the {ordinal(day)} of {month}" if day_first else f"{month} {ordinal(day)}"
    if year_text:
        spoken += f" {year(int(year_text))}"
    return spoken


def _clock(hour: int, minute: int, meridiem: str | None) -> str:
    if minute == 0:
        time = cardinal(str(hour)) + ("" if meridiem else " o'clock")
    elif minute < 10:
        time = f"{cardinal(str(hour))} oh {cardinal(str(minute))}"
    else:
        time = f"{cardinal(str(hour))} {cardinal(str(minute))}"
    return f"{time} {meridiem.upper()}M" if meridiem else time


def _period(m: re.Match[str]) -> str:
    """ "p.m." took the period; give it back where it also ended the sentence."""
    if not m[0].endswith("."):
        return ""
    rest = m.string[m.end() : m.end() + 3].lstrip()
    return "." if not rest or rest[0].isupper() else ""


def _money(m: re.Match[str]) -> str:
    (one, many), cents_names = _CURRENCIES[m["m_sym"]]
    whole = int(m["m_int"].replace(",", ""))
    prefix = "minus " if m["m_neg"] else ""
    if m["m_scale"]:
        amount = decimal(m["m_int"].replace(",", "") + ("." + m["m_dec"] if m["m_dec"] else ""))
        return f"{prefix}{amount} {_SCALES[m['m_scale'].lower()]} {many}"
    if m["m_dec"] and len(m["m_dec"]) > 2:  # $0.002 a token: a price below a cent
        return f"{prefix}{decimal(m['m_int'].replace(',', '') + '.' + m['m_dec'])} {many}"
    spoken = f"{cardinal(m['m_int'])} {one if whole == 1 else many}"
    cents = int(m["m_dec"].ljust(2, "0")) if m["m_dec"] else 0
    if cents and cents_names is not None:
        cent_one, cent_many = cents_names
        cent_words = f"{cardinal(str(cents))} {cent_one if cents == 1 else cent_many}"
        spoken = cent_words if whole == 0 else f"{spoken} and {cent_words}"
    elif cents:
        spoken = f"{decimal(m['m_int'].replace(',', '') + '.' + m['m_dec'])} {many}"
    return prefix + spoken


def _unit(m: re.Match[str]) -> str:
    number = m["u_num"]
    one, many = _UNITS[m["u_unit"]]
    value = Decimal(number.replace(",", ""))
    prefix = "minus " if m["u_neg"] else ""
    return f"{prefix}{decimal(number.replace(',', ''))} {one if value == 1 else many}"


def _fraction(m: re.Match[str]) -> str:
    a, b = int(m["f_a"]), int(m["f_b"])
    if (a, b) in _FRACTIONS:
        return _FRACTIONS[(a, b)]
    if b == 0:
        return f"{cardinal(m['f_a'])} slash {cardinal(m['f_b'])}"
    return f"{cardinal(m['f_a'])} over {cardinal(m['f_b'])}"


def _address(text: str) -> str:
    """A domain, path or mailbox as people read it out: dots, slashes and at."""
    text = re.sub(r"^(?:https?://)?(?:www\.)?", "", text).rstrip("/")
    words = []
    for token in re.split(r"([./@:?=&#_-])", text):
        if token in ("", "-"):
            continue
        words.append(
            {
                ".": "dot",
                "/": "slash",
                "@": "at",
                ":": "colon",
                "?": "",
                "=": "equals",
                "&": "and",
                "#": "hash",
                "_": "underscore",
            }.get(token, token)
        )
    return " ".join(w for w in words if w)


def _url(text: str) -> str:
    # The query string and fragment are noise when read aloud.
    return _address(re.split(r"[?#]", text, maxsplit=1)[0])


def _number(m: re.Match[str], before: str) -> str:
    integer, fraction = m["n_int"], m["n_dec"]
    prefix = "minus " if m["n_neg"] else ""
    if fraction is None and "," not in integer and len(integer) == 4:
        value = int(integer)
        context = before.split()[-1].lower() if before.split() else ""
        if m["n_s"] and 1000 <= value <= 2099:
            return prefix + _plural_year(value)  # the 1990s
        context = context.rstrip(",.")
        if 1100 <= value <= 2099 and (
            context in _YEAR_CONTEXT or _QUARTER.fullmatch(context) or _is_month(context)
        ):
            return prefix + year(value)
    spoken = _number_text(integer + ("." + fraction if fraction else ""))
    if m["n_scale"]:
        spoken += " " + _SCALES[m["n_scale"].lower()]
    return prefix + spoken + (" s" if m["n_s"] else "")


_QUARTER = re.compile(r"q[1-4]|h[12]|fy")


def _is_month(word: str) -> bool:
    return len(word) >= 3 and any(m.lower().startswith(word) for m in _MONTHS)


def _percent(m: re.Match[str], before: str) -> str:
    return ("minus " if m["p_neg"] else "") + _number_text(m["p_num"]) + " percent"


# Kind of match -> its spoken form, given the match and up to 40 characters before it.
_SPEAKERS: dict[str, Callable[[re.Match[str], str], str]] = {
    "iso": lambda m, _: _date(
        _MONTHS[int(m["iso_m"]) - 1], int(m["iso_d"]), m["iso_y"], day_first=False
    ),
    "usdate": lambda m, _: _date(
        _MONTHS[int(m["us_m"]) - 1], int(m["us_d"]), m["us_y"], day_first=False
    ),
    "mdate": lambda m, _: _date(_month(m["md_m"]), int(m["md_d"]), m["md_y"], day_first=False),
    "dmdate": lambda m, before: _date(
        _month(m["dm_m"]), int(m["dm_d"]), m["dm_y"], day_first=True
    ).removeprefix("the " if before.lower().endswith("the ") else ""),
    "clock": lambda m, _: _clock(int(m["c_h"]), int(m["c_m"]), m["c_ap"]) + _period(m),
    "hour": lambda m, _: _clock(int(m["h_h"]), 0, m["h_ap"]) + _period(m),
    "phone": lambda m, _: _digits(m[0]),
    "money": lambda m, _: _money(m),
    "percent": _percent,
    "ordinal": lambda m, _: ordinal(int(m["o_n"])),
    "unit": lambda m, _: _unit(m),
    "always": lambda m, _: "twenty-four seven",
    "fraction": lambda m, _: _fraction(m),
    "range": lambda m, _: f"{cardinal(m['r_a'])} to {cardinal(m['r_b'])}",
    "version": lambda m, _: " point ".join(cardinal(p) for p in m[0].split(".")),
    "times": lambda m, _: f"{_number_text(m['t_n'])} times",
    "numsign": lambda m, _: f"number {cardinal(m['ns_n'])}",
    "op": lambda m, _: _OPERATORS[m["op_sym"]],
    "approx": lambda m, _: "about",
    "plus": lambda m, _: "plus",
    "number": _number,
    "word": lambda m, _: _WORDS[m[0].lower()],
    "stray": lambda m, _: "",
}


def _number_text(text: str) -> str:
    integer, _, fraction = text.partition(".")
    spoken = cardinal(integer)
    return f"{spoken} point {_digits(fraction)}" if fraction else spoken


_TRAILING = ".,;:!?)]}'\""
# Characters every rule needs one of; only the tokens around them go through _PATTERN.
_TRIGGER = re.compile(r"[\d$£€¥₹₩@%&~#*_|+=×÷°/]+|://|www\.|\.(?=[A-Za-z])|etc\.|vs\b")
# An emoji as Unicode defines them (UTS #51): a pictograph with its skin tone, variation
# selector and zero-width-joined partners, a flag (two regional indicators), or a keycap.
_EMOJI = regex.compile(
    r"(?:\p{Regional_Indicator}{2}|[0-9#*]\uFE0F?\u20E3"
    r"|\p{Extended_Pictographic}\p{Emoji_Modifier}?\uFE0F?"
    r"(?:\u200D\p{Extended_Pictographic}\p{Emoji_Modifier}?\uFE0F?)*)+"
)
# Pictographs whose text form is a symbol people read out.
_READ_SYMBOLS = frozenset("©®™")
_REACH = 200  # how far a window looks for the edge of a token


def speak(builder: TextBuilder, source: str, start: int, end: int) -> None:
    """Write source[start:end] into builder, with every written form a voice would misread
    replaced by its spoken words, and emoji left out."""
    _without_emoji(builder, source, start, end, _speak_plain)


def drop_emoji(builder: TextBuilder, source: str, start: int, end: int) -> None:
    """Write source[start:end] into builder with emoji left out and nothing else changed
    (for voices whose engine reads numbers in its own language)."""
    _without_emoji(builder, source, start, end, lambda b, s, lo, hi: b.copy(lo, hi))


def _without_emoji(
    builder: TextBuilder,
    source: str,
    start: int,
    end: int,
    plain: Callable[[TextBuilder, str, int, int], None],
) -> None:
    cursor = start
    for found in _EMOJI.finditer(source, start, end):
        e_start, e_end = found.span()
        if found[0] in _READ_SYMBOLS:
            continue
        plain(builder, source, cursor, e_start)
        # An emoji between two words still separates them.
        before = source[e_start - 1] if e_start > 0 else " "
        after = source[e_end] if e_end < len(source) else " "
        builder.replace(" " if before.isalnum() and after.isalnum() else "", e_start, e_end)
        cursor = e_end
    plain(builder, source, cursor, end)


def _windows(source: str, start: int, end: int) -> list[tuple[int, int]]:
    """Stretches of source[start:end] that may hold something to say differently: from the
    token before each trigger to the second token after it, overlapping ones merged."""
    windows: list[tuple[int, int]] = []
    pos = start
    while (trigger := _TRIGGER.search(source, pos, end)) is not None:
        at = trigger.start()
        left = _token_edge(source, _token_edge(source, at, start, -1), start, -1)
        right = at
        for _ in range(3):
            right = _token_edge(source, right, end, 1)
        if right < end:
            right += 1  # the space after: lookaheads see where the last token ends
        if windows and left <= windows[-1][1]:
            windows[-1] = (windows[-1][0], right)
        else:
            windows.append((left, right))
        pos = max(right, trigger.end())
    return windows


def _token_edge(source: str, at: int, limit: int, step: int) -> int:
    """From `at`, across any spaces, then to the far edge of the token there."""
    i, reach = at, _REACH
    if step < 0:
        while i > limit and reach and source[i - 1].isspace():
            i, reach = i - 1, reach - 1
        while i > limit and reach and not source[i - 1].isspace():
            i, reach = i - 1, reach - 1
    else:
        while i < limit and reach and source[i].isspace():
            i, reach = i + 1, reach - 1
        while i < limit and reach and not source[i].isspace():
            i, reach = i + 1, reach - 1
    return i


def _speak_plain(builder: TextBuilder, source: str, start: int, end: int) -> None:
    cursor = start
    for window_start, window_end in _windows(source, start, end):
        cursor = _speak_window(
            builder, source, start, max(cursor, window_start), window_end, cursor
        )
    builder.copy(cursor, end)


def _speak_window(
    builder: TextBuilder, source: str, start: int, window_start: int, end: int, cursor: int
) -> int:
    for m in _PATTERN.finditer(source, window_start, end):
        m_start, m_end = m.start(), m.end()
        if m.lastgroup in ("url", "domain", "email"):
            # A sentence's own punctuation is not part of the address.
            address = m[0].rstrip(_TRAILING)
            m_end = m_start + len(address)
            spoken = _url(address) if m.lastgroup == "url" else _address(address)
        else:
            assert m.lastgroup is not None
            spoken = _SPEAKERS[m.lastgroup](m, source[max(start, m_start - 40) : m_start])
        builder.copy(cursor, m_start)
        if spoken[:1].isalnum() and builder.last_char().isalnum():
            builder.replace(" ", m_start, m_start)  # "10-20%": "twenty percent"
        builder.replace(spoken, m_start, m_end)
        if spoken[-1:].isalnum() and m_end < end and source[m_end].isalnum():
            builder.replace(" ", m_end, m_end)  # "$5each": "five dollars each"
        cursor = m_end
    return cursor
