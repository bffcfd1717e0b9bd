"""Operator settings merged into a rendered file, in the file's own format, so shipped templates are
never edited for one customer.

- `key = value` formats: the key's line gets the new value, or the setting is added at the end.
- XML formats: a key is a path from the root element, `section[@name='sip']/entry[@name='x']`
  (the element's text) or `path@attribute` / `@attribute` (an attribute); the element must exist.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

from provisioning.render.escaping import check_text

log = logging.getLogger(__name__)

KEYVALUE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]{0,199}")
_NAME = r"[A-Za-z_][\w.-]*"
_STEP = rf"{_NAME}(?:\[@{_NAME}='[^'<>&]*'\])*"
XML_KEY = re.compile(rf"(?:{_STEP}(?:/{_STEP})*)?(?:@{_NAME})?")
_PATH_ATTRIBUTE = re.compile(rf"(?P<path>.*?)(?:@(?P<attribute>{_NAME}))?")
_KEY_LINE = re.compile(r"(?P<key>[A-Za-z0-9_.]+) = .*")


def valid_key(fmt: str, key: str) -> bool:
    if not key or len(key) > 200:
        return False
    if fmt == "keyvalue":
        return KEYVALUE_KEY.fullmatch(key) is not None
    if fmt == "xml":
        return XML_KEY.fullmatch(key) is not None
    # The line formats added for Aastra, Avaya, Technicolor and Panasonic (catalog.FORMATS) have
    # no override syntax yet: refused, never merged as if they were XML.
    return False


def valid_value(value: str) -> bool:
    return len(value) <= 2000 and check_text(value)


def apply_overrides(fmt: str, body: bytes, overrides: dict[str, str]) -> bytes:
    usable = {k: v for k, v in overrides.items() if valid_key(fmt, k) and valid_value(v)}
    if not usable:
        return body
    text = body.decode("utf-8")
    if fmt == "keyvalue":
        return _keyvalue(text, usable).encode("utf-8")
    return _xml(text, usable).encode("utf-8")


def _keyvalue(text: str, overrides: dict[str, str]) -> str:
    lines = text.split("\n")
    done = set()
    for index, line in enumerate(lines):
        match = _KEY_LINE.fullmatch(line)
        if match and match["key"] in overrides:
            key = match["key"]
            lines[index] = f"{key} = {overrides[key]}"
            done.add(key)
    added = [f"{key} = {value}" for key, value in overrides.items() if key not in done]
    if lines and lines[-1] == "":
        lines[-1:-1] = added
    else:
        lines.extend(added)
    return "\n".join(lines)


def _xml(text: str, overrides: dict[str, str]) -> str:
    root = ET.fromstring(text)  # noqa: S314 -- our own output
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    for key, value in overrides.items():
        match = _PATH_ATTRIBUTE.fullmatch(key)
        assert match is not None  # valid_key checked the whole key
        path, attribute = match["path"], match["attribute"]
        element = root if not path else root.find(_namespaced(path, namespace))
        if element is None:
            log.warning("setting override %s matches nothing in the file; skipped", key)
            continue
        if attribute:
            element.set(attribute, value)
        else:
            element.text = value
    if namespace:
        ET.register_namespace("", namespace)
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n' if text.startswith("<?xml") else ""
    return declaration + ET.tostring(root, encoding="unicode") + "\n"


def _namespaced(path: str, namespace: str) -> str:
    # Operators write paths without the default namespace; ElementTree needs it on every step.
    if not namespace:
        return path
    return "/".join("{" + namespace + "}" + step for step in path.split("/"))
