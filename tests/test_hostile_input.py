"""Hostile input to the API: ids and numbers in any Unicode digit or of any length, JSON that
is too deep, too long a number or not text, a NUL where PostgreSQL reads, and a bug of ours.
Each answer is a problem (RFC 9457) of the API's own, never a 5xx but for the bug's 500."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, make_mocked_request
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from yarl import URL

from provisioning import tokens
from provisioning.api.app import create_api
from provisioning.api.bodies import MAX_NUMBER, is_text, json_body, path_id, query_int
from provisioning.db.engine import SessionFactory
from provisioning.errors import InvalidInput
from provisioning.numbers import MAX_DIGITS, MAX_ID, parse_id, parse_int
from tests.conftest import World

# '²' passes str.isdigit and int() refuses it; the Arabic-Indic and the fullwidth one
# (U+0661, U+FF11) are read by int() as 1.
HOSTILE_NUMBERS = ["²", "\u0661", "\uff11", "1²", "9" * 5000, "0", "-1", " 1", "1\n", "+1", "1_0"]
# As many for a query, but for "0": a good offset.
QUERY_HOSTILE = [n for n in HOSTILE_NUMBERS if n != "0"]
# No deadline: on a loaded machine an example may take long, and time is not the property.
PROPERTY = hyp_settings(deadline=None)
ASCII_NUMBER = re.compile(r"[0-9]{1,18}")

# Any character: the usual ones, digits of every script, lone surrogates.
ANY_CHAR = st.one_of(
    st.characters(),
    st.characters(categories=["Nd", "No", "Nl"]),
    st.characters(categories=["Cs"]),
    st.sampled_from("0123456789"),
)
# Text that looks like a number more often than any text does: only digits, of every script
# ('²' among them, which `str.isdigit` takes and `int` refuses), or any characters.
NUMBERISH = st.text(
    alphabet=st.characters(categories=["Nd", "No"]) | st.sampled_from("0123456789"),
    min_size=1,
    max_size=25,
) | st.text(alphabet=ANY_CHAR, max_size=30)


# -- the one parser of numbers -----------------------------------------------------------


@PROPERTY
@given(text=NUMBERISH)
def test_only_ascii_digits_of_sane_length_are_numbers(text: str) -> None:
    value = parse_int(text, 0, 10**MAX_DIGITS)
    if ASCII_NUMBER.fullmatch(text):
        assert value == int(text)
    else:
        assert value is None


@PROPERTY
@given(text=st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1))
def test_no_digit_of_another_script_is_a_number(text: str) -> None:
    expected = int(text) if text.isascii() and len(text) <= MAX_DIGITS else None
    assert parse_id(text) == (expected if expected else None)


@PROPERTY
@given(
    digits=st.text(alphabet="0123456789", max_size=20),
    surrogate=st.characters(categories=["Cs"]),
    at=st.integers(min_value=0, max_value=20),
)
def test_a_surrogate_is_never_part_of_a_number(digits: str, surrogate: str, at: int) -> None:
    assert parse_id(digits[:at] + surrogate + digits[at:]) is None


@given(length=st.integers(min_value=0, max_value=20_000), digit=st.sampled_from("123456789"))
@hyp_settings(PROPERTY, max_examples=200)
def test_a_number_of_any_length_never_raises(length: int, digit: str) -> None:
    # Past 4,300 digits int() itself raises: the parser must not get there.
    value = parse_id(digit * length)
    assert (value is not None) == (1 <= length <= MAX_DIGITS)


@PROPERTY
@given(value=st.integers(min_value=-(10**20), max_value=10**20))
def test_ids_are_positive_and_fit_a_column(value: int) -> None:
    assert parse_id(str(value)) == (value if 1 <= value <= MAX_ID else None)


@PROPERTY
@given(text=NUMBERISH)
def test_path_id_answers_a_value_or_the_apis_own_error(text: str) -> None:
    try:
        value = path_id(make_mocked_request("GET", "/", match_info={"line_id": text}), "line_id")
    except InvalidInput as exc:
        assert exc.field == "line_id"
    else:
        assert ASCII_NUMBER.fullmatch(text) and value == int(text) >= 1


@PROPERTY
@given(text=NUMBERISH.filter(lambda text: text != "" and is_text(text)))
def test_query_int_answers_a_value_or_the_apis_own_error(text: str) -> None:
    request = make_mocked_request("GET", "/?" + URL.build(query={"limit": text}).raw_query_string)
    try:
        value = query_int(request, "limit", 50, 1, 500)
    except InvalidInput as exc:
        assert exc.field == "limit"
    else:
        assert value is not None and ASCII_NUMBER.fullmatch(text) and 1 <= value <= 500


@PROPERTY
@given(text=st.text(alphabet=ANY_CHAR))
def test_text_is_what_has_no_nul_and_no_lone_surrogate(text: str) -> None:
    assert is_text(text) == (not any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in text))


# -- bodies -------------------------------------------------------------------------------


class _Body:
    """What json_body reads of a request."""

    content_type = "application/json"

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def read(self) -> bytes:
        return self.raw


async def _read_body(raw: bytes) -> dict[str, Any] | InvalidInput:
    try:
        return await json_body(_Body(raw), {"name": str, "count": int, "address": dict})  # type: ignore[arg-type]
    except InvalidInput as exc:
        return exc


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=ANY_CHAR),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet=ANY_CHAR, max_size=5), children, max_size=3)
    ),
    max_leaves=30,
)


@given(value=st.dictionaries(st.sampled_from(["name", "count", "address"]), JSON_VALUES))
@hyp_settings(PROPERTY, max_examples=300)
async def test_any_json_object_is_read_or_refused_as_input(value: dict[str, Any]) -> None:
    try:
        raw = json.dumps(value).encode()  # ASCII: lone surrogates travel as \ud800
    except ValueError:  # a number json cannot write (NaN is written, this is not reached)
        return
    found = await _read_body(raw)
    if isinstance(found, dict):
        assert all(is_text(s) for s in _strings(found))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@PROPERTY
@given(raw=st.binary(max_size=200))
async def test_any_bytes_are_read_or_refused_as_input(raw: bytes) -> None:
    await _read_body(raw)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"count": ' + b"1" * 5000 + b"}", "body"),
        (b'{"count": -' + b"1" * 5000 + b"}", "body"),
        (b'{"count": ' + b"7" * (MAX_NUMBER + 1) + b"}", "body"),
        (b"[" * 10_000 + b"]" * 10_000, "body"),
        (b'{"address": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001, "body"),
        (b'{"address": ' + b'{"a": ' * 20 + b"1" + b"}" * 21, "address"),
        (b'{"name": "\\ud800"}', "name"),
        (b'{"name": "a\\udfffb"}', "name"),
        (b'{"name": "\\u0000"}', "name"),
        (b'{"address": {"street": ["\\ud800"]}}', "address"),
        (b'{"address": {"\\ud800": "x"}}', "address"),
        (b'{"\\ud800": "x"}', "body"),
    ],
)
async def test_bodies_that_failed_are_refused_as_input(raw: bytes, field: str) -> None:
    found = await _read_body(raw)
    assert isinstance(found, InvalidInput) and found.field == field


async def test_a_surrogate_pair_is_text() -> None:
    found = await _read_body(b'{"name": "Caf\\u00e9 \\ud83d\\ude00", "count": 12}')
    assert found == {"name": "Café 😀", "count": 12}


# -- the API, end to end -------------------------------------------------------------------


@pytest.fixture
async def operator(world: World, sessions: SessionFactory) -> str:
    async with sessions() as session, session.begin():
        _, secret = await tokens.create_token(session, "operator", name="hostile")
    return secret


async def _call(
    client: TestClient, method: str, path: str, token: str, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """`path` as sent: percent-encoded, so that nothing is normalised on the way."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = URL("/api/v1" + path, encoded=True)
    resp = await client.request(method, url, headers=headers, data=body)
    text = await resp.text()
    assert resp.status < 500, (method, path[:80], resp.status, text[:300])
    if resp.status >= 400:
        assert resp.content_type == "application/problem+json", (path[:80], text[:200])
    return resp.status, json.loads(text) if text else {}


