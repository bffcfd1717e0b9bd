"""Ordering a Plug & Phone for a line, step by step: the model, the shipping (DHL to an
address, or a Mondial Relay pick-up point chosen on the town's map), the summary with the
contract, the confirmation. The same pages order a replacement ("Changer de téléphone") for a
line that has a phone. Each step is a plain form; choices travel in the forms, so a page can be
reloaded or gone back to, and nothing is stored until "Valider" (then with an idempotency key,
so a double click gives one order)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping

from provisioning.accounts import get_account
from provisioning.db.models import Account, Line, utcnow
from provisioning.devices.catalog import Model
from provisioning.errors import DomainError, InvalidInput, NotFound
from provisioning.orders import orders
from provisioning.orders.carriers import Carrier, Carriers
from provisioning.orders.contract import current_contract
from provisioning.orders.money import SHIPPING_CENTS, basis_points, vat_cents
from provisioning.orders.relay_map import relay_map_svg
from provisioning.orders.relay_points import Search
from provisioning.orders.views import order_view
from provisioning.state import SERVICES
from provisioning.web.auth import actor, customer_only
from provisioning.web.pages import PREFIX, path_digits, path_id, redirect, render, who
from provisioning.web.scope import own_line
from provisioning.web.users import Who

routes = web.RouteTableDef()

CARRIERS: web.AppKey[Carriers] = web.AppKey("web_carriers", Carriers)
RELAY_POINTS = 8
ADDRESS_FIELDS = ("name", "street", "postcode", "town", "country")


def _me(request: web.Request) -> Who:
    person = who(request)
    assert person is not None and person.account_id is not None
    return person


def _text(form: MultiMapping[Any], name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


class Draft:
    """What the customer chose so far, read from a form or a query string."""

    def __init__(self, form: MultiMapping[Any]) -> None:
        self.model = _text(form, "model", 64)
        self.carrier = _text(form, "carrier", 32)
        self.relay_point = _text(form, "relay_point", 32)
        self.postcode = _text(form, "postcode", 20)
        self.city = _text(form, "city", 100)
        self.address = {f: _text(form, f"address_{f}") for f in ADDRESS_FIELDS}

    def request(self, line_id: int, kind: str, carriers: Carriers) -> orders.OrderRequest:
        carrier = carriers.get(self.carrier or "dhl")
        if carrier.to_relay_point:
            return orders.OrderRequest(
                line_id=line_id,
                model_id=self.model,
                carrier=carrier.name,
                kind=kind,
                relay_point_id=self.relay_point or None,
            )
        address = {k: v for k, v in self.address.items() if k != "country" or v}
        return orders.OrderRequest(
            line_id=line_id,
            model_id=self.model,
            carrier=carrier.name,
            kind=kind,
            address=address,
        )

    def hidden(self) -> dict[str, str]:
        """The choices as hidden fields of the next step's form."""
        values = {"model": self.model, "carrier": self.carrier}
        if self.relay_point:
            values["relay_point"] = self.relay_point
        else:
            values.update({f"address_{k}": v for k, v in self.address.items()})
        return values


async def _context(request: web.Request) -> tuple[Line, Account, orders.Offer]:
    person = _me(request)
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        line = await own_line(session, person, path_digits(request, "line_id", "line"))
        account = await get_account(session, line.account_id)
        offer = await orders.offer(session, services.catalog, line.id)
    return line, account, offer


def _prices(request: web.Request, model: Model) -> dict[str, int]:
    rate = basis_points(request.config_dict[SERVICES].settings.vat_rate)
    excl = model.price_cents or 0
    return {"excl": excl, "incl": excl + vat_cents(excl, rate)}


def _shipping_prices(request: web.Request) -> dict[str, int]:
    # Shown before an address is known; the carrier's quote on the summary is what is charged.
    rate = basis_points(request.config_dict[SERVICES].settings.vat_rate)
    excl = SHIPPING_CENTS
    return {"excl": excl, "incl": excl + vat_cents(excl, rate)}


