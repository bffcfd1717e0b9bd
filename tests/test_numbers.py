"""Property tests of every parser of ids, numbers and text a client sends: `numbers` (the one
reading of digits), the API's bodies and query strings (`api.bodies`), the Manager's ids
(`web.scope`, `web.pages`), MACs, and where SIP goes (`sip.address`, settings and lines alike).

Each is fed what issue 18 names: any Unicode digit, any lone surrogate, a NUL, any length. The
property is always the same pair: what is valid is read exactly, and anything else is the
parser's own error (or None), never another exception."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from provisioning.api.bodies import (
    MAX_DEPTH,
    MAX_NUMBER,
    int_id,
    is_text,
    json_body,
    page,
    path_id,
    query_datetime,
    query_int,
    required,
    texts_middleware,
)
from provisioning.devices.inventory import parse_mac
from provisioning.errors import InvalidInput, NotFound
from provisioning.numbers import MAX_DIGITS, MAX_ID, parse_id, parse_int
from provisioning.sip.address import (
    TRANSPORTS,
    SipAddress,
    SipAddressError,
    is_hostname,
    parse_sip_address,
)
from provisioning.web.pages import id_of
from provisioning.web.scope import parse_id as own_id

# No deadline: on a loaded machine an example may take long, and time is not the property.
PROPERTY = hyp_settings(deadline=None)
ASCII_NUMBER = re.compile(r"[0-9]{1,18}")
DIGIT_OF_ANY_SCRIPT = st.characters(categories=["Nd", "No", "Nl"])
SURROGATE = st.characters(categories=["Cs"])
ANY_CHAR = st.one_of(
    st.characters(), DIGIT_OF_ANY_SCRIPT, SURROGATE, st.sampled_from("0123456789\x00")
)
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
# Text that looks like a number: digits of every script, ASCII ones, and the odd sign or space.
NUMBERISH = st.one_of(
    st.text(DIGIT_OF_ANY_SCRIPT | st.sampled_from("0123456789"), min_size=1, max_size=25),
    st.text(st.sampled_from("0123456789+- _\n.e"), min_size=1, max_size=25),
    ANY_TEXT,
)
NOT_ASCII_DIGIT = ANY_CHAR.filter(lambda c: c not in "0123456789")


def _spelt(value: int, zeros: int) -> str:
    return "0" * zeros + str(value)


# -- numbers.parse_int, parse_id -----------------------------------------------------------


@PROPERTY
@given(
    low=st.integers(0, 10**MAX_DIGITS),
    span=st.integers(0, 10**MAX_DIGITS),
    value=st.integers(0, 10**MAX_DIGITS - 1),
    zeros=st.integers(0, 5),
)
def test_parse_int_reads_any_ascii_number_in_its_bounds(
    low: int, span: int, value: int, zeros: int
) -> None:
    text = _spelt(value, zeros)
    expected = value if low <= value <= low + span and len(text) <= MAX_DIGITS else None
    assert parse_int(text, low, low + span) == expected


@PROPERTY
@given(text=NUMBERISH, low=st.integers(-5, 5), high=st.integers(0, 10**20))
def test_parse_int_is_in_bounds_or_none_and_never_raises(text: str, low: int, high: int) -> None:
    value = parse_int(text, low, high)
    if value is None:
        return
    assert ASCII_NUMBER.fullmatch(text) and value == int(text) and low <= value <= high


@PROPERTY
@given(
    digits=st.text(st.sampled_from("0123456789"), max_size=MAX_DIGITS),
    intruder=NOT_ASCII_DIGIT,
    at=st.integers(0, MAX_DIGITS),
)
def test_one_character_that_is_no_ascii_digit_spoils_a_number(
    digits: str, intruder: str, at: int
) -> None:
    """'²', U+0661, a lone surrogate, a NUL, a sign, a space: anywhere in it."""
    text = digits[:at] + intruder + digits[at:]
    assert parse_int(text, 0, 10**MAX_DIGITS) is None
    assert parse_id(text) is None


@given(length=st.integers(0, 100_000), digit=st.sampled_from("0123456789"))
@hyp_settings(PROPERTY, max_examples=60)
def test_a_number_of_any_length_is_read_or_refused_at_once(length: int, digit: str) -> None:
    # Past 4,300 digits int() raises: the parser never gets there.
    value = parse_int(digit * length, 0, 10**MAX_DIGITS)
    assert (value is not None) == (1 <= length <= MAX_DIGITS)


@PROPERTY
@given(value=st.integers(-(10**40), 10**40), zeros=st.integers(0, 3))
def test_an_id_is_a_positive_number_of_a_column(value: int, zeros: int) -> None:
    text = str(value) if value < 0 else _spelt(value, zeros)
    expected = value if 1 <= value <= MAX_ID and len(text) <= MAX_DIGITS else None
    assert parse_id(text) == expected


# -- the Manager's ids: a missing object, never another error -----------------------------


@PROPERTY
@given(text=NUMBERISH)
def test_a_managers_id_is_read_or_a_missing_object(text: str) -> None:
    for read in (own_id, id_of):
        try:
            value = read(text, "line")
        except NotFound as exc:
            assert exc.status == 404 and parse_id(text) is None
        else:
            assert value == parse_id(text) is not None


# -- MACs ----------------------------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"


@PROPERTY
@given(
    octets=st.lists(st.integers(0, 255), min_size=6, max_size=6),
    style=st.sampled_from(["", ":", "-", "."]),
    upper=st.booleans(),
)
def test_a_mac_in_any_usual_spelling_is_read(octets: list[int], style: str, upper: bool) -> None:
    plain = "".join(f"{o:02x}" for o in octets)
    assume(plain not in ("000000000000", "ffffffffffff"))  # no device's: refused
    if style == ".":
        text = ".".join(plain[i : i + 4] for i in range(0, 12, 4))
    else:
        text = style.join(plain[i : i + 2] for i in range(0, 12, 2))
    assert parse_mac(text.upper() if upper else text) == plain


@PROPERTY
@given(text=st.one_of(ANY_TEXT, st.text(st.sampled_from(HEX) | ANY_CHAR, max_size=20)))
def test_any_text_is_a_mac_or_the_mac_error(text: str) -> None:
    try:
        mac = parse_mac(text)
    except InvalidInput as exc:
        assert exc.field == "mac"
    else:
        assert re.fullmatch(r"[0-9a-f]{12}", mac)
        assert mac == re.sub(r"[^0-9a-f]", "", text.lower())


# -- api.bodies: ids and numbers of a body, a path, a query --------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    ANY_TEXT,
)


@PROPERTY
@given(value=JSON_SCALARS | st.lists(JSON_SCALARS, max_size=2))
def test_a_body_id_is_a_positive_integer_and_never_a_boolean(value: Any) -> None:
    try:
        found = int_id(value, "line_id")
    except InvalidInput as exc:
        assert exc.field == "line_id"
        assert isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**62
    else:
        assert found == value and type(value) is int


@PROPERTY
@given(value=JSON_SCALARS)
def test_required_is_the_value_or_names_the_field(value: Any) -> None:
    try:
        assert required({"name": value}, "name") is value
    except InvalidInput as exc:
        assert value is None and exc.field == "name"


def _query(**values: str) -> web.Request:
    # As a client sends it: percent-encoded UTF-8; a lone surrogate as the bytes it would be.
    encoded = "&".join(
        f"{name}={quote(value, safe='', errors='surrogatepass')}" for name, value in values.items()
    )
    return make_mocked_request("GET", "/?" + encoded)


@PROPERTY
@given(text=NUMBERISH, low=st.integers(0, 3), high=st.integers(3, 10**12))
def test_a_query_number_is_read_or_names_its_field(text: str, low: int, high: int) -> None:
    request = _query(limit=text)
    sent = request.query.get("limit", "")
    try:
        value = query_int(request, "limit", 7, low, high)
    except InvalidInput as exc:
        assert exc.field == "limit" and parse_int(sent, low, high) is None
    else:
        assert value == (7 if sent == "" else parse_int(sent, low, high))


@PROPERTY
@given(limit=NUMBERISH, offset=NUMBERISH)
def test_a_page_is_read_or_names_its_field(limit: str, offset: str) -> None:
    try:
        size, start = page(_query(limit=limit, offset=offset))
    except InvalidInput as exc:
        assert exc.field in ("limit", "offset")
    else:
        assert 1 <= size <= 500 and 0 <= start <= 10**9


@PROPERTY
@given(text=NUMBERISH)
def test_a_path_id_is_read_or_names_its_field(text: str) -> None:
    request = make_mocked_request("GET", "/", match_info={"order_id": text})
    try:
        value = path_id(request, "order_id")
    except InvalidInput as exc:
        assert exc.field == "order_id" and parse_id(text) is None
    else:
        assert value == parse_id(text)


@PROPERTY
@given(
    moment=st.datetimes(timezones=st.timezones()),
    text=ANY_TEXT,
    naive=st.datetimes(),
)
def test_a_query_date_is_read_with_its_offset_or_names_its_field(
    moment: datetime, text: str, naive: datetime
) -> None:
    read = query_datetime(_query(since=moment.isoformat()), "since")
    # The same wall time and offset (`==` across zones is False for a time a DST change repeats).
    assert read is not None and read.utcoffset() == moment.utcoffset()
    assert read.replace(tzinfo=None) == moment.replace(tzinfo=None)
    for sent in (text, naive.isoformat()):
        try:
            value = query_datetime(_query(since=sent), "since")
        except InvalidInput as exc:
            assert exc.field == "since"
        else:
            assert value is None or value.tzinfo is not None


@PROPERTY
@given(name=ANY_TEXT, value=ANY_TEXT, where=st.sampled_from(["path", "query"]))
async def test_the_paths_and_querys_texts_are_checked_once_for_every_route(
    name: str, value: str, where: str
) -> None:
    assume(name and is_text(name) and "&" not in name and "=" not in name)
    reached: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        reached.append(True)
        return web.Response()

    if where == "path":
        request = make_mocked_request("GET", "/", match_info={"reference": value})
        sent = value
    else:
        request = _query(x=value)
        sent = request.query.get("x", "")
    try:
        await texts_middleware(request, handler)
    except InvalidInput:
        assert not is_text(sent)
    else:
        assert reached and is_text(sent)


# -- api.bodies: JSON of any depth, length and text ----------------------------------------


class _Body:
    content_type = "application/json"

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def read(self) -> bytes:
        return self.raw


async def _read(raw: bytes, fields: dict[str, Any]) -> dict[str, Any] | InvalidInput:
    try:
        return await json_body(_Body(raw), fields)  # type: ignore[arg-type]
    except InvalidInput as exc:
        return exc


@given(depth=st.integers(0, 3 * MAX_DEPTH), wrap=st.sampled_from(["list", "dict"]))
@hyp_settings(PROPERTY, suppress_health_check=[HealthCheck.too_slow])
async def test_json_is_read_to_a_bounded_depth(depth: int, wrap: str) -> None:
    value = '"x"'
    for _ in range(depth):
        value = f"[{value}]" if wrap == "list" else f'{{"k": {value}}}'
    found = await _read(f'{{"v": {value}}}'.encode(), {"v": (str, list, dict)})
    # The field's value is depth 0; its string is `depth` levels down.
    assert isinstance(found, dict) == (depth <= MAX_DEPTH)
    if isinstance(found, InvalidInput):
        assert found.field == "v"


@given(length=st.integers(1, 6000), sign=st.sampled_from(["", "-"]))
@hyp_settings(PROPERTY, max_examples=60)
async def test_a_json_number_of_any_length_is_read_or_refused_as_input(
    length: int, sign: str
) -> None:
    digits = "7" * length
    found = await _read(f'{{"n": {sign}{digits}}}'.encode(), {"n": int})
    if length <= MAX_NUMBER:
        assert found == {"n": int(sign + digits)}
    else:
        assert isinstance(found, InvalidInput) and found.field == "body"


@PROPERTY
@given(text=st.text(ANY_CHAR, max_size=30))
async def test_a_json_string_is_read_iff_it_is_text(text: str) -> None:
    # json.dumps writes a lone surrogate as \\udxxx and a NUL as \\u0000: both reach the parser.
    found = await _read(json.dumps({"name": text}).encode(), {"name": str})
    if is_text(text):
        assert found == {"name": text}
    else:
        assert isinstance(found, InvalidInput) and found.field == "name"


# -- sip.address: the registrar of a setting and of a line ---------------------------------

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
HOSTNAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(is_hostname)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str).filter(lambda a: "%" not in a)


@PROPERTY
@given(
    host=HOSTNAME | IPV4 | IPV6,
    port=st.none() | st.integers(1, 65535),
    transport=st.none() | st.sampled_from(TRANSPORTS),
    form=st.sampled_from(["plain", "prefix", "uri"]),
)
def test_every_form_of_a_registrar_is_read_back(
    host: str, port: int | None, transport: str | None, form: str
) -> None:
    shown = f"[{host}]" if ":" in host else host
    where = shown if port is None else f"{shown}:{port}"
    if form == "uri":
        text = f"sip:{where}" + (f";transport={transport}" if transport else "")
    elif form == "prefix" and transport:
        text = f"{transport}:{where}"
    else:
        text, transport = where, None
    default = 5061 if transport == "tls" else 5060
    expected = SipAddress(host, default if port is None else port, transport)
    assert parse_sip_address(text) == expected
    assert parse_sip_address(str(expected)) == SipAddress(expected.host, expected.port)


@PROPERTY
@given(text=st.one_of(ANY_TEXT, st.text(st.sampled_from("sip:udptcl[]0123456789.;=a"))))
def test_any_text_is_a_registrar_or_says_why_not(text: str) -> None:
    try:
        found = parse_sip_address(text)
    except SipAddressError as exc:
        assert "expected HOST" in str(exc)
    else:
        assert 1 <= found.port <= 65535 and found.transport in (None, *TRANSPORTS)
        assert is_hostname(found.host) or ipaddress.ip_address(found.host)


@PROPERTY
@given(host=HOSTNAME, port=st.text(DIGIT_OF_ANY_SCRIPT, min_size=1, max_size=6))
def test_a_port_is_ascii_digits_only(host: str, port: str) -> None:
    assume(not (port.isascii() and port.isdigit()))
    with pytest.raises(SipAddressError):
        parse_sip_address(f"{host}:{port}")


@given(host=HOSTNAME, zeros=st.integers(0, 6000))
@hyp_settings(PROPERTY, max_examples=30)
def test_a_port_of_any_length_is_read_or_refused(host: str, zeros: int) -> None:
    text = f"{host}:5{'0' * zeros}"
    if zeros <= 3:
        assert parse_sip_address(text).port == 5 * 10**zeros
    else:
        with pytest.raises(SipAddressError, match="1 to 65535"):
            parse_sip_address(text)