def _routes_with_ids() -> list[tuple[str, str, list[str]]]:
    """Every API route that takes an id in its path: (method, path template, id names)."""
    found: list[tuple[str, str, list[str]]] = []
    for resource in create_api().router.resources():
        template = resource.canonical
        names = [n for n in re.findall(r"{(\w+)}", template) if n.endswith("_id")]
        if names:
            found.extend((r.method, template, names) for r in resource if r.method != "HEAD")
    return sorted(found)


ID_ROUTES = _routes_with_ids()


def test_the_routes_with_ids_are_found() -> None:
    paths = {path for _, path, _ in ID_ROUTES}
    assert {"/lines/{line_id}", "/orders/{order_id}", "/devices/{mac}/lines/{line_id}"} <= paths


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
@pytest.mark.parametrize(("method", "template", "names"), ID_ROUTES)
async def test_every_id_in_a_path_is_ascii_digits_only(
    client: TestClient,
    world: World,
    operator: str,
    method: str,
    template: str,
    names: list[str],
    value: str,
) -> None:
    path = template.replace("{mac}", world.yealink_mac)
    for name in names:
        path = path.replace("{" + name + "}", quote(value, safe=""))
    status, problem = await _call(client, method, path, operator, b"{}")
    # The answer "abc" gets: the id named, never a 500, never line 1 under another spelling.
    assert status == 422, (method, path[:80], problem)
    assert problem["type"].endswith("/invalid-input") and problem["field"] in names


