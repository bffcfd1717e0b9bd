"""The Manager fuzzed: every page and every form, signed in as an operator, as a customer and as
no one, fed values hypothesis draws (digits of every script, lone surrogates, NULs, numbers of
thousands of digits, strings up to past the form limit, control and right-to-left characters,
and now and then the world's own ids, MACs and models, so that the handlers are reached past
their first check). The bar (issue 18): no answer is a 5xx, no page shows a traceback, a
redirect never leaves the Manager, and a request refused (4xx) changes nothing in the database.

The catalogue below names every route of `create_manager()` (a test fails when a page is added
without it); one hypothesis example sends one request to every page of the role, so each page
is fuzzed in every example, and one sign-in serves them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import select
from yarl import URL

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Base
from provisioning.devices.catalog import Catalog
from provisioning.orders import orders, returns
from provisioning.orders.carriers import load_carriers
from provisioning.settings import Settings
from provisioning.web.app import MAX_FORM, create_manager
from tests.conftest import World
from tests.web.kit import ALICE, OPERATOR, Browser, ManagerWorld, make_manager_world

PREFIX = "/manager"


@dataclass
class FuzzWorld(ManagerWorld):
    order_id: int
    reference: str


# Examples per test: each one sends a request to every page of its role (15 to 31 requests),
# some thirty seconds in all on a loaded machine.
EXAMPLES = 10
FUZZ = hyp_settings(
    max_examples=EXAMPLES,
    deadline=None,  # a loaded machine answers slowly at times: time is not the property
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same values on every run: a failure here is a bug, not bad luck
    # No shrinking: an example is some thirty requests, minutes to shrink; the failing request
    # is named in the assertion as it is.
    phases=[Phase.explicit, Phase.generate],
)


@dataclass(frozen=True)
class Page:
    """A route and what a client puts in it: path parts (each of a kind of value the world
    has), query or form fields."""

    method: str
    path: str
    role: str  # "operator", "customer" or "anyone"
    fields: tuple[str, ...] = ()
    # The form's CSRF token is never the right one (signing out would end the example).
    bad_csrf_only: bool = False


ORDER_FIELDS = (
    "model", "carrier", "relay_point", "postcode", "city",
    *(f"address_{f}" for f in ("name", "street", "postcode", "town", "country")),
)  # fmt: skip

PAGES = [
    Page("GET", "", "anyone"),
    Page("GET", "/", "anyone"),
    Page("GET", "/login", "anyone", ("next",)),
    Page("POST", "/login", "anyone", ("login", "password", "next")),
    Page("POST", "/logout", "anyone", bad_csrf_only=True),
    Page("GET", "/language", "anyone", ("lang", "next")),
    Page("GET", "/lines", "customer"),
    Page("GET", "/lines/{line_id}", "customer"),
    Page("GET", "/lines/{line_id}/associate", "customer", ("mac",)),
    Page("POST", "/lines/{line_id}/associate", "customer", ("mac",)),
    Page("GET", "/associations/{association_id}", "customer"),
    Page("GET", "/associations/{association_id}/status", "customer"),
    Page("GET", "/devices/{mac}/return", "customer"),
    Page("POST", "/devices/{mac}/return", "customer"),
    Page("GET", "/returns/{reference}", "customer"),
    Page("GET", "/lines/{line_id}/order", "customer", ("model",)),
    Page("GET", "/lines/{line_id}/order/shipping", "customer", ORDER_FIELDS),
    Page("POST", "/lines/{line_id}/order/summary", "customer", ORDER_FIELDS),
    Page(
        "POST",
        "/lines/{line_id}/order",
        "customer",
        (*ORDER_FIELDS, "idempotency_key", "accept_contract", "contract_version"),
    ),
    Page("GET", "/orders/{order_id}", "customer"),
    Page("GET", "/relay-map.svg", "customer", ("postcode", "city")),
    Page("GET", "/contract", "anyone"),
    Page("GET", "/ops/orders", "operator"),
    Page("GET", "/ops/orders/{order_id}", "operator"),
    Page("POST", "/ops/orders/{order_id}", "operator", ("mac", "tracking")),
    Page("GET", "/ops/returns", "operator", ("received",)),
    Page("POST", "/ops/returns/{reference}/receive", "operator"),
    Page("GET", "/ops/unknown", "operator"),
    Page("POST", "/ops/unknown/{mac}/claim", "operator", ("model", "account_id")),
    Page("GET", "/ops/devices", "operator", ("mac",)),
    Page("GET", "/ops/devices/{mac}", "operator"),
    Page("GET", "/ops/pushes", "operator"),
]


def test_every_page_of_the_manager_is_fuzzed() -> None:
    routes = {
        (route.method, resource.canonical)
        for resource in create_manager().router.resources()
        for route in resource
        if route.method != "HEAD" and resource.canonical != "/static"
    }
    assert routes == {(page.method, page.path) for page in PAGES}


# -- the values ----------------------------------------------------------------------------

ANY_CHAR = st.one_of(
    st.characters(),  # control, right-to-left, combining characters among them
    st.characters(categories=["Nd", "No", "Nl"]),
    st.characters(categories=["Cs"]),
    st.sampled_from("\x00\u202e\ufeff%/.;?#&=+ \t\r\n"),
)
HOSTILE = st.one_of(
    # Digits of any script: '²' passes str.isdigit and int() refuses it; U+0661 int() reads as 1.
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=24),
    st.text(ANY_CHAR, max_size=40),
    # Numbers past a 64-bit column and past int()'s 4,300-digit limit.
    # (Spelt, not drawn as ints: hypothesis could not print one of 6,000 digits.)
    st.builds(
        lambda sign, head, zeros, tail: sign + head + "0" * zeros + tail,
        st.sampled_from(["", "-", "+"]),
        st.sampled_from("123456789"),
        st.integers(17, 6000),
        st.text(st.sampled_from("0123456789"), max_size=4),
    ),
    # Long strings: the form limit is MAX_FORM bytes, a request line 8,190.
    st.builds(lambda c, n: c * n, st.sampled_from("9aé\u0661"), st.integers(100, MAX_FORM + 10)),
    st.sampled_from(
        [
            "",
            "²",
            "\u0661",
            "\uff11",
            "1²",
            "0",
            "-1",
            " 1",
            "1\n",
            "+1",
            "1_0",
            "1e3",
            "0x1",
            "\x00",
            "\ud800",
            "a\udfffb",
            "RT-\u0661",
            "RT-%00",
            "../../etc/passwd",
            "//evil.example",
            f"{PREFIX}//evil.example",
            f"{PREFIX}/\\evil",
            "<script>alert(1)</script>",
            "NaN",
        ]
    ),
)


def _known(mw: FuzzWorld) -> dict[str, list[str]]:
    """The world's own values, by the name of the part or field that takes them."""
    w: World = mw.world
    macs = [w.yealink_mac, "00:15:65:4A:A9:37", w.linphone_mac, "001565000077"]
    return {
        # The line without a phone most often: its order pages go furthest.
        "line_id": [str(n) for n in (mw.free_line, mw.free_line, *w.line_ids, w.other_line_id)],
        "association_id": ["1"],
        "order_id": [str(mw.order_id)],
        "mac": macs,
        "reference": [mw.reference, mw.reference.lower()],
        "model": ["yealink-t46u", "linphone-softphone"],
        "account_id": [str(w.account_id), str(w.other_account_id)],
        "carrier": ["dhl", "colissimo", "mondial-relay"],
        "postcode": ["75002", "69001"],
        "city": ["Paris", "Lyon"],
        "address_country": ["FR", "BE"],
        "accept_contract": ["yes"],
        "lang": ["fr", "en"],
        "next": [f"{PREFIX}/lines", f"{PREFIX}/ops/orders"],
    }