def _model_page(
    request: web.Request,
    line: Line,
    offer: orders.Offer,
    *,
    chosen: str = "",
    error: DomainError | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "order_model.html",
        status=status,
        line=line,
        offer=offer,
        prices={m.id: _prices(request, m) for m in offer.models},
        chosen=chosen,
        error=error,
    )


@routes.get("/lines/{line_id}/order")
@customer_only
async def choose_model(request: web.Request) -> web.Response:
    line, _, offer = await _context(request)
    if offer.kind == "new" and await _has_open_order(request, line.id):
        raise redirect(f"{PREFIX}/lines/{line.id}")
    return _model_page(request, line, offer, chosen=request.query.get("model", "")[:64])


async def _has_open_order(request: web.Request, line_id: int) -> bool:
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        found = await orders.list_orders(
            session, account_id=_me(request).account_id, state="validated"
        )
    return any(o.line_id == line_id for o in found)


async def _search(
    request: web.Request, carrier: Carrier, draft: Draft, account: Account
) -> tuple[Search | None, DomainError | None]:
    postcode = draft.postcode.strip()
    city = draft.city.strip()
    if not postcode and not city:
        postcode = account.postcode
    if not postcode and not city:
        return None, None
    try:
        return await carrier.relay_points(postcode or None, city or None, RELAY_POINTS), None
    except DomainError as exc:
        return None, exc


async def _shipping_page(
    request: web.Request,
    line: Line,
    account: Account,
    offer: orders.Offer,
    draft: Draft,
    *,
    error: DomainError | None = None,
    status: int = 200,
) -> web.Response:
    carriers = request.config_dict[CARRIERS]
    model = next((m for m in offer.models if m.id == draft.model), None)
    if model is None:
        missing = InvalidInput("model: choose one of the models offered", field="model")
        return _model_page(request, line, offer, error=missing, status=422)
    carrier = carriers.get(draft.carrier) if draft.carrier in carriers.names() else None
    carrier = carrier or carriers.get("dhl")
    draft.carrier = carrier.name
    search, search_error = (None, None)
    if carrier.to_relay_point:
        search, search_error = await _search(request, carrier, draft, account)
    address = draft.address
    if not any(address[f] for f in ("street", "postcode", "town")) and error is None:
        # By default the account holder's address.
        address = {
            "name": account.name,
            "street": account.street,
            "postcode": account.postcode,
            "town": account.town,
            "country": account.country,
        }
    query = {"postcode": search.place.postcode or "", "city": ""} if search else {}
    if search and not search.place.postcode:
        query = {"city": search.place.town}
    return render(
        request,
        "order_shipping.html",
        status=status,
        line=line,
        offer=offer,
        model=model,
        carriers=[carriers.get(n) for n in carriers.names()],
        carrier=carrier,
        draft=draft,
        address=address,
        search=search,
        search_error=search_error,
        map_url=f"{PREFIX}/relay-map.svg?{urlencode(query)}" if search else None,
        tiles=request.config_dict[SERVICES].settings.map_tiles,
        attribution=request.config_dict[SERVICES].settings.map_attribution,
        countries=request.config_dict[SERVICES].settings.shipping_countries,
        shipping=_shipping_prices(request),
        error=error,
    )


@routes.get("/lines/{line_id}/order/shipping")
@customer_only
async def choose_shipping(request: web.Request) -> web.Response:
    line, account, offer = await _context(request)
    return await _shipping_page(request, line, account, offer, Draft(request.query))


async def _quote(
    request: web.Request, line: Line, offer: orders.Offer, draft: Draft
) -> orders.Quote:
    services = request.config_dict[SERVICES]
    carriers = request.config_dict[CARRIERS]
    async with services.read_sessions() as session:
        return await orders.quote_order(
            session,
            services.settings,
            services.catalog,
            carriers,
            draft.request(line.id, offer.kind, carriers),
        )


def _summary_page(
    request: web.Request,
    line: Line,
    offer: orders.Offer,
    draft: Draft,
    quote: orders.Quote,
    *,
    key: str,
    accepted: bool = False,
    error: DomainError | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "order_summary.html",
        status=status,
        line=line,
        offer=offer,
        quote=quote,
        hidden=draft.hidden(),
        key=key,
        accepted=accepted,
        contract=current_contract(request.config_dict[SERVICES].settings),
        error=error,
    )


