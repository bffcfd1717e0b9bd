"""Languages of the Manager: French by default, English available. Messages are written in
English in the code and templates; `locale/<lang>/LC_MESSAGES/manager.po` translates them. The
catalogs are read (compiled) when the application starts, so no build step is needed."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("fr", "en")
DEFAULT = "fr"
DOMAIN = "manager"


class PoError(ValueError):
    """A catalog that cannot be read: the message names the file and line."""


def parse_po(text: str, name: str = "manager.po") -> dict[str, str]:
    """msgid -> msgstr of a gettext catalog (no plurals or contexts: the Manager needs none).
    Untranslated (empty) and fuzzy entries are left out, as msgfmt does."""
    messages: dict[str, str] = {}
    entry: dict[str, str] = {}
    current: str | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal entry, fuzzy, current
        msgid, msgstr = entry.get("msgid"), entry.get("msgstr")
        if msgid and msgstr and not fuzzy:
            messages[msgid] = msgstr
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
        if keyword in ("msgid", "msgstr"):
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
    return messages


@dataclass(frozen=True)
class Translations:
    language: str
    messages: Mapping[str, str]

    def gettext(self, message: str, **values: Any) -> str:
        text = self.messages.get(message, message)
        return text % values if values else text


Gettext = Callable[..., str]


def load_translations(locale_dir: Path = LOCALE_DIR) -> dict[str, Translations]:
    found = {}
    for language in LANGUAGES:
        path = locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        messages = parse_po(path.read_text(encoding="utf-8"), str(path)) if path.exists() else {}
        found[language] = Translations(language, messages)
    return found


def pick_language(cookie: str | None) -> str:
    """The language chosen with the switch (a cookie), else French."""
    return cookie if cookie in LANGUAGES else DEFAULT