def _value(known: dict[str, list[str]], name: str, share: int = 2) -> st.SearchStrategy[str]:
    """Hostile `share` times in `share` + 1; else a value the world knows."""
    own = known.get(name)
    # The world's value first: what hypothesis tries first and simplest, the hostile ones after.
    return st.one_of(st.sampled_from(own), *[HOSTILE] * share) if own else HOSTILE


def _names(page: Page) -> list[str]:
    return [part[1:-1] for part in page.path.split("/") if part.startswith("{")]


@dataclass
class Request:
    page: Page
    path: dict[str, str]
    fields: dict[str, str]
    good_csrf: bool
    charset: str


def _requests(mw: FuzzWorld, pages: list[Page]) -> st.SearchStrategy[list[Request]]:
    known = _known(mw)

    def one(page: Page) -> st.SearchStrategy[Request]:
        return st.builds(
            Request,
            st.just(page),
            # Half the time a page of the world's, so that its fields reach the handler.
            st.fixed_dictionaries({name: _value(known, name, 1) for name in _names(page)}),
            st.fixed_dictionaries({name: _value(known, name) for name in page.fields}),
            st.just(False) if page.bad_csrf_only else st.booleans() | st.just(True),
            # UTF-7 spells a lone surrogate in plain ASCII; UTF-8 cannot (sent as its bytes).
            st.sampled_from(["utf-8", "utf-8", "utf-7"]),
        )

    return st.tuples(*(one(page) for page in pages)).map(list)


