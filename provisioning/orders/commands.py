"""The operator's daily work from the `provisioning` command: orders by state, late orders,
shipping an order with the scanned phone, returns received at the warehouse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import ORDER_STATES, RETURN_STATES, utcnow
from provisioning.orders import fulfilment, orders, returns
from provisioning.orders.carriers import load_carriers
from provisioning.orders.views import order_view, return_view, shipment_view

if TYPE_CHECKING:
    import argparse

    from provisioning.cli import Context

Body = Callable[["Context", AsyncSession], Awaitable[None]]


def _order_line(view: dict[str, Any]) -> str:
    where = view["shipping"]["relay_point"] or view["shipping"]["delivery"]["town"]
    return (
        f"{view['id']}\t{view['kind']}\t{view['state']}{' LATE' if view['late'] else ''}\t"
        f"account {view['account_id']}\tline {view['line_id']}\t{view['model']}\t"
        f"{view['shipping']['carrier']} {where}\tship by {view['ship_by']}"
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


async def cmd_order_late(ctx: Context, session: AsyncSession) -> None:
    ctx.args.late = True
    await cmd_order_list(ctx, session)


async def cmd_order_show(ctx: Context, session: AsyncSession) -> None:
    from provisioning.cli import _human

    view = order_view(await orders.get_order(session, ctx.args.order_id), utcnow())
    ctx.emit(_human(view), view)


async def cmd_order_ship(ctx: Context, session: AsyncSession) -> None:
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
    )
    view = shipment_view(shipment, ctx.settings.base_url)
    view["order"] = order_view(shipment.order, utcnow())
    human = (
        f"order {shipment.order.id} shipped with {shipment.device.mac}, tracking "
        f"{shipment.order.tracking}\nprovisioning URL: {view['url']}"
    )
    ctx.emit(human, view)


async def cmd_order_cancel(ctx: Context, session: AsyncSession) -> None:
    order = await orders.cancel_order(session, ctx.args.order_id, actor=ctx.actor)
    ctx.emit(f"order {order.id} cancelled", order_view(order, utcnow()))


def _return_line(view: dict[str, Any]) -> str:
    return (
        f"{view['reference']}\t{view['mac']}\taccount {view['account_id']}\t{view['reason']}\t"
        f"{view['state']}\tsince {view['created_at']}"
    )


async def cmd_return_create(ctx: Context, session: AsyncSession) -> None:
    row, created = await returns.request_return(session, ctx.args.mac, actor=ctx.actor)
    view = return_view(row)
    ctx.emit(row.reference if created else f"{row.reference} (already under way)", view)


async def cmd_return_list(ctx: Context, session: AsyncSession) -> None:
    rows = await returns.list_returns(session, account_id=ctx.args.account, state=ctx.args.state)
    views = [return_view(r) for r in rows]
    ctx.emit("\n".join(_return_line(v) for v in views) or "no returns", views)


async def cmd_return_receive(ctx: Context, session: AsyncSession) -> None:
    row = await returns.receive_return(session, ctx.cipher, ctx.args.reference, actor=ctx.actor)
    ctx.emit(
        f"return {row.reference}: {row.mac} received, its credential revoked", return_view(row)
    )


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Callable[..., argparse.ArgumentParser],
    with_session: Callable[[Body], Callable[[Context], Awaitable[None]]],
    positive: Callable[[str], int],
) -> None:
    order = sub.add_parser("order", help="phone orders").add_subparsers(dest="or", required=True)
    p = command(order, "list", with_session(cmd_order_list), "list orders, oldest first")
    p.add_argument("--state", choices=ORDER_STATES)
    p.add_argument("--account", type=positive)
    p.add_argument("--late", action="store_true", help="validated and past their ship-by time")
    p = command(order, "late", with_session(cmd_order_late), "orders past their ship-by time")
    p.add_argument("--account", type=positive)
    p = command(order, "show", with_session(cmd_order_show), "show an order")
    p.add_argument("order_id", type=positive)
    p = command(order, "ship", with_session(cmd_order_ship), "ship an order with the phone scanned")
    p.add_argument("order_id", type=positive)
    p.add_argument("mac", help="MAC of the phone going into the parcel")
    p.add_argument("--tracking", help="carrier's tracking number (default: booked now)")
    p = command(order, "cancel", with_session(cmd_order_cancel), "cancel an order not shipped")
    p.add_argument("order_id", type=positive)

    ret = sub.add_parser("return", help="phones coming back").add_subparsers(
        dest="rt", required=True
    )
    p = command(ret, "create", with_session(cmd_return_create), "give a phone back")
    p.add_argument("mac")
    p = command(ret, "list", with_session(cmd_return_list), "list returns")
    p.add_argument("--state", choices=RETURN_STATES)
    p.add_argument("--account", type=positive)
    p = command(
        ret, "receive", with_session(cmd_return_receive), "the warehouse received the phone"
    )
    p.add_argument("reference", help="return reference (RT-XXXX-XXXX) or the phone's MAC")
