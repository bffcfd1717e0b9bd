"""Commands of `provisioning` for phones' proofs: bans, policies, unlocking, credential rotation
and the lab's certificates. Registered with `provisioning.commands.command`, imported only when
one of their groups (ban, policy, certs, device) runs; they call the same domain functions as
the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.commands import Context, arg, command, positive
from provisioning.devices import inventory
from provisioning.security import bans, lab, policy
from provisioning.security.credentials import credentials_view, rotate_credential
from provisioning.security.factory import LAB_PLACES, certificate_places


@command("ban list", "list active bans")
async def cmd_ban_list(ctx: Context, session: AsyncSession) -> None:
    rows = [bans.ban_view(b) for b in await bans.active_bans(session)]
    human = "\n".join(
        f"{r['source']}\t{r['kind']}\tuntil {r['until']}\t{r['misses']} miss(es)" for r in rows
    )
    ctx.emit(human or "no bans", rows)


@command(
    "ban lift",
    "lift the ban of a source",
    arg("source", help="IP address or network (CIDR) as `ban list` shows it"),
)
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


@command("device security", "policy, binding, creds", arg("mac"))
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


@command("device unlock", "forget the binding", arg("mac"))
async def cmd_device_unlock(ctx: Context, session: AsyncSession) -> None:
    device = await policy.unlock_device(session, ctx.args.mac, actor=ctx.actor)
    ctx.emit(
        f"{device.mac} unlocked: bound again where it next fetches from",
        await device_security(ctx, session, device.mac),
    )


@command(
    "device rotate",
    "renew a credential",
    arg("mac"),
    arg("kind", choices=["token", "digest"]),
    arg("--overlap", type=int, help="seconds the previous one stays valid"),
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


@command("policy show", "show an account's policy", arg("account_id", type=positive))
async def cmd_policy_show(ctx: Context, session: AsyncSession) -> None:
    view = await policy.account_policy(session, ctx.settings, ctx.args.account_id)
    ctx.emit("\n".join(f"{k}: {v}" for k, v in view.items()), view)


@command(
    "policy set",
    "set an account's policy",
    arg("account_id", type=positive),
    arg("proofs", help="token, digest, certificate (joined with +), any, any-two"),
    arg("--binding", choices=list(policy.BINDINGS), default="off"),
    arg("--first-contact-days", type=positive),
)
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


@command("policy clear", "back to the default", arg("account_id", type=positive))
async def cmd_policy_clear(ctx: Context, session: AsyncSession) -> None:
    await policy.clear_policy(session, ctx.args.account_id, actor=ctx.actor)
    view = await policy.account_policy(session, ctx.settings, ctx.args.account_id)
    ctx.emit(f"account {ctx.args.account_id} follows the default policy", view)


@command(
    "certs ca",
    "create a lab CA in FOLDER",
    arg("folder"),
    arg("--name", default="Plug & Phone lab CA"),
    arg("--days", type=positive, default=3650),
    session=False,
    key="none",
)
async def cmd_certs_ca(ctx: Context) -> None:
    issued = lab.create_ca(Path(ctx.args.folder), name=ctx.args.name, days=ctx.args.days)
    ctx.emit(
        f"lab CA: {issued.certificate} (key {issued.key})",
        {"certificate": str(issued.certificate), "key": str(issued.key)},
    )


@command(
    "certs server",
    "a server certificate from the lab CA",
    arg("ca", help="the lab CA's folder"),
    arg("folder"),
    arg("--host", action="append", required=True, help="name or IP (repeatable)"),
    arg("--days", type=positive, default=825),
    session=False,
    key="none",
)
async def cmd_certs_server(ctx: Context) -> None:
    a = ctx.args
    issued = lab.create_server(Path(a.ca), Path(a.folder), a.host, days=a.days)
    ctx.emit(
        f"server certificate: {issued.certificate} (key {issued.key}); set "
        f"PROVISIONING_TLS_CERT={issued.certificate} PROVISIONING_TLS_KEY={issued.key}",
        {"certificate": str(issued.certificate), "key": str(issued.key)},
    )


@command(
    "certs device",
    "a client certificate for a phone",
    arg("ca", help="the lab CA's folder"),
    arg("folder"),
    arg("mac"),
    arg("--family", help="put the MAC where that family's phones carry it"),
    arg("--days", type=positive, default=825),
    session=False,
    key="none",
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
