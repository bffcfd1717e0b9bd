"""Facts a request tells about the phone behind it: the file it asks for (and the MAC in that name)
and what its User-Agent says (family, model, firmware, MAC).

Each step is a small pure function so it can be tested on real request strings alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from provisioning.devices.catalog import Catalog, Family, FileSpec, Model
from provisioning.devices.mac import try_mac

MAX_UA = 256


class FileMatch(NamedTuple):
    # A tuple, not a frozen dataclass: a boot storm makes several per fetch (`{mac}.cfg` fits
    # seven families), and a frozen dataclass takes about 2.5 times as long to make.
    family: Family
    spec: FileSpec
    mac: str | None
    code: str | None


class UserAgentInfo(NamedTuple):
    family: Family
    model: Model | None
    ua_model: str | None
    firmware: str | None
    mac: str | None


MEMO_SIZE = 65536  # strings remembered per catalog, then forgotten all at once


def _remember(catalog: Catalog, key: tuple[str, str], value: Any) -> None:
    if len(catalog.memo) >= MEMO_SIZE:
        catalog.memo.clear()
    catalog.memo[key] = value


def match_file(catalog: Catalog, file_name: str) -> list[FileMatch]:
    """Every family file spec the name fits; several families share names such as `<mac>.cfg`,
    so the device record, not the name, decides which one applies."""
    key = ("file", file_name)
    known = catalog.memo.get(key)
    if known is None:
        known = tuple(_match_file(catalog, file_name))
        _remember(catalog, key, known)
    return list(known)


def _match_file(catalog: Catalog, file_name: str) -> list[FileMatch]:
    found: list[tuple[int, FileMatch]] = []
    for pattern in catalog.name_patterns(file_name):
        spec = pattern.spec
        # A cheap test first: each pattern's regex runs only on names it may fit.
        if not (file_name.startswith(spec.prefix) and file_name.endswith(spec.suffix)):
            continue
        facts = _name_facts(spec, file_name)
        if facts is None:
            continue
        mac, code, _ = facts
        found += [
            (order, FileMatch(family=family, spec=used, mac=mac, code=code))
            for order, family, used in pattern.uses
        ]
    found.sort(key=_order)  # in catalog order, as a walk through every family gives them
    return [match for _, match in found]


def _order(item: tuple[int, FileMatch]) -> int:
    return item[0]


def _name_facts(spec: FileSpec, file_name: str) -> tuple[str | None, str | None, bool] | None:
    """(MAC, model code, matched) a file name tells by this spec's pattern, or None if it does
    not fit it."""
    match = spec.match(file_name)
    if match is None:
        return None
    groups = match.groupdict()
    mac = try_mac(groups.get("mac"))
    if "mac" in groups and mac is None:
        return None  # 000000000000 and the like name no device
    code12 = groups.get("code12")
    return mac, str(int(code12)) if code12 else groups.get("code"), True


def parse_user_agent(catalog: Catalog, user_agent: str) -> UserAgentInfo | None:
    key = ("ua", user_agent)
    known = catalog.memo.get(key, key)
    if known is key:
        known = _parse_user_agent(catalog, user_agent)
        _remember(catalog, key, known)
    return known  # type: ignore[no-any-return]


def _parse_user_agent(catalog: Catalog, user_agent: str) -> UserAgentInfo | None:
    for family in catalog:
        for pattern in family.ua_patterns:
            match = pattern.search(user_agent)
            if match is None:
                continue
            groups = match.groupdict()
            ua_model = groups.get("model")
            return UserAgentInfo(
                family=family,
                model=family.model_for_ua(ua_model) if ua_model else None,
                ua_model=ua_model,
                firmware=groups.get("firmware"),
                mac=try_mac(groups.get("mac")),
            )
    return None


def clean_user_agent(raw: str) -> str:
    """A User-Agent safe to store and log: valid UTF-8, printable, bounded.

    aiohttp hands undecodable bytes over as surrogates, which PostgreSQL would refuse."""
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if not text.isprintable():  # the usual case skips the walk through every character
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:MAX_UA]
