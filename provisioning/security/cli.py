"""Commands of `provisioning` for phones' proofs: bans, policies, unlocking, credential rotation
and the lab's certificates. Registered by `provisioning.cli.build_parser`; they call the same
domain functions as the API."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.devices import inventory
from provisioning.security import bans, lab, policy
from provisioning.security.credentials import credentials_view, rotate_credential
from provisioning.security.factory import LAB_PLACES, certificate_places

if TYPE_CHECKING:
    from provisioning.cli import Context

SessionCommand = Callable[["Context", AsyncSession], Awaitable[None]]
Command = Callable[["Context"], Awaitable[None]]


async def cmd_ban_list(ctx: Context, session: AsyncSession) -> None:
    rows = [bans.ban_view(b) for b in await bans.active_bans(session)]
    human = "\n".join(
        f"{r['source']}\t{r['kind']}\tuntil {r['until']}\t{r['misses']} miss(es)" for r in rows
    )
    ctx.emit(human or "no bans", rows)


async def cmd_ban_lift(ctx: Context, session: AsyncSession) -> None:
    source = await bans.lift_ban(session, ctx.args.source, actor=ctx.actor)
    ctx.emit(
        f"ban of {source} lifted (running servers notice within seconds)",
        {"source": source, "lifted": True},
    )


async def device_security(ctx: Context, session: AsyncSession, mac: str) -> dict[str, Any]:
    device = await inventory.get_device(session, mac)
    return {
        "mac": device.mac,
        "policy": await policy.device_policy(session, ctx.settings, device),
        "binding": await policy.device_binding(session, device.id),
        "credentials": await credentials_view(session, device.id),
    }


async def cmd_device_security(ctx: Context, session: AsyncSession) -> None:
    view = await device_security(ctx, session, ctx.args.mac)
    binding = view["binding"]
    human = [
        f"mac: {view['mac']}",
        f"policy: {view['policy']['proofs']}, binding {view['policy']['binding']}",
        f"bound to: {binding['bound_to'] or '-'}",
        f"last refusal: {binding['refused_at'] or '-'} from {binding['refused_from'] or '-'} "
        f"({binding['refused_reason'] or '-'}, {binding['refusals']} in all)",
    ]
    for credential in view["credentials"]:
        human.append(
            f"credential: {credential['kind']} {credential['username'] or ''} "
            f"valid until {credential['valid_until'] or 'replaced'}"
        )
    ctx.emit("\n".join(human), view)


async def cmd_device_unlock(ctx: Context, session: AsyncSession) -> None:
    device = await policy.unlock_device(session, ctx.args.mac, actor=ctx.actor)
    ctx.emit(
        f"{device.mac} unlocked: bound again where it next fetches from",
        await device_security(ctx, session, device.mac),
    )


async def cmd_device_rotate(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    overlap = ctx.settings.rotation_overlap if a.overlap is None else a.overlap
    rotation = await rotate_credential(
        session,
        ctx.cipher,
        a.mac,
        a.kind,
        overlap=overlap,
        username_shape=ctx.settings.digest_username,
        actor=ctx.actor,
    )
    until = rotation.previous_valid_until
    data = rotation.view(ctx.settings.base_url)
    human = f"{rotation.kind} of {rotation.mac} renewed; the next config carries it"
    if until is not None:
        human += f"; the previous one works until {until.isoformat()}"
    if rotation.token is not None:
        human += f"\n{data['url']}"
    ctx.emit(human, data)


async def cmd_policy_show(ctx: Context, session: AsyncSession) -> None:
    view = await policy.account_policy(session, ctx.settings, ctx.args.account_id)
    ctx.emit("\n".join(f"{k}: {v}" for k, v in view.items()), view)


async def cmd_policy_set(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    await policy.set_policy(
        session,
        a.account_id,
        a.proofs,
        binding=a.binding,
        first_contact_days=a.first_contact_days,
        actor=ctx.actor,
    )
    view = await policy.account_policy(session, ctx.settings, a.account_id)
    ctx.emit(f"policy of account {a.account_id}: {view['proofs']}", view)


async def cmd_policy_clear(ctx: Context, session: AsyncSession) -> None:
    await policy.clear_policy(session, ctx.args.account_id, actor=ctx.actor)
    view = await policy.account_policy(session, ctx.settings, ctx.args.account_id)
    ctx.emit(f"account {ctx.args.account_id} follows the default policy", view)


async def cmd_certs_ca(ctx: Context) -> None:
    issued = lab.create_ca(Path(ctx.args.folder), name=ctx.args.name, days=ctx.args.days)
    ctx.emit(
        f"lab CA: {issued.certificate} (key {issued.key})",
        {"certificate": str(issued.certificate), "key": str(issued.key)},
    )


async def cmd_certs_server(ctx: Context) -> None:
    a = ctx.args
    issued = lab.create_server(Path(a.ca), Path(a.folder), a.host, days=a.days)
    ctx.emit(
        f"server certificate: {issued.certificate} (key {issued.key}); set "
        f"PROVISIONING_TLS_CERT={issued.certificate} PROVISIONING_TLS_KEY={issued.key}",
        {"certificate": str(issued.certificate), "key": str(issued.key)},
    )


async def cmd_certs_device(ctx: Context) -> None:
    a = ctx.args
    places = LAB_PLACES
    if a.family is not None:
        shapes = certificate_places(ctx.catalog)
        if a.family not in shapes:
            raise lab.LabError(f"{a.family}: no family with a [certificate] table of that name")
        places = shapes[a.family]
    issued = lab.create_device(Path(a.ca), Path(a.folder), a.mac, places=places, days=a.days)
    ctx.emit(
        f"device certificate: {issued.certificate} (key {issued.key})",
        {"certificate": str(issued.certificate), "key": str(issued.key)},
    )


# Commands that need neither the secret key nor the database.
KEYLESS: set[Any] = {cmd_certs_ca, cmd_certs_server, cmd_certs_device}


def add_commands(
    sub: Any,
    device: Any,
    command: Callable[..., argparse.ArgumentParser],
    with_session: Callable[[SessionCommand], Command],
    positive: Callable[[str], int],
) -> None:
    ban = sub.add_parser("ban", help="sources banned for missing too often")
    ban_sub = ban.add_subparsers(dest="b", required=True)
    command(ban_sub, "list", with_session(cmd_ban_list), "list active bans")
    p = command(ban_sub, "lift", with_session(cmd_ban_lift), "lift the ban of a source")
    p.add_argument("source", help="IP address or network (CIDR) as `ban list` shows it")

    p = command(device, "security", with_session(cmd_device_security), "policy, binding, creds")
    p.add_argument("mac")
    p = command(device, "unlock", with_session(cmd_device_unlock), "forget the binding")
    p.add_argument("mac")
    p = command(device, "rotate", with_session(cmd_device_rotate), "renew a credential")
    p.add_argument("mac")
    p.add_argument("kind", choices=["token", "digest"])
    p.add_argument("--overlap", type=int, help="seconds the previous one stays valid")

    pol = sub.add_parser("policy", help="proofs an account's phones must give")
    pol_sub = pol.add_subparsers(dest="p", required=True)
    p = command(pol_sub, "show", with_session(cmd_policy_show), "show an account's policy")
    p.add_argument("account_id", type=positive)
    p = command(pol_sub, "set", with_session(cmd_policy_set), "set an account's policy")
    p.add_argument("account_id", type=positive)
    p.add_argument("proofs", help="token, digest, certificate (joined with +), any, any-two")
    p.add_argument("--binding", choices=list(policy.BINDINGS), default="off")
    p.add_argument("--first-contact-days", type=positive)
    p = command(pol_sub, "clear", with_session(cmd_policy_clear), "back to the default")
    p.add_argument("account_id", type=positive)

    certs = sub.add_parser("certs", help="lab CA, server and device certificates")
    certs_sub = certs.add_subparsers(dest="cs", required=True)
    p = command(certs_sub, "ca", cmd_certs_ca, "create a lab CA in FOLDER")
    p.add_argument("folder")
    p.add_argument("--name", default="Plug & Phone lab CA")
    p.add_argument("--days", type=positive, default=3650)
    p = command(certs_sub, "server", cmd_certs_server, "a server certificate from the lab CA")
    p.add_argument("ca", help="the lab CA's folder")
    p.add_argument("folder")
    p.add_argument("--host", action="append", required=True, help="name or IP (repeatable)")
    p.add_argument("--days", type=positive, default=825)
    p = command(certs_sub, "device", cmd_certs_device, "a client certificate for a phone")
    p.add_argument("ca", help="the lab CA's folder")
    p.add_argument("folder")
    p.add_argument("mac")
    p.add_argument("--family", help="put the MAC where that family's phones carry it")
    p.add_argument("--days", type=positive, default=825)
