"""A customer's pages: the account's lines, a line's Téléphone section, associating a line with
a phone the customer already has (and following it live until applied), returning a phone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.accounts import get_account
from provisioning.api.access import caller_ip
from provisioning.db.models import Association, Device, Line, LineSlot, Order, utcnow
from provisioning.errors import DomainError, LineHasPhone, NotFound
from provisioning.orders import returns
from provisioning.push import associations
from provisioning.state import SERVICES
from provisioning.web.auth import actor, customer_only
from provisioning.web.formats import Formats
from provisioning.web.pages import (
    PREFIX,
    language,
    path_digits,
    path_id,
    redirect,
    render,
    who,
)
from provisioning.web.scope import own_device, own_line
from provisioning.web.users import Who

routes = web.RouteTableDef()

# The promise of DESIGN.md: a change is on the phone within five minutes.
APPLY_PROMISE = timedelta(minutes=5)


@dataclass(frozen=True)
class LineRow:
    line: Line
    device: Device | None
    slot: int | None
    order: Order | None


def _me(request: web.Request) -> Who:
    person = who(request)
    assert person is not None and person.account_id is not None
    return person


async def _rows(
    session: AsyncSession, account_id: int, line_id: int | None = None
) -> list[LineRow]:
    query = (
        select(Line, Device, LineSlot.slot)
        .outerjoin(LineSlot, LineSlot.line_id == Line.id)
        .outerjoin(Device, Device.id == LineSlot.device_id)
        .where(Line.account_id == account_id)
        .order_by(Line.id)
    )
    if line_id is not None:
        query = query.where(Line.id == line_id)
    found = (await session.execute(query)).all()
    under_way = (
        await session.scalars(
            select(Order)
            .where(Order.account_id == account_id, Order.state.in_(("validated", "shipped")))
            .order_by(Order.id)
        )
    ).all()
    open_orders = {o.line_id: o for o in under_way}
    # A replacement is for every line of the phone it replaces, not only the line it was
    # ordered from: each of them shows it.
    replacing = {o.replaced_device_id: o for o in under_way if o.replaced_device_id is not None}
    return [
        LineRow(
            line,
            device,
            slot,
            (replacing.get(device.id) if device is not None else None) or open_orders.get(line.id),
        )
        for line, device, slot in found
    ]


def _model_label(request: web.Request, device: Device | None) -> str:
    if device is None:
        return ""
    model = request.config_dict[SERVICES].catalog.models.get(device.model_id)
    return model.label if model else device.model_id


@routes.get("/lines")
@customer_only
async def lines(request: web.Request) -> web.Response:
    person = _me(request)
    assert person.account_id is not None
    async with request.config_dict[SERVICES].read_sessions() as session:
        account = await get_account(session, person.account_id)
        rows = await _rows(session, person.account_id)
        awaiting = await returns.list_returns(
            session, account_id=person.account_id, state="awaiting"
        )
    items = [(r, _model_label(request, r.device)) for r in rows]
    return render(request, "lines.html", account=account, items=items, returns=awaiting)


async def _line_page(
    request: web.Request,
    *,
    confirm_mac: str | None = None,
    error: DomainError | None = None,
    status: int = 200,
) -> web.Response:
    person = _me(request)
    assert person.account_id is not None
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        line = await own_line(session, person, path_digits(request, "line_id", "line"))
        row = (await _rows(session, person.account_id, line.id))[0]
        candidates: list[associations.Candidate] = []
        if row.device is None:
            candidates = await associations.compatible_devices(session, line.id, caller_ip(request))
    confirm = next((c for c in candidates if c.device.mac == confirm_mac), None)
    if confirm_mac is not None and confirm is None and error is None:
        raise NotFound("device not found")
    return render(
        request,
        "line.html",
        status=status,
        row=row,
        label=_model_label(request, row.device),
        candidates=candidates,
        labels={c.device.mac: _model_label(request, c.device) for c in candidates},
        confirm=confirm,
        error=error,
    )


@routes.get("/lines/{line_id}")
@customer_only
async def line_page(request: web.Request) -> web.Response:
    return await _line_page(request)


@routes.get("/lines/{line_id}/associate")
@customer_only
async def confirm_association(request: web.Request) -> web.Response:
    """The confirmation window: the line page with a dialog over it (no script needed)."""
    mac = request.query.get("mac", "")[:32]
    return await _line_page(request, confirm_mac=mac)


@routes.post("/lines/{line_id}/associate")
@customer_only
async def associate(request: web.Request) -> web.Response:
    person = _me(request)
    form = await request.post()
    mac = str(form.get("mac", ""))[:32]
    services = request.config_dict[SERVICES]
    try:
        async with services.sessions() as session, session.begin():
            line = await own_line(session, person, path_digits(request, "line_id", "line"))
            device = await own_device(session, person, mac, lock=True)
            association = await associations.associate(
                session, line.id, device.mac, actor=actor(request),
                files=services.files_check,
            )  # fmt: skip
            association_id = association.id
    except LineHasPhone as exc:
        # A second click on "Valider" (or a reload) finds the line on that very phone: it
        # follows the association the first click made.
        earlier = await _association_of(request, person, mac)
        if earlier is None:
            return await _line_page(request, error=exc, status=exc.status)
        association_id = earlier
    except DomainError as exc:
        if exc.status == 404:
            raise
        # E.g. the phone has no free slot any more: the line page explains, nothing changed.
        return await _line_page(request, error=exc, status=exc.status)
    raise redirect(f"{PREFIX}/associations/{association_id}")


async def _association_of(request: web.Request, person: Who, mac: str) -> int | None:
    """The newest association, made in the last minutes, of this line with this phone."""
    line_id = path_id(request, "line_id", "line")
    async with request.config_dict[SERVICES].read_sessions() as session:
        device = await own_device(session, person, mac)
        return await session.scalar(
            select(Association.id)
            .where(
                Association.line_id == line_id,
                Association.device_id == device.id,
                Association.account_id == person.account_id,
                Association.created_at > utcnow() - APPLY_PROMISE,
            )
            .order_by(Association.id.desc())
            .limit(1)
        )


async def _own_association(request: web.Request) -> dict[str, Any]:
    person = _me(request)
    association_id = path_id(request, "association_id", "association")
    async with request.config_dict[SERVICES].read_sessions() as session:
        found = await associations.get_association(session, association_id)
        if found.account_id != person.account_id:
            raise NotFound(f"association {association_id} not found")
        view = await associations.association_view(session, found)
        line = await session.get(Line, found.line_id)
        device = await session.get(Device, found.device_id)
        others = (
            await session.execute(
                select(Line.number, Line.display_name)
                .join(LineSlot, LineSlot.line_id == Line.id)
                .where(LineSlot.device_id == found.device_id, Line.id != found.line_id)
                .order_by(LineSlot.slot)
            )
        ).all()
    created = found.created_at
    elapsed = (utcnow() - created).total_seconds()
    view["late"] = view["status"] == "overdue" or (
        view["status"] != "applied" and elapsed > APPLY_PROMISE.total_seconds()
    )
    view["elapsed_seconds"] = round(elapsed)
    view["line_number"] = line.number if line else ""
    # Shown as they are: times in the account's zone, the duration in the reader's language.
    fmt = Formats(language(request), request.config_dict[SERVICES].settings.default_timezone)
    # The phone as its owner knows it: its model, the lines it already rings for, its label.
    view["model_label"] = _model_label(request, device)
    view["mac_text"] = fmt.mac(view["mac"])
    view["line_text"] = fmt.phone(view["line_number"])
    view["other_lines"] = [
        f"{fmt.phone(number)} ({name})" if name else fmt.phone(number) for number, name in others
    ]
    view["started"] = fmt.when(created)
    view["deadline_text"] = fmt.when(datetime.fromisoformat(view["deadline"]))
    seconds = view["seconds_to_apply"]
    view["seconds_text"] = fmt.number(seconds) if seconds is not None else None
    return view


@routes.get("/associations/{association_id}")
@customer_only
async def association_page(request: web.Request) -> web.Response:
    view = await _own_association(request)
    return render(request, "association.html", view=view)


@routes.get("/associations/{association_id}/status")
@customer_only
async def association_status(request: web.Request) -> web.Response:
    """What the status panel's script polls: the same view the API gives, plus `late`."""
    response = web.json_response(await _own_association(request))
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/devices/{mac}/return")
@customer_only
async def confirm_return(request: web.Request) -> web.Response:
    person = _me(request)
    async with request.config_dict[SERVICES].read_sessions() as session:
        device = await own_device(session, person, request.match_info["mac"])
        row = await returns.awaiting_return(session, device.id)
        replacement = await returns.replacement_on_order(session, device.id)
    if row is not None:
        raise redirect(f"{PREFIX}/returns/{row.reference}")
    return render(
        request,
        "return_confirm.html",
        device=device,
        label=_model_label(request, device),
        lines=[s.line for s in sorted(device.slots, key=lambda s: s.slot)],
        replacement=replacement,
    )


