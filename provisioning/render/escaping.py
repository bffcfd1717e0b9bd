"""Per-format safety of every value written into a config, applied by the rendering layer (Jinja's
`finalize` and autoescape), so no template can forget it.

- XML formats: autoescape turns `& < > " '` into entities; characters XML 1.0 cannot carry are
  refused.
- `key = value` formats: there is no escaping syntax, so a value with a newline or any other control
  character is refused — a display name must never add a setting of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from markupsafe import Markup

# C0 controls (tab included: Yealink would keep it in the value) and DEL/C1, plus the
# Unicode line and paragraph separators that some parsers treat as line breaks.
_KEYVALUE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
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


FINALIZERS: dict[str, Callable[[Any], Any]] = {
    "keyvalue": _checked(_KEYVALUE_FORBIDDEN, "key = value"),
    "xml": _checked(_XML_FORBIDDEN, "XML"),
}
AUTOESCAPE = {"keyvalue": False, "xml": True}


def check_text(value: str, fmt: str = "keyvalue") -> bool:
    """True when `value` can be written into any supported format (input validation uses it)."""
    pattern = _KEYVALUE_FORBIDDEN if fmt == "keyvalue" else _XML_FORBIDDEN
    return pattern.search(value) is None