QUERY_NUMBERS = [
    ("/lines", "limit"),
    ("/lines", "offset"),
    ("/lines", "account"),
    ("/accounts", "limit"),
    ("/devices", "account"),
    ("/devices/unknown", "limit"),
    ("/orders", "account"),
    ("/orders/catalog", "line_id"),
    ("/returns", "account"),
    ("/audit", "limit"),
    ("/relay-points", "limit"),
]


@pytest.mark.parametrize("value", QUERY_HOSTILE)
@pytest.mark.parametrize(("path", "name"), QUERY_NUMBERS)
async def test_every_number_in_a_query_is_ascii_digits_only(
    client: TestClient, operator: str, path: str, name: str, value: str
) -> None:
    query = URL.build(query={name: value}).raw_query_string
    status, problem = await _call(client, "GET", f"{path}?{query}", operator)
    assert status == 422 and problem["field"] == name, problem


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/lines", b'{"account_id": ' + b"1" * 5000 + b"}", "body"),
        ("POST", "/lines", b"[" * 10_000 + b"]" * 10_000, "body"),
        ("POST", "/lines", b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "body"),
        ("POST", "/accounts", b'{"name": "\\ud800"}', "name"),
        ("POST", "/accounts", b'{"name": "Bob", "address": "\\udc80"}', "address"),
        ("POST", "/accounts", b'{"\\ud800": "x"}', "body"),
        ("PATCH", "/lines/{line}", b'{"display_name": "a\\ud800b"}', "display_name"),
        ("PATCH", "/lines/{line}", b'{"password": "\\ud800\\ud800"}', "password"),
        ("POST", "/orders/quote", b'{"line_id": {free}, "model": "yealink-t46u", '
         b'"carrier": "dhl", "address": {"street": "\\ud800", "postcode": "75002", '
         b'"town": "Paris"}}', "address"),
        ("POST", "/devices/{mac}/credentials", b'{"kind": "\\ud800"}', "kind"),
    ],
)  # fmt: skip
async def test_bodies_that_failed_are_a_422_problem(
    client: TestClient,
    world: World,
    operator: str,
    method: str,
    path: str,
    body: bytes,
    field: str,
) -> None:
    path = path.format(line=world.line_ids[0], mac=world.yealink_mac)
    body = body.replace(b"{free}", str(world.line_ids[2]).encode())
    status, problem = await _call(client, method, path, operator, body)
    assert status == 422 and problem["field"] == field, problem


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        # PostgreSQL refuses a NUL in text: these were 503 "database unavailable".
        ("GET", "/devices?model=a%00b", "model"),
        ("POST", "/returns/RT-%00/receive", "reference"),
        ("GET", "/devices/{mac}/config?reveal=true&reason=why%00not", "reason"),
    ],
)
async def test_a_nul_in_the_url_is_refused_as_input(
    client: TestClient, world: World, operator: str, method: str, path: str, field: str
) -> None:
    status, problem = await _call(client, method, path.format(mac=world.yealink_mac), operator)
    assert status == 422 and problem["field"] == field, problem


async def test_a_bug_is_a_problem_with_the_request_id(
    client: TestClient,
    world: World,
    operator: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from provisioning import accounts

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-detail-of-a-bug")

    monkeypatch.setattr(accounts, "get_account", broken)
    headers = {"Authorization": f"Bearer {operator}"}
    with caplog.at_level(logging.ERROR, logger="provisioning.api.problems"):
        resp = await client.get(f"/api/v1/accounts/{world.account_id}", headers=headers)
        text = await resp.text()
    assert resp.status == 500 and resp.content_type == "application/problem+json", text
    problem = json.loads(text)
    assert problem["type"].endswith("/internal-error") and problem["status"] == 500
    assert problem["request_id"] == resp.headers["X-Request-Id"]
    assert "secret-detail-of-a-bug" not in text and "Traceback" not in text
    [record] = [r for r in caplog.records if r.name == "provisioning.api.problems"]
    assert record.exc_info is not None and "secret-detail-of-a-bug" in caplog.text
