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
from provisioning.web.formats import Formats
from provisioning.web.i18n import PoError, load_translations, parse_catalog, parse_po

WEB = Path(pages.__file__).resolve().parent
_CALL = re.compile(r"""_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_PY = re.compile(r"""gettext\(\s*request,\s*("(?:[^"\\]|\\.)*")""")
_STRING = r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
_PLURAL = re.compile(rf"""ngettext\(\s*{_STRING},\s*{_STRING}""")


def plural_messages() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in WEB.rglob("*.html"):
        found |= {
            (ast.literal_eval(a), ast.literal_eval(b)) for a, b in _PLURAL.findall(path.read_text())
        }
    return found


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
    plurals = load_translations()["fr"].plurals
    assert plural_messages(), "the pages use plurals"
    missing = sorted(one for one, _ in plural_messages() if one not in plurals)
    assert not missing, missing
    for one, other in plural_messages():
        for msgid, msgstr in ((one, plurals[one][0]), (other, plurals[one][1])):
            assert sorted(re.findall(r"%\((\w+)\)s", msgid)) == sorted(
                re.findall(r"%\((\w+)\)s", msgstr)
            ), msgid
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
        "Téléphone",
    ):
        assert words in french
    fr = load_translations()["fr"]
    link = fr.gettext("the contract")
    assert fr.gettext("I have read and accept %(contract)s", contract=link) == (
        "J'ai lu et j'accepte le contrat"
    )


def test_po_parser() -> None:
    text = '# c\nmsgid ""\nmsgstr "header"\n\nmsgid "a"\n"b"\nmsgstr "x\\"y"\n\n#, fuzzy\nmsgid "f"\nmsgstr "F"\n'
    assert parse_po(text) == {"ab": 'x"y'}
    with pytest.raises(PoError, match=r"bad\.po:1"):
        parse_po("nonsense", "bad.po")


def test_no_page_writes_a_plural_with_parentheses() -> None:
    for path in WEB.rglob("*.html"):
        assert "(s)" not in path.read_text(), path
    for msgstr in load_translations()["fr"].messages.values():
        assert "(s)" not in msgstr, msgstr


def test_plurals_follow_the_language() -> None:
    tr = load_translations()
    fr, en = tr["fr"], tr["en"]
    one, other = "%(n)s free slot", "%(n)s free slots"
    assert [fr.ngettext(one, other, n) for n in (0, 1, 2)] == [
        "0 emplacement libre",
        "1 emplacement libre",
        "2 emplacements libres",
    ]
    assert [en.ngettext(one, other, n) for n in (0, 1, 2)] == [
        "0 free slots",
        "1 free slot",
        "2 free slots",
    ]
    text = 'msgid "a"\nmsgid_plural "as"\nmsgstr[0] "x"\nmsgstr[1] "xs"\n'
    assert parse_catalog(text).plurals == {"a": ("x", "xs")}


def test_formats_follow_the_language() -> None:
    when = datetime(2026, 11, 26, 13, 5, tzinfo=UTC)
    fr, en = Formats("fr", "Europe/Paris"), Formats("en", "Europe/Paris")
    assert fr.when(when) == "26/11/2026 14:05" and en.when(when) == "26/11/2026, 14:05"
    # Non-breaking spaces: "€" never starts a line alone.
    assert fr.money(999) == "9,99\u00a0€" and en.money(11988) == "€119.88"
    assert fr.money(123456) == "1\u202f234,56\u00a0€"
    assert fr.distance(200) == "0,2\u202fkm" and fr.distance(2550) == "2,6\u202fkm"
    assert en.distance(200) == "0.2 km"
    assert fr.number(1.25, 2) == "1,25"
    # Phone numbers as French customers write them; E.164 of other countries as stored.
    assert fr.phone("+33123456701") == "01 23 45 67 01"
    assert en.phone("+33612345678") == "+33 6 12 34 56 78"
    assert fr.phone("+442079460958") == "+442079460958"
    assert fr.mac("001565abcdef") == "00:15:65:AB:CD:EF"
    assert fr.mac(None) == "—"
