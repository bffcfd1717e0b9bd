"""Reading SIP lines back out of rendered files, the way the emulated handsets do."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PhoneLine:
    slot: int
    user: str
    auth_user: str
    password: str
    host: str
    port: int


_ACCOUNT = re.compile(r"account\.(\d+)\.(.+)")


def yealink_lines(text: str) -> tuple[list[PhoneLine], int | None]:
    """Enabled accounts, and the re-check interval in seconds."""
    accounts: dict[int, dict[str, str]] = {}
    poll = None
    for raw in text.splitlines():
        key, sep, value = raw.partition(" = ")
        if not sep:
            continue
        if key == "static.auto_provision.repeat.minutes" and value.isdigit():
            poll = int(value) * 60
        match = _ACCOUNT.fullmatch(key)
        if match:
            accounts.setdefault(int(match[1]), {})[match[2]] = value
    lines = []
    for slot, keys in sorted(accounts.items()):
        if keys.get("enable") != "1":
            continue
        lines.append(
            PhoneLine(
                slot=slot,
                user=keys.get("user_name", ""),
                auth_user=keys.get("auth_name") or keys.get("user_name", ""),
                password=keys.get("password", ""),
                host=keys.get("sip_server.1.address", ""),
                port=int(keys.get("sip_server.1.port") or 5060),
            )
        )
    return lines, poll


def snom_lines(text: str) -> tuple[list[PhoneLine], int | None]:
    root = ET.fromstring(text)  # noqa: S314 -- our own server's output
    values: dict[tuple[str, int], str] = {}
    poll = None
    for element in root.iter():
        idx = element.get("idx")
        if idx is not None and idx.isdigit():
            values[(element.tag, int(idx))] = element.text or ""
        elif element.tag == "settings_refresh_timer" and (element.text or "").isdigit():
            poll = int(element.text or "0")
    lines = []
    for (tag, slot), value in sorted(values.items()):
        if tag != "user_active" or value != "on":
            continue
        host, _, port = values.get(("user_host", slot), "").partition(":")
        user = values.get(("user_name", slot), "")
        lines.append(
            PhoneLine(
                slot=slot,
                user=user,
                auth_user=values.get(("user_pname", slot), "") or user,
                password=values.get(("user_pass", slot), ""),
                host=host,
                port=int(port or 5060),
            )
        )
    return lines, poll


# The families the emulator can play, with the file that carries the lines.
PARSERS: dict[str, Callable[[str], tuple[list[PhoneLine], int | None]]] = {
    "yealink": yealink_lines,
    "snom": snom_lines,
}
USER_AGENTS = {
    "yealink": "Yealink SIP-{model} 108.86.0.20 {mac_colon}",
    "snom": "Mozilla/4.0 (compatible; snom{model}-SIP 10.1.33.33 2010.12-00004 {mac_upper})",
}
