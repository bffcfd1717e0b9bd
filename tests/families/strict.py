"""Strict parsers of the formats phones read, independent of the package's own validator, and
two lines that differ in everything a phone must keep apart.

- XML: expat (through xml.etree), which refuses anything not well-formed (no recovery), plus what
  no phone file needs and a hostile one could use: a DOCTYPE, entity declarations, processing
  instructions other than the XML declaration, an encoding other than UTF-8. No vendor publishes
  a schema for these files (the N510's `N510.xsd` is named, never published), so the structure
  is checked by each family's test.
- `key = value` (Yealink): the grammar of validate.py written again: `#!version:1.0.0.1` first,
  then `key = value` lines (dotted keys of letters, digits and `_`), comments, `include:config`
  lines and blank lines; a key set twice is an error (which value would the phone keep?).
- `key: value` (Aastra): lowercase keys of words separated by single spaces, `: `, the rest of the
  line; `#` comments; a key set twice (in any case) is an error.
- `KEY value` (Avaya 1200): upper-case keys, one space, a non-empty value; `[SECTION]` headers;
  every line shorter than 80 characters (the phone cannot read a longer one).
- INI (Technicolor): `[section]` headers, `key=value` with no space around `=`, `#`/`;` comments,
  no setting outside a section; settings are read as `section/key`.
- Patton SmartNode CLI: commands of words and `"quoted strings"`, one space apart, indented two
  spaces per mode and never more than one mode deeper than the line before; `#` comments. A
  command is read as `parent/.../word[i]` -> the rest of its words, `i` counting the commands
  of the same first word in that mode (so a mode's own arguments are a setting too).
- Zenitel's INI: `[section]` headers at the start of a line, ` key=value` settings indented by
  exactly one space, blank lines; no comments (none in the reference), no setting outside a
  section, no key twice in one; read as `section/key`.
- `KEY="value"` (Panasonic's text form): CR LF line ends, the fixed first line, then quoted values
  without a `"`.
In every text format a line that is none of these is an error, never skipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from xml.parsers import expat

from provisioning.devices.catalog import Catalog
from provisioning.render.check import sample_device
from provisioning.render.context import DeviceData, LineData


class FormatError(AssertionError):
    """The output breaks its format's grammar."""


# -- XML ------------------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(
    r'<\?xml version="1\.0"(?: encoding="(?P<enc>[A-Za-z0-9._-]+)")?'
    r'(?: standalone="(?:yes|no)")?\s*\?>'
)


def parse_xml(body: bytes) -> ET.Element:
    """The document's root, or FormatError naming the first problem."""
    text = body.decode("utf-8")  # UnicodeDecodeError is a failure too
    head = text.lstrip()[:100]
    if head.startswith("<?xml"):
        match = _XML_DECLARATION.match(head)
        if match is None:
            raise FormatError(f"malformed XML declaration: {head[:60]!r}")
        if (match["enc"] or "UTF-8").upper() != "UTF-8":
            raise FormatError(f"declared encoding {match['enc']} but the body is UTF-8")
    parser = expat.ParserCreate()
    refused: list[str] = []
    parser.StartDoctypeDeclHandler = lambda *a: refused.append("DOCTYPE")
    parser.EntityDeclHandler = lambda *a: refused.append("entity declaration")
    parser.ProcessingInstructionHandler = lambda target, data: refused.append(f"<?{target}")
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise FormatError(f"XML not well-formed: {exc}") from None
    if refused:
        raise FormatError(f"XML carries {refused[0]}, which no phone file needs")
    return ET.fromstring(body)


def xml_settings(root: ET.Element) -> dict[str, str]:
    """Every attribute and every non-blank text, by position: `a[0]/b[2]@name`. Two renders of
    the same template with different values have the same positions, so their settings compare."""
    found: dict[str, str] = {}

    def walk(element: ET.Element, path: str) -> None:
        for name, value in element.attrib.items():
            found[f"{path}@{name}"] = value
        if element.text and element.text.strip():
            found[path] = element.text
        seen: dict[str, int] = {}
        for child in element:
            index = seen.get(child.tag, 0)
            seen[child.tag] = index + 1
            walk(child, f"{path}/{child.tag}[{index}]")

    walk(root, f"{root.tag}[0]")
    return found


# -- key = value ----------------------------------------------------------------------------------

VERSION_LINE = "#!version:1.0.0.1"
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*) = (?P<value>[^\r\n]*)")
_INCLUDE = re.compile(r'include:config "(?P<path>[^"\s]+)"')


