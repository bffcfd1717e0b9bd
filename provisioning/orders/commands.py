"""The operator's daily work from the `provisioning` command: orders by state, late orders,
shipping an order with the scanned phone, returns received at the warehouse. Registered with
`provisioning.commands.command`, imported only when `order` or `return` runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.commands import Context, arg, command, human, positive
from provisioning.db.models import ORDER_STATES, RETURN_STATES, utcnow
from provisioning.orders import fulfilment, orders, returns
from provisioning.orders.carriers import load_carriers
from provisioning.orders.views import order_view, return_view, shipment_view


def _order_line(view: dict[str, Any]) -> str:
    where = view["shipping"]["relay_point"] or view["shipping"]["delivery"]["town"]
    return (
        f"{view['id']}\t{view['kind']}\t{view['state']}{' LATE' if view['late'] else ''}\t"
        f"account {view['account_id']}\tline {view['line_id']}\t{view['model']}\t"
        f"{view['shipping']['carrier']} {where}\tship by {view['ship_by']}"
    )


@command(
    "order list",
    "list orders, oldest first",
    arg("--state", choices=ORDER_STATES),
    arg("--account", type=positive),
    arg("--late", action="store_true", help="validated and past their ship-by time"),
)
async def cmd_order_list(ctx: Context, session: AsyncSession) -> None:
    now = utcnow()
    late = getattr(ctx.args, "late", False)
    rows = await orders.list_orders(
        session,
        account_id=getattr(ctx.args, "account", None),
        state=getattr(ctx.args, "state", None),
        late_at=now if late else None,
    )
    views = [order_view(o, now) for o in rows]
    empty = "no late orders" if late else "no orders"
    ctx.emit("\n".join(_order_line(v) for v in views) or empty, views)


@command("order late", "orders past their ship-by time", arg("--account", type=positive))
async def cmd_order_late(ctx: Context, session: AsyncSession) -> None:
    ctx.args.late = True
    await cmd_order_list(ctx, session)


@command("order show", "show an order", arg("order_id", type=positive))
async def cmd_order_show(ctx: Context, session: AsyncSession) -> None:
    view = order_view(await orders.get_order(session, ctx.args.order_id), utcnow())
    ctx.emit(human(view), view)


@command(
    "order ship",
    "ship an order with the phone scanned",
    arg("order_id", type=positive),
    arg("mac", help="MAC of the phone going into the parcel"),
    arg("--tracking", help="carrier's tracking number (default: booked now)"),
)
async def cmd_order_ship(ctx: Context, session: AsyncSession) -> None:
    from provisioning.render.refusals import FilesCheck

    a = ctx.args
    shipment = await fulfilment.ship_order(
        session,
        ctx.catalog,
        ctx.cipher,
        load_carriers(),
        a.order_id,
        a.mac,
        tracking=a.tracking,
        actor=ctx.actor,
        files=FilesCheck.for_settings(ctx.catalog, ctx.settings, ctx.cipher),
    )
    view = shipment_view(shipment, ctx.settings.base_url)
    view["order"] = order_view(shipment.order, utcnow())
    human = (
        f"order {shipment.order.id} shipped with {shipment.device.mac}, tracking "
        f"{shipment.order.tracking}\nprovisioning URL: {view['url']}"
    )
    ctx.emit(human, view)


@command("order cancel", "cancel an order not shipped", arg("order_id", type=positive))
async def cmd_order_cancel(ctx: Context, session: AsyncSession) -> None:
    order = await orders.cancel_order(session, ctx.args.order_id, actor=ctx.actor)
    ctx.emit(f"order {order.id} cancelled", order_view(order, utcnow()))


def _return_line(view: dict[str, Any]) -> str:
    return (
        f"{view['reference']}\t{view['mac']}\taccount {view['account_id']}\t{view['reason']}\t"
        f"{view['state']}\tsince {view['created_at']}"
    )


@command("return create", "give a phone back", arg("mac"))
async def cmd_return_create(ctx: Context, session: AsyncSession) -> None:
    row, created = await returns.request_return(session, ctx.args.mac, actor=ctx.actor)
    view = return_view(row)
    ctx.emit(row.reference if created else f"{row.reference} (already under way)", view)


@command(
    "return list",
    "list returns",
    arg("--state", choices=RETURN_STATES),
    arg("--account", type=positive),
)
async def cmd_return_list(ctx: Context, session: AsyncSession) -> None:
    rows = await returns.list_returns(session, account_id=ctx.args.account, state=ctx.args.state)
    views = [return_view(r) for r in rows]
    ctx.emit("\n".join(_return_line(v) for v in views) or "no returns", views)


@command(
    "return receive",
    "the warehouse received the phone",
    arg("reference", help="return reference (RT-XXXX-XXXX) or the phone's MAC"),
)
async def cmd_return_receive(ctx: Context, session: AsyncSession) -> None:
    row = await returns.receive_return(session, ctx.cipher, ctx.args.reference, actor=ctx.actor)
    ctx.emit(
        f"return {row.reference}: {row.mac} received, its credential revoked", return_view(row)
    )