# -- the exchange ---------------------------------------------------------------------------


def _quoted(value: str, charset: str = "utf-8") -> str:
    return quote(value, safe="", encoding=charset, errors="surrogatepass")


async def _send(browser: Browser, request: Request) -> tuple[int, str, str]:
    path = request.page.path
    for name, value in request.path.items():
        path = path.replace("{" + name + "}", _quoted(value))
    page = request.page
    if page.method == "GET":
        query = "&".join(f"{name}={_quoted(v)}" for name, v in request.fields.items())
        url = URL(PREFIX + path + (f"?{query}" if query else ""), encoded=True)
        resp = await browser.client.get(url, allow_redirects=False)
    else:
        csrf = browser.csrf() if request.good_csrf else "forged-" + browser.csrf()[::-1]
        form = {**request.fields, "csrf": csrf}
        body = urlencode(form, encoding=request.charset, errors="surrogatepass")
        resp = await browser.client.post(
            URL(PREFIX + path, encoded=True),
            data=body.encode("ascii"),
            headers={
                "Content-Type": f"application/x-www-form-urlencoded; charset={request.charset}"
            },
            allow_redirects=False,
        )
    return resp.status, await resp.text(errors="replace"), resp.headers.get("Location", "")


async def _database(sessions: SessionFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table."""
    found = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return found


def _changes(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        name: {"gone": [r for r in rows if r not in after[name]][:3],
               "new": [r for r in after[name] if r not in rows][:3]}
        for name, rows in before.items()
        if rows != after[name]
    }  # fmt: skip


async def _fuzz(browser: Browser, sessions: SessionFactory, requests: list[Request]) -> None:
    before = await _database(sessions)
    for request in requests:
        status, text, location = await _send(browser, request)
        what = (request.page.method, request.page.path, request.path, request.fields, status)
        assert status < 500, (what, text[:500])
        assert "Traceback" not in text, what
        if 300 <= status < 400:
            target = urlsplit(location)
            # Never an open redirect: back into the Manager, on this site.
            assert not target.netloc and target.path.startswith(PREFIX + "/"), (what, location)
        if request.page.method == "POST" and not request.good_csrf:
            assert status >= 400, what
        after = await _database(sessions)
        if status >= 400:
            assert after == before, (what, _changes(before, after))
        before = after


@pytest.fixture
async def mw(
    sessions: SessionFactory, world: World, settings: Settings, catalog: Catalog
) -> FuzzWorld:
    """The Manager's world, with an order to ship (Bob's: Alice's free line stays orderable)
    and a return awaited (Alice's softphone), so that their pages and forms are reached."""
    base = await make_manager_world(sessions, world)
    async with sessions() as session, session.begin():
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(),
            orders.OrderRequest(
                line_id=world.other_line_id, model_id="yealink-t46u", carrier="dhl",
                address={"street": "3 rue Y", "postcode": "69001", "town": "Lyon"},
            ),
            accept_contract=True,
        )  # fmt: skip
        row, _ = await returns.request_return(session, world.linphone_mac)
        return FuzzWorld(base.world, order.id, row.reference)


ROLES = {"operator": OPERATOR, "customer": ALICE, "anyone": None}


@pytest.fixture
async def browser(client: TestClient, mw: FuzzWorld, role: str) -> Browser:  # type: ignore[type-arg]
    """Signed in once for all of a test's examples: the client and its cookies outlive them."""
    browser = Browser(client)
    who = ROLES[role]
    if who is None:
        await client.get(PREFIX + "/login")  # the CSRF cookie, as a visitor has it
    else:
        status, _ = await browser.sign_in(*who)
        assert status == 200
    return browser


@pytest.mark.parametrize("role", ["operator", "customer"])
@FUZZ
@given(data=st.data())
async def test_every_page_answers_hostile_values(
    browser: Browser, mw: FuzzWorld, sessions: SessionFactory, role: str, data: st.DataObject
) -> None:
    """A person's pages: their role's and anyone's."""
    pages = [page for page in PAGES if page.role in (role, "anyone")]
    await _fuzz(browser, sessions, data.draw(_requests(mw, pages)))


@pytest.mark.parametrize("role", ["anyone"])
@hyp_settings(FUZZ, max_examples=EXAMPLES // 2)
@given(data=st.data())
async def test_every_page_answers_hostile_values_to_a_visitor(
    browser: Browser, mw: FuzzWorld, sessions: SessionFactory, role: str, data: st.DataObject
) -> None:
    """Every page: each of those behind a sign-in sends the visitor to it, with the page to
    come back to (if it is short enough for a Location header)."""
    await _fuzz(browser, sessions, data.draw(_requests(mw, PAGES)))