@routes.post("/devices/{mac}/return")
@customer_only
async def return_device(request: web.Request) -> web.Response:
    person = _me(request)
    async with request.config_dict[SERVICES].sessions() as session, session.begin():
        device = await own_device(session, person, request.match_info["mac"], lock=True)
        row, _ = await returns.request_return(session, device.mac, actor=actor(request))
        reference = row.reference
    raise redirect(f"{PREFIX}/returns/{reference}")


@routes.get("/returns/{reference}")
@customer_only
async def return_page(request: web.Request) -> web.Response:
    person = _me(request)
    text = request.match_info["reference"][:32]
    if not text.upper().startswith("RT-"):
        raise NotFound("return not found")
    async with request.config_dict[SERVICES].read_sessions() as session:
        row = await returns.find_return(session, text)
        if row.account_id != person.account_id:
            raise NotFound("return not found")
        replacement = None
        kept: list[Line] = []
        if row.state == "awaiting":
            replacement = await returns.replacement_on_order(session, row.device_id)
        if replacement is not None:
            kept = list(
                (
                    await session.scalars(
                        select(Line)
                        .join(LineSlot, LineSlot.line_id == Line.id)
                        .where(LineSlot.device_id == row.device_id)
                        .order_by(LineSlot.slot)
                    )
                ).all()
            )
    return render(request, "return_done.html", row=row, replacement=replacement, kept=kept)
