"""Checks of rendered output per format, used by `provisioning templates check`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9_.]+) = (?P<value>.*)")
_INCLUDE = re.compile(r'include:config "[^"\s]+"')
_VERSION_LINE = "#!version:1.0.0.1"
# Aastra: `key: value`, lowercase words with spaces in the key (`sip line1 auth name`).
_COLON = re.compile(
    r"(?P<key>[a-z0-9](?:[a-z0-9 _.\[\]|-]*[a-z0-9_.\]])?): ?(?P<value>[^\x00-\x1f\x7f]*)"
)
# Avaya 1200: `KEY value` (one space), `[SECTION]` headers in the model file.
_SPACED = re.compile(r"(?P<key>[A-Z][A-Z0-9_]*) (?P<value>[^\x00-\x20\x7f][^\x00-\x1f\x7f]*)")
_SECTION = re.compile(r"\[(?P<name>[A-Za-z0-9_]+)\]")
# Avaya: "every line must be less than 80 characters or the phone won't be able to read it"
# (the comment heading Wazo's wazo_avaya DeviceConfig.cfg).
_SPACED_MAX = 79
# INI (Technicolor): `key=value`, no spaces around `=`.
_INI = re.compile(r"(?P<key>[A-Za-z0-9_]+)=(?P<value>[^\x00-\x1f\x7f]*)")
# Zenitel's INI: the same settings, each indented by exactly one space.
_INI_INDENTED = re.compile(r" (?P<key>[A-Za-z0-9_]+)=(?P<value>[^\x00-\x1f\x7f]*)")
# Panasonic's text form: a fixed first comment line, then `KEY="value"`.
_QUOTED_FIRST = "# Panasonic SIP Phone Standard Format File #"
# Patton SmartNode CLI: indentation by two spaces per mode, words or "quoted strings".
_CLI_COMMAND = re.compile(
    r'(?P<indent>(?:  )*)(?P<words>(?:[^\s"]+|"[^"\x00-\x1f]*")(?: (?:[^\s"]+|"[^"\x00-\x1f]*"))*)'
)
_QUOTED = re.compile(r'(?P<key>[A-Z0-9_]+)="(?P<value>[^"\x00-\x1f\x7f]*)"')
_QUOTED_LINE_MAX = 537  # bytes, CR LF included
_QUOTED_NAME_MAX = 32
_QUOTED_VALUE_MAX = 500


def validate(fmt: str, body: bytes) -> list[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ["not valid UTF-8"]
    if fmt == "xml":
        return _xml(text)
    if fmt == "keyvalue":
        return _keyvalue(text)
    if fmt == "colon":
        return _colon(text)
    if fmt == "spaced":
        return _sectioned(text, _SPACED, "KEY value", max_length=_SPACED_MAX)
    if fmt == "ini":
        return _sectioned(text, _INI, "key=value", need_section=True)
    if fmt == "ini_indented":
        return _ini_indented(text)
    if fmt == "quoted":
        return _quoted(text)
    if fmt == "cli":
        return _cli(text)
    return [f"no validator for format {fmt}"]


def _xml(text: str) -> list[str]:
    try:
        ET.fromstring(text)  # noqa: S314 -- our own output
    except ET.ParseError as exc:
        return [f"XML not well-formed: {exc}"]
    return []


def _keyvalue(text: str) -> list[str]:
    """Yealink syntax: a `#!version:1.0.0.1` first line, then `key = value`, comments (`#`),
    `include:config "file"` lines (boot files) and blank lines; no key twice."""
    lines = text.split("\n")
    problems = []
    if lines[0] != _VERSION_LINE:
        problems.append(f"line 1: must be {_VERSION_LINE}")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line or line.startswith("#") or _INCLUDE.fullmatch(line):
            continue
        match = _KEY_VALUE.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not 'key = value': {line[:60]!r}")
            continue
        key = match["key"]
        if key in seen:
            problems.append(f"line {number}: {key} already set on line {seen[key]}")
        seen[key] = number
    return problems


def _colon(text: str) -> list[str]:
    """Aastra syntax: `key: value` lines, `#` comments, blank lines; no key twice (the phone
    reads keys without regard to case)."""
    problems = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        match = _COLON.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not 'key: value': {line[:60]!r}")
            continue
        key = match["key"].lower()
        if key in seen:
            problems.append(f"line {number}: {key} already set on line {seen[key]}")
        seen[key] = number
    return problems


def _sectioned(
    text: str,
    setting: re.Pattern[str],
    name: str,
    max_length: int | None = None,
    need_section: bool = False,
) -> list[str]:
    """`[SECTION]` headers and settings, `#` (and `;`) comments, blank lines; no key twice in
    a section; with `need_section`, no setting before the first header."""
    problems = []
    section: str | None = None
    seen: dict[tuple[str | None, str], int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if max_length is not None and len(line) > max_length:
            problems.append(f"line {number}: {len(line)} characters, more than {max_length}")
        if not line or line.startswith(("#", ";")):
            continue
        header = _SECTION.fullmatch(line)
        if header is not None:
            section = header["name"]
            continue
        match = setting.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not '{name}' nor '[section]': {line[:60]!r}")
            continue
        if need_section and section is None:
            problems.append(f"line {number}: a setting before the first [section]")
        key = (section, match["key"])
        if key in seen:
            problems.append(f"line {number}: {match['key']} already set on line {seen[key]}")
        seen[key] = number
    return problems


def _ini_indented(text: str) -> list[str]:
    """Zenitel: `[section]` headers at the start of a line, ` key=value` settings indented by one
    space, blank lines. No comment syntax is in the reference, so a comment is refused too; no
    setting before the first header, no key twice in a section."""
    problems = []
    section: str | None = None
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        header = _SECTION.fullmatch(line)
        if header is not None:
            section = header["name"]
            continue
        match = _INI_INDENTED.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not ' key=value' nor '[section]': {line[:60]!r}")
            continue
        if section is None:
            problems.append(f"line {number}: a setting before the first [section]")
            continue
        key = (section, match["key"])
        if key in seen:
            problems.append(f"line {number}: {match['key']} already set on line {seen[key]}")
        seen[key] = number
    return problems


def _quoted(text: str) -> list[str]:
    """Panasonic's text form (KX-UT and KX-HDV administrator manuals, "Configuration File
    Specifications"): lines ending with CR LF, the last one too; the fixed first line; then
    `KEY="value"`, comments, blank lines; a line at most 537 bytes with its CR LF, a name at
    most 32 characters, a value at most 500."""
    problems = []
    if not text.endswith("\r\n"):
        problems.append("the last line must end with CR LF")
    lines = text.split("\r\n")
    if lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != _QUOTED_FIRST:
        problems.append(f"line 1: must be {_QUOTED_FIRST}")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if "\n" in line or "\r" in line:
            problems.append(f"line {number}: a line break other than CR LF")
            continue
        if len(line.encode("utf-8")) + 2 > _QUOTED_LINE_MAX:
            problems.append(f"line {number}: longer than {_QUOTED_LINE_MAX} bytes with its CR LF")
        if number == 1 or not line or line.startswith("#"):
            continue
        match = _QUOTED.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not 'KEY=\"value\"': {line[:60]!r}")
            continue
        key = match["key"]
        if len(key) > _QUOTED_NAME_MAX or len(match["value"]) > _QUOTED_VALUE_MAX:
            problems.append(f"line {number}: {key}: name or value too long")
        if key in seen:
            problems.append(f"line {number}: {key} already set on line {seen[key]}")
        seen[key] = number
    return problems


def _cli(text: str) -> list[str]:
    """Patton CLI: blank lines, `#` comments, commands of words and quoted strings separated by
    single spaces, indented two spaces per mode, never deeper than one mode below the line
    before."""
    problems = []
    depth = -1  # the first command is at the top level
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _CLI_COMMAND.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not a command: {line[:60]!r}")
            continue
        level = len(match["indent"]) // 2
        if level > depth + 1:
            problems.append(f"line {number}: indented deeper than the mode it is in")
        depth = level
    return problems