def parse_key_value(body: bytes) -> dict[str, str]:
    """The settings of a Yealink-style file, or FormatError naming the line."""
    text = body.decode("utf-8")
    lines = text.split("\n")
    if lines[0] != VERSION_LINE:
        raise FormatError(f"line 1 must be {VERSION_LINE}, not {lines[0][:40]!r}")
    settings: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line or line.startswith("#") or _INCLUDE.fullmatch(line):
            continue
        match = _KEY_VALUE.fullmatch(line)
        if match is None:
            raise FormatError(f"line {number}: not `key = value`: {line[:60]!r}")
        if match["key"] in settings:
            raise FormatError(f"line {number}: {match['key']} set twice")
        settings[match["key"]] = match["value"]
    return settings


# -- Aastra `key: value` ---------------------------------------------------------------------------

_COLON_LINE = re.compile(
    r"(?P<key>[a-z0-9_.\[\]|-]+(?: [a-z0-9_.\[\]|-]+)*): ?(?P<value>[^\x00-\x1f\x7f]*)"
)


def parse_colon(body: bytes) -> dict[str, str]:
    """The settings of an Aastra file, keys as written, or FormatError naming the line."""
    settings: dict[str, str] = {}
    folded: set[str] = set()
    for number, line in enumerate(body.decode("utf-8").split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        match = _COLON_LINE.fullmatch(line)
        if match is None:
            raise FormatError(f"line {number}: not `key: value`: {line[:60]!r}")
        if match["key"].lower() in folded:
            raise FormatError(f"line {number}: {match['key']} set twice")
        folded.add(match["key"].lower())
        settings[match["key"]] = match["value"]
    return settings


# -- Sectioned: Avaya `KEY value`, INI `key=value` -------------------------------------------------

_SECTION_LINE = re.compile(r"\[(?P<name>[A-Za-z0-9_]+)\]")
_SPACED_LINE = re.compile(r"(?P<key>[A-Z][A-Z0-9_]*) (?P<value>[^\x00-\x20\x7f][^\x00-\x1f\x7f]*)")
_INI_LINE = re.compile(r"(?P<key>[A-Za-z0-9_]+)=(?P<value>[^\x00-\x1f\x7f]*)")
AVAYA_MAX_LINE = 79


def _sectioned(body: bytes, grammar: re.Pattern[str], *, ini: bool) -> dict[str, str]:
    settings: dict[str, str] = {}
    section = ""
    for number, line in enumerate(body.decode("utf-8").split("\n"), start=1):
        if not ini and len(line) > AVAYA_MAX_LINE:
            raise FormatError(f"line {number}: {len(line)} characters (the phone reads < 80)")
        if not line or line.startswith("#") or (ini and line.startswith(";")):
            continue
        header = _SECTION_LINE.fullmatch(line)
        if header is not None:
            section = header["name"]
            continue
        match = grammar.fullmatch(line)
        if match is None:
            raise FormatError(f"line {number}: not a setting nor a [section]: {line[:60]!r}")
        if ini and not section:
            raise FormatError(f"line {number}: {match['key']} outside any [section]")
        path = f"{section}/{match['key']}" if section else match["key"]
        if path in settings:
            raise FormatError(f"line {number}: {path} set twice")
        settings[path] = match["value"]
    return settings


def parse_spaced(body: bytes) -> dict[str, str]:
    """Avaya 1200 `KEY value` settings (`SECTION/KEY` inside a section)."""
    return _sectioned(body, _SPACED_LINE, ini=False)


_INI_INDENTED_LINE = re.compile(r" (?P<key>[A-Za-z0-9_]+)=(?P<value>[^\x00-\x1f\x7f]*)")


def parse_ini_indented(body: bytes) -> dict[str, str]:
    """Zenitel's INI settings as `section/key`."""
    settings: dict[str, str] = {}
    section = ""
    for number, line in enumerate(body.decode("utf-8").split("\n"), start=1):
        if not line:
            continue
        header = _SECTION_LINE.fullmatch(line)
        if header is not None:
            section = header["name"]
            continue
        match = _INI_INDENTED_LINE.fullmatch(line)
        if match is None:
            raise FormatError(f"line {number}: not ' key=value' nor a [section]: {line[:60]!r}")
        if not section:
            raise FormatError(f"line {number}: {match['key']} outside any [section]")
        path = f"{section}/{match['key']}"
        if path in settings:
            raise FormatError(f"line {number}: {path} set twice")
        settings[path] = match["value"]
    return settings


def parse_ini(body: bytes) -> dict[str, str]:
    """INI settings as `section/key`."""
    return _sectioned(body, _INI_LINE, ini=True)


# -- Panasonic `KEY="value"` -----------------------------------------------------------------------

PANASONIC_FIRST_LINE = "# Panasonic SIP Phone Standard Format File #"
_QUOTED_LINE = re.compile(r'(?P<key>[A-Z0-9_]+)="(?P<value>[^"\x00-\x1f\x7f]*)"')


def parse_quoted(body: bytes) -> dict[str, str]:
    """Panasonic's manuals: every line ends with CR LF (the last one too), the first is fixed."""
    text = body.decode("utf-8")
    if not text.endswith("\r\n"):
        raise FormatError("the last line must end with CR LF")
    lines = text.split("\r\n")[:-1]
    if lines[0] != PANASONIC_FIRST_LINE:
        raise FormatError(f"line 1 must be {PANASONIC_FIRST_LINE}, not {lines[0][:50]!r}")
    settings: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if "\r" in line or "\n" in line:
            raise FormatError(f"line {number}: a line break other than CR LF")
        if not line or line.startswith("#"):
            continue
        match = _QUOTED_LINE.fullmatch(line)
        if match is None:
            raise FormatError(f'line {number}: not `KEY="value"`: {line[:60]!r}')
        if match["key"] in settings:
            raise FormatError(f"line {number}: {match['key']} set twice")
        settings[match["key"]] = match["value"]
    return settings


# -- Patton SmartNode CLI ----------------------------------------------------------------------

_CLI_WORD = r'(?:[^\s"]+|"[^"\x00-\x1f\x7f]*")'
_CLI_LINE = re.compile(rf"(?P<indent>(?:  )*)(?P<words>{_CLI_WORD}(?: {_CLI_WORD})*)")


def parse_cli(body: bytes) -> dict[str, str]:
    settings: dict[str, str] = {}
    parents: list[str] = []  # the path of each open mode
    counts: dict[str, int] = {}
    for number, line in enumerate(body.decode("utf-8").split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _CLI_LINE.fullmatch(line)
        if match is None:
            raise FormatError(f"line {number}: not a command: {line[:60]!r}")
        level = len(match["indent"]) // 2
        if level > len(parents):
            raise FormatError(f"line {number}: indented deeper than its mode")
        del parents[level:]
        first, _, rest = match["words"].partition(" ")
        parent = parents[-1] if parents else ""
        index = counts.get(f"{parent}/{first}", 0)
        counts[f"{parent}/{first}"] = index + 1
        path = f"{parent}/{first}[{index}]"
        settings[path] = rest
        parents.append(path)
    return settings


def settings_of(fmt: str, body: bytes) -> dict[str, str]:
    """What a phone reads from one file, as path -> value, through the strict parser."""
    if fmt == "keyvalue":
        return parse_key_value(body)
    if fmt == "xml":
        return xml_settings(parse_xml(body))
    parsers = {
        "colon": parse_colon,
        "spaced": parse_spaced,
        "ini": parse_ini,
        "quoted": parse_quoted,
        "cli": parse_cli,
        "ini_indented": parse_ini_indented,
    }
    if fmt in parsers:
        return parsers[fmt](body)
    raise FormatError(f"no strict parser for format {fmt!r}")


# -- Two lines ------------------------------------------------------------------------------------

LINE_1 = LineData(
    number="1001",
    user="alice-u1",
    auth_user="auth-alice-a1",
    password="pw-alice-p1",
    display_name="Alice",
    registrar_host="pbx-a.example.net",
    registrar_port=5060,
    transport="udp",
)
LINE_2 = LineData(
    number="2002",
    user="bob-u2",
    auth_user="auth-bob-a2",
    password="pw-bob-p2",
    display_name="Bob",
    registrar_host="pbx-b.example.org",
    registrar_port=5071,
    transport="tls",
)
# Two lines that differ in everything a phone must keep apart, as the per-family tests of the
# families added later spell them (their assertions name these values).
ALICE_AND_BOB = {
    1: LineData(
        number="1001",
        user="alice",
        auth_user="auth-alice",
        password="pw-1",
        display_name="Alice",
        registrar_host="pbx-a.example.net",
        registrar_port=5060,
        transport="udp",
    ),
    2: LineData(
        number="2002",
        user="bob",
        auth_user="auth-bob",
        password="pw-2",
        display_name="Bob",
        registrar_host="pbx-b.example.org",
        registrar_port=5061,
        transport="tls",
    ),
}
# Another value per field, to see which settings a field of one line moves.
OTHER = {
    "user": "carol-u3",
    "auth_user": "auth-carol-a3",
    "password": "pw-carol-p3",
    "registrar_host": "pbx-c.example.com",
    "registrar_port": 5088,
    "transport": "tcp",
}
FIELDS = tuple(OTHER)


def two_lines(catalog: Catalog, model_id: str, mac: str | None = None) -> DeviceData:
    """A device of `model_id` with LINE_1 in slot 1 and LINE_2 in slot 2."""
    model = catalog.model(model_id)
    assert model is not None and model.slots >= 2, model_id
    base = sample_device(model_id, model.slots, 0)
    if mac is not None:
        base = replace(base, mac=mac)
    return replace(base, lines={1: LINE_1, 2: LINE_2})


def with_field(data: DeviceData, slot: int, field: str) -> DeviceData:
    """`data` with one field of one slot's line set to its OTHER value."""
    lines = dict(data.lines)
    lines[slot] = replace(lines[slot], **{field: OTHER[field]})
    return replace(data, lines=lines)
