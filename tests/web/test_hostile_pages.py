"""Hostile input to the Manager: ids in the path in any Unicode digit or of any length, forms
that are not text (bytes that are not UTF-8, a lone surrogate spelt in UTF-7, a NUL, a broken
multipart), a NUL in the URL. Each is the page of a missing object or "Please check what you
entered", never a 5xx."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from provisioning.db.engine import SessionFactory
from provisioning.web.app import create_manager
from tests.conftest import World
from tests.web.kit import ALICE, OPERATOR, Browser, ManagerWorld, make_manager_world

# '²' passes str.isdigit and int() refuses it; the Arabic-Indic and the fullwidth one
# (U+0661, U+FF11) are read by int() as 1.
HOSTILE_NUMBERS = ["²", "\u0661", "\uff11", "9" * 5000, "0", "-1", "1\n"]


@pytest.fixture
async def mw(sessions: SessionFactory, world: World) -> ManagerWorld:
    return await make_manager_world(sessions, world)


async def _signed_in(client: TestClient, who: tuple[str, str]) -> Browser:
    browser = Browser(client)
    status, _ = await browser.sign_in(*who)
    assert status == 200
    return browser


async def _send(
    browser: Browser, method: str, path: str, data: dict[str, str] | None = None
) -> tuple[int, str]:
    """`path` as sent: percent-encoded, so that nothing is normalised on the way."""
    url = URL("/manager" + path, encoded=True)
    if method == "POST":
        form = {**(data or {}), "csrf": browser.csrf()}
        resp = await browser.client.post(url, data=form, allow_redirects=False)
    else:
        resp = await browser.client.get(url, allow_redirects=False)
    return resp.status, await resp.text()


def _pages_with_ids() -> list[tuple[str, str, list[str]]]:
    """Every Manager page that takes an id in its path: (method, path template, id names)."""
    found: list[tuple[str, str, list[str]]] = []
    for resource in create_manager().router.resources():
        template = resource.canonical
        names = [n for n in re.findall(r"{(\w+)}", template) if n.endswith("_id")]
        if names:
            found.extend((r.method, template, names) for r in resource if r.method != "HEAD")
    return sorted(found)


ID_PAGES = _pages_with_ids()


def test_the_pages_with_ids_are_found() -> None:
    paths = {path for _, path, _ in ID_PAGES}
    assert {"/lines/{line_id}", "/orders/{order_id}", "/ops/orders/{order_id}"} <= paths
    assert "/associations/{association_id}/status" in paths


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
@pytest.mark.parametrize(("method", "template", "names"), ID_PAGES)
async def test_every_id_in_a_path_is_ascii_digits_only(
    client: TestClient, mw: ManagerWorld, method: str, template: str, names: list[str], value: str
) -> None:
    browser = await _signed_in(client, OPERATOR if template.startswith("/ops/") else ALICE)
    path = template
    for name in names:
        path = path.replace("{" + name + "}", quote(value, safe=""))
    status, page = await _send(browser, method, path, {"mac": "00:15:65:4a:a9:37"})
    # The page of a missing object, as for "abc": never a 500, never line 1 spelt otherwise.
    assert status == 404, (method, path[:80], status, page[:300])


@pytest.mark.parametrize("value", ["²", "\u0661", "9" * 5000])
async def test_an_account_id_in_a_form_is_ascii_digits_only(
    client: TestClient, mw: ManagerWorld, value: str
) -> None:
    ops = await _signed_in(client, OPERATOR)
    status, page = await _send(
        ops,
        "POST",
        "/ops/unknown/001565000077/claim",
        {"model": "yealink-t46u", "account_id": value},
    )
    assert status == 404, page[:300]


@pytest.mark.parametrize(
    ("who", "method", "path", "expected"),
    [
        # PostgreSQL refuses a NUL in text: a return's reference was a 503 there.
        (ALICE, "GET", "/returns/RT-%00", 404),
        (OPERATOR, "POST", "/ops/returns/RT-%00/receive", 404),
        (OPERATOR, "GET", "/ops/devices/%00", 404),
        (OPERATOR, "GET", "/ops/devices?mac=%00", 422),
        (ALICE, "GET", "/relay-map.svg?city=a%00b", 422),
    ],
)
async def test_a_nul_in_the_url_is_no_5xx(
    client: TestClient,
    mw: ManagerWorld,
    who: tuple[str, str],
    method: str,
    path: str,
    expected: int,
) -> None:
    browser = await _signed_in(client, who)
    status, page = await _send(browser, method, path)
    assert status == expected, page[:300]


def _multipart(*parts: bytes) -> bytes:
    return b"".join(b"--b\r\n" + part + b"\r\n" for part in parts) + b"--b--\r\n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"login=\xff\xfe&password=x", "application/x-www-form-urlencoded"),
        # UTF-7 spells a lone surrogate: "+2AA-" is U+D800.
        (b"login=+2AA-&password=x", "application/x-www-form-urlencoded; charset=utf-7"),
        (b"login=a%00b&password=x", "application/x-www-form-urlencoded"),
        (b"login=a&password=x", "application/x-www-form-urlencoded; charset=no-such"),
        (
            _multipart(
                b'Content-Disposition: form-data; name="login"\r\n'
                b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2AA-"
            ),
            "multipart/form-data; boundary=b",
        ),
        (
            _multipart(b'Content-Disposition: form-data; name="login"\r\n\r\n\xff\xfe'),
            "multipart/form-data; boundary=b",
        ),
        (_multipart(b"Content-Disposition: form-data\r\n\r\nx"), "multipart/form-data; boundary=b"),
        (b"--b\r\ngarbage", "multipart/form-data; boundary=b"),
        (b"garbage", "multipart/form-data"),
    ],
)
async def test_a_form_that_is_not_text_is_a_clear_error_page(
    client: TestClient, mw: ManagerWorld, body: bytes, content_type: str
) -> None:
    browser = Browser(client)
    await client.get("/manager/login")
    resp = await client.post(
        "/manager/login",
        data=body.replace(b"login=", b"csrf=" + browser.csrf().encode() + b"&login=", 1),
        headers={"Content-Type": content_type},
    )
    page = await resp.text()
    assert resp.status == 422, page[:300]
    assert "Veuillez vérifier votre saisie" in page or "Please check" in page


@pytest.mark.parametrize("length", [100, 3000, 7000])
async def test_a_long_address_is_no_broken_redirect_to_the_sign_in(
    client: TestClient, mw: ManagerWorld, length: int
) -> None:
    """A visitor is sent to sign in with the page to come back to, unless it would make a
    Location past what a proxy or aiohttp reads (8,190 bytes): the client could not read it."""
    url = URL("/manager/lines?q=" + "%D9%A1" * (length // 6), encoded=True)
    resp = await client.get(url, allow_redirects=False)
    assert resp.status in (302, 303), resp.status
    location = resp.headers["Location"]
    assert location.startswith("/manager/login") and len(location) <= 2100
    assert ("next=" in location) == (length < 2000)
