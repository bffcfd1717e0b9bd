"""Identification from real requests: file names and User-Agents as phones send them."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioning.devices.catalog import Catalog
from provisioning.devices.identify import (
    _name_facts,
    clean_user_agent,
    match_file,
    parse_user_agent,
)
from provisioning.devices.mac import InvalidMac, normalize_mac

# (User-Agent, family, model id or None, firmware, MAC or None), from vendor-formats.md.
USER_AGENTS = [
    (
        "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
        "yealink",
        "yealink-t46g",
        "28.72.0.1",
        "0015654aa937",
    ),
    (
        "yealink SIP-T28P 2.70.0.140 00:15:65:13:ae:0b",
        "yealink",
        None,
        "2.70.0.140",
        "00156513ae0b",
    ),
    (
        "Yealink SIP-T56A  58.80.0.25 001565f429a4",
        "yealink",
        "yealink-t56a",
        "58.80.0.25",
        "001565f429a4",
    ),
    ("Yealink-T46G 28.71.0.81 28.1.0.128.0.0.0", "yealink", "yealink-t46g", "28.71.0.81", None),
    (
        "Yealink SIP-T46U 108.86.0.20 80:5e:c0:12:34:56",
        "yealink",
        "yealink-t46u",
        "108.86.0.20",
        "805ec0123456",
    ),
    (
        "Yealink SIP-T19P_E2 53.84.0.15 00:15:65:aa:bb:cc",
        "yealink",
        "yealink-t19p_e2",
        "53.84.0.15",
        "001565aabbcc",
    ),
    (
        "Yealink SIP-T54W 96.86.0.45 24:9a:d8:01:02:03",
        "yealink",
        "yealink-t54w",
        "96.86.0.45",
        "249ad8010203",
    ),
    (
        "Yealink SIP VP-T49G 51.80.0.10 00:15:65:00:00:49",
        "yealink",
        "yealink-t49g",
        "51.80.0.10",
        "001565000049",
    ),
    (
        "Yealink W60B 77.81.0.35 80:5e:c0:09:ab:dc",
        "yealink",
        "yealink-w60b",
        "77.81.0.35",
        "805ec009abdc",
    ),
    ("W52P 25.30.0.2 00:15:65:44:b3:7c", "yealink", "yealink-w52p", "25.30.0.2", "00156544b37c"),
    ("Linphone/5.1.65 (belle-sip/5.1.0)", "linphone", "linphone-softphone", "5.1.65", None),
    (
        "LinphoneAndroid/4.6.0 (Pixel) LinphoneSDK/5.1.0",
        "linphone",
        "linphone-softphone",
        "4.6.0",
        None,
    ),
]


@pytest.mark.parametrize(("ua", "family", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(
    catalog: Catalog, ua: str, family: str, model: str | None, firmware: str, mac: str | None
) -> None:
    info = parse_user_agent(catalog, ua)
    assert info is not None
    assert info.family.name == family
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


@pytest.mark.parametrize(
    "ua",
    ["Unknown", "", "curl/8.5.0", "Mozilla/5.0", "python-requests/2.31"],
)
def test_other_user_agents_are_not_claimed(catalog: Catalog, ua: str) -> None:
    assert parse_user_agent(catalog, ua) is None


@pytest.mark.parametrize(
    ("name", "families", "mac"),
    [
        ("0015654aa937.boot", {"yealink"}, "0015654aa937"),
        # Several families ask for <mac>.cfg: the device record decides which one renders it.
        (
            "0015654AA937.cfg",
            {"yealink", "polycom", "fanvil", "digium", "aastra", "patton"},
            "0015654aa937",
        ),
        ("y000000000028.cfg", {"yealink"}, None),
        ("linphone.xml", {"linphone"}, None),
        ("linphone-020000c0ffee.xml", {"linphone"}, "020000c0ffee"),
        ("000000000000.cfg", {"polycom"}, None),  # Polycom's master file, not a MAC
        ("0015654aa937.txt", set(), None),
    ],
)
def test_file_names(catalog: Catalog, name: str, families: set[str], mac: str | None) -> None:
    matches = match_file(catalog, name)
    assert {m.family.name for m in matches} == families
    assert all(m.mac == mac for m in matches)


def _walk(catalog: Catalog, name: str) -> list[tuple[str, str, str | None, str | None]]:
    """What every family's every spec says of `name`, in catalog order: the plain walk the
    indexed lookup (Catalog.name_patterns) must agree with."""
    found = []
    for family in catalog:
        for spec in family.files:
            facts = _name_facts(spec, name)
            if facts is not None:
                found.append((family.name, spec.pattern, facts[0], facts[1]))
    return found


# Names each catalog pattern makes (with MACs and codes of every shape), and some made up.
_MACS = st.text(alphabet="0123456789abcdefABCDEF", min_size=12, max_size=12)
_CODES = st.from_regex(r"[0-9]{1,12}", fullmatch=True)


@st.composite
def _names(draw: st.DrawFn, catalog: Catalog) -> str:
    specs = [spec for family in catalog for spec in family.files]
    if draw(st.booleans()):
        return draw(st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True))
    spec = draw(st.sampled_from(specs))
    mac = draw(_MACS)
    return spec.pattern.format(
        mac=mac,
        mac_underscore="_".join(mac[i : i + 2] for i in range(0, 12, 2)),
        code12=draw(_CODES).zfill(12),
        code=draw(_CODES),
    )


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_file_lookup_agrees_with_walking_every_spec(catalog: Catalog, data: st.DataObject) -> None:
    name = data.draw(_names(catalog))
    catalog.memo.clear()
    matches = match_file(catalog, name)
    assert [(m.family.name, m.spec.pattern, m.mac, m.code) for m in matches] == _walk(catalog, name)


def test_file_lookup_keeps_catalog_order_across_patterns(catalog: Catalog) -> None:
    """Families A and C share a pattern, B between them has another one the same name fits:
    the matches come in catalog order (A, B, C), not pattern by pattern (A, C, B)."""
    by_mac = catalog.families["grandstream"].files[0]
    by_code = next(s for s in catalog.families["htek"].files if "{code}" in s.pattern)
    assert (by_mac.pattern, by_code.pattern) == ("cfg{mac}.xml", "cfg{code}.xml")
    families = {
        "grandstream": replace(catalog.families["grandstream"], files=(by_mac,)),
        "htek": replace(catalog.families["htek"], files=(by_code,)),
        "linphone": replace(catalog.families["linphone"], files=(by_mac,)),
    }
    made = Catalog(families)
    name = "cfg000000000021.xml"
    assert [m.family.name for m in match_file(made, name)] == ["grandstream", "htek", "linphone"]
    assert [(m.family.name, m.spec.pattern, m.mac, m.code) for m in match_file(made, name)] == (
        _walk(made, name)
    )


@pytest.mark.parametrize("name", ["cfg000000000021", "cfg000000000021.xml", "cfg0000000000.21"])
def test_a_pattern_ending_in_a_placeholder_is_tried_on_every_name(
    catalog: Catalog, name: str
) -> None:
    """No shipped pattern ends in a placeholder, but a family may: the name's extension
    then says nothing, and such a pattern is tried whatever the name ends with."""
    by_mac = catalog.families["grandstream"].files[0]
    bare = replace(
        by_mac,
        pattern="cfg{mac}",
        regex=re.compile(by_mac.regex.pattern.removesuffix(r"\.xml")),
        suffix="",
    )
    made = Catalog(
        {
            "grandstream": replace(catalog.families["grandstream"], files=(by_mac,)),
            "htek": replace(catalog.families["htek"], files=(bare,)),
        }
    )
    found = [(m.family.name, m.spec.pattern, m.mac, m.code) for m in match_file(made, name)]
    assert found == _walk(made, name)
    assert [f[0] for f in found] == {
        "cfg000000000021": ["htek"],
        "cfg000000000021.xml": ["grandstream"],
        "cfg0000000000.21": [],
    }[name]


def test_common_file_code(catalog: Catalog) -> None:
    (match,) = match_file(catalog, "y000000000108.cfg")
    assert match.code == "108"


# The Yealink models the core issue names, with their real slot counts.
YEALINK_SLOTS = {
    "t19p_e2": 1, "t21p_e2": 2, "t23g": 3, "t27g": 6, "t27p": 6, "t29g": 16, "t41p": 6,
    "t41s": 6, "t41u": 6, "t42g": 12, "t42s": 12, "t42u": 12, "t46g": 16, "t46s": 16,
    "t46u": 16, "t48g": 16, "t48s": 16, "t48u": 16, "t53": 12, "t53w": 12, "t54s": 16,
    "t54w": 16, "t57w": 16, "t58": 16,
}  # fmt: skip


def test_yealink_catalog(catalog: Catalog) -> None:
    models = catalog.families["yealink"].models
    assert {key: models[f"yealink-{key}"].slots for key in YEALINK_SLOTS} == YEALINK_SLOTS


@pytest.mark.parametrize(
    "text",
    [
        "00:15:65:4A:A9:37",
        "00-15-65-4a-a9-37",
        "0015.654a.a937",
        "0015654AA937",
        " 0015654aa937 ",
        "00_15_65_4a_a9_37",
    ],
)
def test_mac_notations(text: str) -> None:
    assert normalize_mac(text) == "0015654aa937"


@pytest.mark.parametrize(
    "text",
    ["", "0015654aa93", "0015654aa9370", "00:15:65:4a:a9", "00:15-65:4a:a9:37", "g015654aa937",
     "000000000000", "ff:ff:ff:ff:ff:ff", "0x0015654aa937", "1:2:3:4:5:6", "00_15:65_4a_a9_37",
     "00_15_65_4a_a9_3"],
)  # fmt: skip
def test_not_macs(text: str) -> None:
    with pytest.raises(InvalidMac):
        normalize_mac(text)


def test_clean_user_agent() -> None:
    raw = b"Yealink \xff\x01 x".decode("utf-8", "surrogateescape")
    assert clean_user_agent(raw) == "Yealink \ufffd? x"
    assert len(clean_user_agent("a" * 1000)) == 256
