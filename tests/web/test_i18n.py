"""The Manager's languages: every message of the pages has its French translation, the
catalogs parse, and formats follow the language."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from provisioning.db.models import DEVICE_STATES, ORDER_STATES, RETURN_STATES
from provisioning.web import errors, pages
from provisioning.web.i18n import PoError, load_translations, parse_po

WEB = Path(pages.__file__).resolve().parent
_CALL = re.compile(r"""_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_PY = re.compile(r"""gettext\(\s*request,\s*("(?:[^"\\]|\\.)*")""")


def messages() -> set[str]:
    found: set[str] = set()
    for path in WEB.rglob("*.html"):
        found |= {ast.literal_eval(m) for m in _CALL.findall(path.read_text())}
    for path in WEB.glob("*.py"):
        found |= {ast.literal_eval(m) for m in _PY.findall(path.read_text())}
    found |= set(pages._HEADLINES.values()) | set(pages._FIELD_HEADLINES.values())
    found |= set(errors.TITLES.values()) | {
        "Please check what you entered.",
        "This cannot be done.",
    }
    # States are shown through _(state).
    found |= set(ORDER_STATES) | set(RETURN_STATES) | {"pending", "notified", "applied", "overdue"}
    return found | set(DEVICE_STATES)


def test_every_message_has_its_french_translation() -> None:
    french = load_translations()["fr"].messages
    missing = sorted(m for m in messages() if m not in french)
    assert not missing, missing
    # Placeholders survive translation.
    for msgid, msgstr in french.items():
        assert sorted(re.findall(r"%\((\w+)\)s", msgid)) == sorted(
            re.findall(r"%\((\w+)\)s", msgstr)
        ), msgid


def test_the_words_of_the_issue_are_used() -> None:
    french = set(load_translations()["fr"].messages.values())
    for words in (
        "Commander un Plug & Phone",
        "Commander un équipement",
        "Changer de téléphone Plug & Phone",
        "Suivant",
        "Valider",
        "J'ai lu et j'accepte le contrat",
        "Téléphone",
    ):
        assert words in french


def test_po_parser() -> None:
    text = '# c\nmsgid ""\nmsgstr "header"\n\nmsgid "a"\n"b"\nmsgstr "x\\"y"\n\n#, fuzzy\nmsgid "f"\nmsgstr "F"\n'
    assert parse_po(text) == {"ab": 'x"y'}
    with pytest.raises(PoError, match=r"bad\.po:1"):
        parse_po("nonsense", "bad.po")


def test_formats_follow_the_language() -> None:
    when = datetime(2026, 11, 26, 13, 5, tzinfo=UTC)
    fr, en = pages.Formats("fr", "Europe/Paris"), pages.Formats("en", "Europe/Paris")
    assert fr.when(when) == "26/11/2026 14:05" and en.when(when) == "2026-11-26 14:05"
    assert fr.money(999) == "9,99 €" and en.money(11988) == "€119.88"
