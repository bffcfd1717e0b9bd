"""Languages of the Manager: French by default, English available. Messages are written in
English in the code and templates; `locale/<lang>/LC_MESSAGES/manager.po` translates them. The
catalogs are read (compiled) when the application starts, so no build step is needed. Plurals
follow each language's rule from Babel's locale data (French: 0 and 1 singular)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel import Locale

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("fr", "en")
DEFAULT = "fr"
DOMAIN = "manager"


class PoError(ValueError):
    """A catalog that cannot be read: the message names the file and line."""


@dataclass(frozen=True)
class Catalog:
    """A parsed catalog: msgid -> msgstr, and for plurals singular msgid -> (singular, plural)
    translations (msgstr[0], msgstr[1]; no contexts: the Manager needs none)."""

    messages: dict[str, str]
    plurals: dict[str, tuple[str, str]]


def parse_po(text: str, name: str = "manager.po") -> dict[str, str]:
    """msgid -> msgstr of a gettext catalog, plurals left out (`parse_catalog` has them)."""
    return parse_catalog(text, name).messages


def parse_catalog(text: str, name: str = "manager.po") -> Catalog:
    """A gettext catalog. Untranslated (empty) and fuzzy entries are left out, as msgfmt
    does."""
    messages: dict[str, str] = {}
    plurals: dict[str, tuple[str, str]] = {}
    entry: dict[str, str] = {}
    current: str | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal entry, fuzzy, current
        msgid, msgstr = entry.get("msgid"), entry.get("msgstr")
        one, other = entry.get("msgstr[0]"), entry.get("msgstr[1]")
        if msgid and msgstr and not fuzzy:
            messages[msgid] = msgstr
        if msgid and entry.get("msgid_plural") and one and other and not fuzzy:
            plurals[msgid] = (one, other)
        entry, fuzzy, current = {}, False, None

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgid", "msgstr", "msgid_plural", "msgstr[0]", "msgstr[1]"):
            if keyword == "msgid" and "msgid" in entry:
                flush()
            current = keyword
            line = rest.strip()
        elif not line.startswith('"') or current is None:
            raise PoError(f"{name}:{number}: unexpected {line[:30]!r}")
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            raise PoError(f"{name}:{number}: not a quoted string") from None
        if not isinstance(value, str):
            raise PoError(f"{name}:{number}: not a quoted string")
        entry[current] = entry.get(current, "") + value
    flush()
    return Catalog(messages, plurals)


@dataclass(frozen=True)
class Translations:
    language: str
    messages: Mapping[str, str]
    plurals: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def gettext(self, message: str, **values: Any) -> str:
        text = self.messages.get(message, message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """The form for `n` by the language's rule; `n` is among the values as `%(n)s`."""
        one = Locale.parse(self.language).plural_form(n) == "one"
        forms = self.plurals.get(singular, (singular, plural))
        return (forms[0] if one else forms[1]) % {"n": n, **values}


Gettext = Callable[..., str]


def load_translations(locale_dir: Path = LOCALE_DIR) -> dict[str, Translations]:
    found = {}
    for language in LANGUAGES:
        path = locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        catalog = (
            parse_catalog(path.read_text(encoding="utf-8"), str(path))
            if path.exists()
            else Catalog({}, {})
        )
        found[language] = Translations(language, catalog.messages, catalog.plurals)
    return found


def pick_language(cookie: str | None) -> str:
    """The language chosen with the switch (a cookie), else French."""
    return cookie if cookie in LANGUAGES else DEFAULT
