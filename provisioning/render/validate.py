"""Checks of rendered output per format, used by `provisioning templates check`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9_.]+) = (?P<value>.*)")
_INCLUDE = re.compile(r'include:config "[^"\s]+"')
_VERSION_LINE = "#!version:1.0.0.1"


def validate(fmt: str, body: bytes) -> list[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ["not valid UTF-8"]
    if fmt == "xml":
        return _xml(text)
    if fmt == "keyvalue":
        return _keyvalue(text)
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
