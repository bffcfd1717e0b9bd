"""How the Manager writes values for its reader: dates in the server's time zone, money,
distances and numbers by Babel's locale data (CLDR: "9,99 €" and "0,2 km" in French, with
non-breaking spaces so "€" never starts a line alone), phone numbers as people write them, MAC
addresses with separators. The data keeps its own forms (E.164, bare MACs, cents, UTC)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from babel.units import format_unit

# The Manager's languages as Babel locales: English with European conventions (day first,
# 24-hour clock), as the customers are in Europe.
LOCALES = {"fr": "fr_FR", "en": "en_GB"}
# +33 and nine digits, the first not 0: a French number, written "01 23 45 67 01" at home.
_FRENCH = re.compile(r"\+33([1-9])([0-9]{8})")
_MAC = re.compile(r"[0-9a-fA-F]{12}")


class Formats:
    """Dates in the server's time zone and everything else in the reader's language."""

    def __init__(self, lang: str, timezone: str) -> None:
        self.lang = lang
        self.locale = LOCALES.get(lang, LOCALES["fr"])
        self.zone = ZoneInfo(timezone)

    def when(self, value: datetime | None) -> str:
        if value is None:
            return "—"
        return format_datetime(value.astimezone(self.zone), "short", locale=self.locale)

    def number(self, value: float, digits: int = 1) -> str:
        pattern = "#,##0." + "0" * digits if digits else "#,##0"
        return format_decimal(value, format=pattern, locale=self.locale)

    def money(self, cents: int) -> str:
        return format_currency(Decimal(cents) / 100, "EUR", locale=self.locale)

    def distance(self, metres: int) -> str:
        """Kilometres with one decimal, as on the map: "0,2 km"."""
        return format_unit(
            metres / 1000, "length-kilometer", length="short", format="#,##0.0",
            locale=self.locale,
        )  # fmt: skip

    def phone(self, number: str | None) -> str:
        """A French number as French customers write it ("01 23 45 67 01"; "+33 1 23 45 67 01"
        for an English reader); any other number as it is stored (E.164)."""
        if not number:
            return "—"
        found = _FRENCH.fullmatch(number)
        if found is None:
            return number
        first, rest = found.groups()
        pairs = " ".join(rest[i : i + 2] for i in range(0, 8, 2))
        return f"0{first} {pairs}" if self.lang == "fr" else f"+33 {first} {pairs}"

    def mac(self, mac: str | None) -> str:
        """As printed on a phone's label: "00:15:65:12:34:56"."""
        if not mac:
            return "—"
        if not _MAC.fullmatch(mac):
            return mac
        upper = mac.upper()
        return ":".join(upper[i : i + 2] for i in range(0, 12, 2))
