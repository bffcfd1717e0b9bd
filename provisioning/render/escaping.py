"""Per-format safety of every value written into a config, applied by the rendering layer (Jinja's
`finalize` and autoescape), so no template can forget it.

- XML formats: autoescape turns `& < > " '` into entities; characters XML 1.0 cannot carry are
  refused.
- Line formats (`key = value`, Aastra's `key: value`, Avaya's `KEY value`, INI `key=value`): there
  is no escaping syntax, so a value with a newline or any other control character is refused — a
  display name must never add a setting of its own. The separator inside a value is harmless in
  all of them: each reads the key up to its first separator and the rest of the line as the value
  (and our keys never contain one).
- Aastra's `key: value`: `#` starts a comment even after a value, and no escape is documented, so
  it is refused.
- Quoted `KEY="value"` (Panasonic's text form): no escape exists inside the quotes either, so a
  double quote, which would end the value early, is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from markupsafe import Markup

# C0 controls (tab included: Yealink would keep it in the value) and DEL/C1, plus the
# Unicode line and paragraph separators that some parsers treat as line breaks.
_KEYVALUE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Aastra's `key: value`: `#` starts a comment anywhere on a line (the administrator guide's own
# example, `dst [start|end] relative date: 1 #relative`), so it would cut the value.
_COLON_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029#]")
# Panasonic's `KEY="value"`: a `"` would close the value and leave the rest to be read as syntax.
_QUOTED_FORBIDDEN = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029"]')
# XML 1.0 allows tab, LF and CR among the controls; a value needs none of them.
_XML_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff\u2028\u2029]")


class UnsafeValue(ValueError):
    """A value cannot be written safely in this format. The message never contains the value."""


def _scalar(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    return value


def _checked(pattern: re.Pattern[str], fmt: str) -> Callable[[Any], Any]:
    def finalize(value: Any) -> Any:
        value = _scalar(value)
        if isinstance(value, Markup):
            # Markup comes from the template's own literal structure (e.g. a macro's output),
            # which was checked when its parts were rendered.
            return value
        text = value if isinstance(value, str) else str(value)
        if pattern.search(text):
            raise UnsafeValue(
                f"a value contains a newline or control character, which a {fmt} file "
                "cannot carry safely"
            )
        return value

    return finalize


def _refusing(char: str, why: str, fmt: str) -> Callable[[Any], Any]:
    """The line-format check, and one more character the format cannot carry in a value."""
    lines = _checked(_KEYVALUE_FORBIDDEN, fmt)

    def finalize(value: Any) -> Any:
        value = _scalar(value)
        if isinstance(value, Markup):
            return value
        text = value if isinstance(value, str) else str(value)
        if char in text:
            raise UnsafeValue(f"a value contains {why}")
        return lines(value)

    return finalize


# What each format (catalog.FORMATS) refuses, and its finalizer.
FORBIDDEN: dict[str, re.Pattern[str]] = {
    "keyvalue": _KEYVALUE_FORBIDDEN,
    "xml": _XML_FORBIDDEN,
    "colon": _COLON_FORBIDDEN,
    "spaced": _KEYVALUE_FORBIDDEN,
    "ini": _KEYVALUE_FORBIDDEN,
    "quoted": _QUOTED_FORBIDDEN,
    "cli": _KEYVALUE_FORBIDDEN,
    "ini_indented": _KEYVALUE_FORBIDDEN,
}
FINALIZERS: dict[str, Callable[[Any], Any]] = {
    "keyvalue": _checked(_KEYVALUE_FORBIDDEN, "key = value"),
    "xml": _checked(_XML_FORBIDDEN, "XML"),
    "colon": _refusing(
        "#", "a #, which starts a comment in a `key: value` file (the rest would be lost)", "Aastra"
    ),
    "spaced": _checked(_KEYVALUE_FORBIDDEN, "`KEY value`"),
    "ini": _checked(_KEYVALUE_FORBIDDEN, "INI"),
    "quoted": _refusing(
        '"', 'a double quote, which ends a KEY="value" setting early (no escape exists)', "quoted"
    ),
    # Patton's CLI: a line break would start a command of its own. Spaces and quotes split or
    # join arguments: the templates refuse them where an argument must stay one word.
    "cli": _checked(_KEYVALUE_FORBIDDEN, "SmartNode CLI"),
    # Zenitel's INI: the value is the rest of the line after the first `=`, as in `ini`.
    "ini_indented": _checked(_KEYVALUE_FORBIDDEN, "INI"),
}
# Only XML has an escaping syntax; the text formats refuse instead (above).
AUTOESCAPE = {fmt: fmt == "xml" for fmt in FINALIZERS}
# The line break a format's lines end with (Jinja's `newline_sequence`): Panasonic's manuals
# (KX-UT, KX-HDV "Configuration File Specifications") say each line must end with CR LF.
NEWLINES = {fmt: "\r\n" if fmt == "quoted" else "\n" for fmt in FINALIZERS}


def check_text(value: str, fmt: str = "keyvalue") -> bool:
    """True when `value` can be written into a file of format `fmt` (input validation uses it
    with the default: what every line format can carry)."""
    return FORBIDDEN[fmt].search(value) is None