@routes.post("/lines/{line_id}/order/summary")
@customer_only
async def summary(request: web.Request) -> web.Response:
    line, account, offer = await _context(request)
    draft = Draft(await request.post())
    try:
        quote = await _quote(request, line, offer, draft)
    except DomainError as exc:
        if exc.status == 404 and exc.code == "not-found":
            raise
        return await _shipping_page(
            request, line, account, offer, draft, error=exc, status=exc.status
        )
    return _summary_page(request, line, offer, draft, quote, key=secrets.token_urlsafe(18))


@routes.post("/lines/{line_id}/order")
@customer_only
async def place(request: web.Request) -> web.Response:
    line, account, offer = await _context(request)
    form = await request.post()
    draft = Draft(form)
    key = _text(form, "idempotency_key", 64) or secrets.token_urlsafe(18)
    accepted = _text(form, "accept_contract", 8) == "yes"
    # The version the summary showed: a contract changed since is read again, not accepted.
    shown = _text(form, "contract_version", 64) or None
    services = request.config_dict[SERVICES]
    try:
        async with services.sessions() as session, session.begin():
            order, _ = await orders.place_order(
                session,
                services.settings,
                services.catalog,
                request.config_dict[CARRIERS],
                draft.request(line.id, offer.kind, request.config_dict[CARRIERS]),
                accept_contract=accepted,
                contract_version=shown,
                idempotency_key=key,
                actor=actor(request),
            )
            order_id = order.id
    except DomainError as exc:
        if exc.status == 404 and exc.code == "not-found":
            raise
        # Shown on the summary, with every choice kept; if the choices themselves no longer
        # hold, on the shipping step.
        try:
            quote = await _quote(request, line, offer, draft)
        except DomainError:
            return await _shipping_page(
                request, line, account, offer, draft, error=exc, status=exc.status
            )
        return _summary_page(
            request,
            line,
            offer,
            draft,
            quote,
            key=key,
            # A contract changed since it was read is ticked again once read again.
            accepted=accepted and exc.field != "contract_version",
            error=exc,
            status=exc.status,
        )
    raise redirect(f"{PREFIX}/orders/{order_id}")


@routes.get("/orders/{order_id}")
@customer_only
async def order_page(request: web.Request) -> web.Response:
    person = _me(request)
    order_id = path_id(request, "order_id", "order")
    async with request.config_dict[SERVICES].read_sessions() as session:
        try:
            order = await orders.get_order(session, order_id)
        except NotFound:
            raise NotFound(f"order {order_id} not found") from None
        if order.account_id != person.account_id:
            raise NotFound(f"order {order_id} not found")
        line = await session.get(Line, order.line_id) if order.line_id else None
    point = None
    if order.relay_point_id:
        carrier = request.config_dict[CARRIERS].get(order.carrier)
        point = await carrier.relay_point(order.relay_point_id)
    return render(
        request,
        "order_done.html",
        contract=current_contract(request.config_dict[SERVICES].settings),
        order=order,
        view=order_view(order, utcnow()),
        line=line,
        point=point,
    )


@routes.get("/contract")
async def contract_page(request: web.Request) -> web.Response:
    """The contract in force, for anyone (it is read before signing up as well as when
    ordering); the operator's own page when CONTRACT_URL names one."""
    contract = current_contract(request.config_dict[SERVICES].settings)
    if contract.url:
        raise web.HTTPFound(contract.url)
    return render(request, "contract.html", contract=contract)


@routes.get("/relay-map.svg")
@customer_only
async def relay_map(request: web.Request) -> web.Response:
    carrier = request.config_dict[CARRIERS].relay_carrier(None)
    search = await carrier.relay_points(
        request.query.get("postcode") or None, request.query.get("city") or None, RELAY_POINTS
    )
    # The page says in the reader's language that the points are samples, and its legend is
    # HTML (readable on a phone): the plan is shown without its own legend rows (see .map-frame).
    plan = relay_map_svg(replace(search, sample=False))
    response = web.Response(text=plan, content_type="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
