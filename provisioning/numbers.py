"""Whole numbers and ids read from text a client sent: a path, a query string, a form field.

One parser for every such place, because `str.isdigit` is no test of "a number": it is True for
'²' (which `int` refuses with a ValueError: a 500) and for the Arabic-Indic or fullwidth one
(U+0661, U+FF11), which `int` reads as 1: a second spelling of an id. Only ASCII digits are
read, and no more than a 64-bit column holds, which also keeps `int` off text long enough to
reach its conversion limit."""

from __future__ import annotations

# 18 digits: every such number fits a signed 64-bit column.
MAX_DIGITS = 18
MAX_ID = 10**MAX_DIGITS - 1


def parse_int(text: str, low: int, high: int) -> int | None:
    """The number `text` spells in ASCII digits (leading zeros allowed), if from `low` to
    `high`; else None. Never raises."""
    if not 0 < len(text) <= MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_id(text: str) -> int | None:
    """A row id: a positive number of ASCII digits; else None."""
    return parse_int(text, 1, MAX_ID)
