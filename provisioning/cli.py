"""The `provisioning` command. Each subcommand parses its arguments, calls the domain functions the
API and pages also use, and prints a human line or, with --json, one JSON document on stdout.
Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, true
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from provisioning import accounts, audit, overrides, tokens, views
from provisioning.audit import Actor
from provisioning.crypto import Cipher, SecretKeyError, generate_key
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import is_current, upgrade
from provisioning.db.models import Device, Line
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, CatalogError, load_catalog
from provisioning.devices.unknown import list_unknown
from provisioning.errors import DomainError, NotFound
from provisioning.lab.parsers import PARSERS
from provisioning.lab.phone import EmulatedPhone
from provisioning.lab.storm import StormDevice, storm
from provisioning.orders import commands as order_commands
from provisioning.push.changes import counts as push_counts
from provisioning.push.changes import devices_changed
from provisioning.render.check import check_templates
from provisioning.render.environment import Renderer, RenderError
from provisioning.render.files import device_files, render_file
from provisioning.render.snapshot import find_device, load_device_data
from provisioning.rotation import rotate_secrets
from provisioning.security import cli as security_cli
from provisioning.security.lab import LabError
from provisioning.settings import Settings, SettingsError
from provisioning.web import cli as web_cli

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem to report in one line."""


class Context:
    """What a command needs, built lazily from settings."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(self.settings.templates_dir)
        return self._catalog

    @property
    def cipher(self) -> Cipher:
        return Cipher(self.settings.secret_key)

    @property
    def actor(self) -> Actor:
        return Actor(f"cli:{_user()}")

    def emit(self, human: str, data: Any) -> None:
        if getattr(self.args, "json", False):
            print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        else:
            print(human)


# -- settings and database ------------------------------------------------------------------


def load_settings(*, create_key: bool = False, demo_mode: bool = False) -> Settings:
    env = dict(os.environ)
    if demo_mode:
        env.setdefault("PROVISIONING_DEFAULT_REGISTRAR", "127.0.0.1:5060")
    settings = Settings.from_env(env)
    if settings.secret_key:
        return settings
    return replace(settings, secret_key=(_key_from_file(settings, create=create_key),))


def _key_from_file(settings: Settings, *, create: bool) -> str:
    """Without PROVISIONING_SECRET_KEY the embedded set-up keeps its key in a file beside it, so
    `provisioning serve --demo` works with no set-up at all."""
    path = settings.secret_key_file
    if path.is_file():
        text = path.read_text(encoding="ascii").strip()
        try:
            Cipher((text,))
        except ValueError:
            raise CliError(f"{path}: not a valid secret key") from None
        return text
    if not create:
        raise CliError(
            "no secret key: set PROVISIONING_SECRET_KEY (see `provisioning secret generate`) "
            f"or run `provisioning db upgrade` to create {path}"
        )
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    print(
        f"Created secret key file {path}: SIP passwords are encrypted with it; keep it safe.",
        file=sys.stderr,
    )
    return key


async def prepare_database(engine: AsyncEngine, catalog: Catalog, *, migrate: bool) -> None:
    """Bring the schema up to date (or insist it is) and sync the catalog's models."""
    if not await is_current(engine):
        if not migrate:
            raise CliError("the database schema is not up to date: run `provisioning db upgrade`")
        await upgrade(engine)
    async with make_session_factory(engine)() as session, session.begin():
        await inventory.sync_models(session, catalog)


def with_session(
    body: Callable[[Context, AsyncSession], Awaitable[None]],
) -> Callable[[Context], Awaitable[None]]:
    async def run(ctx: Context) -> None:
        engine = make_engine(ctx.settings.database_url)
        try:
            # The embedded SQLite database is brought up to date on first use; a shared
            # PostgreSQL is migrated only on purpose (`db upgrade`).
            await prepare_database(engine, ctx.catalog, migrate=engine.dialect.name == "sqlite")
            async with make_session_factory(engine)() as session, session.begin():
                await body(ctx, session)
        finally:
            await engine.dispose()

    return run


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- views ----------------------------------------------------------------------------------


def device_view(ctx: Context, device: Device) -> dict[str, Any]:
    view = views.device_view(device)
    view["url"] = inventory.provisioning_url(ctx.settings.base_url, ctx.cipher, device)
    view["files"] = [name for name, _ in device_files(ctx.catalog, device.model_id, device.mac)]
    return view


# -- commands -------------------------------------------------------------------------------


async def cmd_account_add(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    address = accounts.Address.parse(a.address) if a.address else None
    account = await accounts.create_account(
        session,
        ctx.settings,
        a.name,
        address=address,
        timezone=a.timezone,
        language=a.language,
        actor=ctx.actor,
    )
    ctx.emit(str(account.id), views.account_view(account))


async def cmd_account_list(ctx: Context, session: AsyncSession) -> None:
    rows = await accounts.list_accounts(session)
    human = "\n".join(f"{r.id}\t{r.name}\t{r.postcode} {r.town}".rstrip() for r in rows)
    ctx.emit(human or "no accounts", [views.account_view(r) for r in rows])


async def cmd_account_show(ctx: Context, session: AsyncSession) -> None:
    account = await accounts.get_account(session, ctx.args.account_id)
    view = views.account_view(account)
    ctx.emit(_human(view), view)


async def cmd_line_add(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    line = await accounts.create_line(
        session,
        ctx.settings,
        ctx.cipher,
        a.account_id,
        a.number,
        password=a.password,
        username=a.username,
        auth_username=a.auth_username,
        display_name=a.display_name or "",
        registrar=a.registrar,
        transport=a.transport,
        actor=ctx.actor,
    )
    ctx.emit(str(line.id), views.line_view(line))


async def cmd_line_list(ctx: Context, session: AsyncSession) -> None:
    rows = await accounts.list_lines(session, ctx.args.account)
    views = [await _line_with_device(session, line) for line in rows]
    human = "\n".join(
        f"{v['id']}\t{v['number']}\t{v['username']}@{v['registrar']}\t"
        f"{v['device'] + ' slot ' + str(v['slot']) if v['device'] else 'no phone'}"
        for v in views
    )
    ctx.emit(human or "no lines", views)


async def cmd_line_show(ctx: Context, session: AsyncSession) -> None:
    view = await _line_with_device(session, await accounts.get_line(session, ctx.args.line_id))
    ctx.emit(_human(view), view)


async def cmd_line_password(ctx: Context, session: AsyncSession) -> None:
    line = await accounts.set_line_password(
        session, ctx.cipher, ctx.args.line_id, ctx.args.password, actor=ctx.actor
    )
    ctx.emit(f"password of line {line.id} changed", {"id": line.id, "changed": True})


async def _line_with_device(session: AsyncSession, line: Line) -> dict[str, Any]:
    await session.refresh(line, ["slot"])
    if line.slot is None:
        return views.line_view(line)
    device = await session.get(Device, line.slot.device_id)
    return views.line_view(line, device.mac if device else None, line.slot.slot)


async def cmd_device_add(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    device, token = await inventory.add_device(
        session, ctx.catalog, ctx.cipher, a.mac, a.model, a.account_id, actor=ctx.actor
    )
    url = f"{ctx.settings.base_url}/{token}/"
    ctx.emit(url, {"mac": device.mac, "model": device.model_id, "url": url})


async def cmd_device_assign(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    slot = await inventory.assign_line(session, a.mac, a.line_id, a.slot, actor=ctx.actor)
    ctx.emit(
        f"line {a.line_id} in slot {slot.slot} of {inventory.parse_mac(a.mac)}",
        {"mac": inventory.parse_mac(a.mac), "line_id": a.line_id, "slot": slot.slot},
    )


async def cmd_device_unassign(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    slot = await inventory.unassign_line(session, a.mac, a.line_id, actor=ctx.actor)
    mac = inventory.parse_mac(a.mac)
    ctx.emit(
        f"line {a.line_id} removed from slot {slot} of {mac}",
        {"mac": mac, "line_id": a.line_id, "slot": slot},
    )


async def cmd_device_show(ctx: Context, session: AsyncSession) -> None:
    view = device_view(ctx, await inventory.get_device(session, ctx.args.mac))
    ctx.emit(_human(view), view)


async def cmd_device_url(ctx: Context, session: AsyncSession) -> None:
    device = await inventory.get_device(session, ctx.args.mac)
    url = inventory.provisioning_url(ctx.settings.base_url, ctx.cipher, device)
    ctx.emit(url, {"mac": device.mac, "url": url})


async def cmd_device_list(ctx: Context, session: AsyncSession) -> None:
    if ctx.args.unknown:
        unknown = await list_unknown(session)
        views_u = [views.unknown_view(u) for u in unknown]
        human_u = "\n".join(
            f"{v['mac']}\t{v['family']} {v['model_guess'] or ''}\t{v['ip']}\t"
            f"last seen {v['last_seen']}\t{v['requests']} request(s)"
            for v in views_u
        )
        ctx.emit(human_u or "no unknown devices", views_u)
        return
    rows = await inventory.list_devices(session, account_id=ctx.args.account, model_id=None)
    views = [device_view(ctx, d) for d in rows]
    human = "\n".join(
        f"{v['mac']}\t{v['model']}\taccount {v['account_id']}\t{v['state']}\t"
        f"{len(v['slots'])} line(s)\tlast seen {v['last_seen']['at'] or 'never'}"
        for v in views
    )
    ctx.emit(human or "no devices", views)


async def cmd_override_set(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    row = await overrides.set_override(
        session, ctx.catalog, a.scope, a.target, a.key, a.value, actor=ctx.actor
    )
    ctx.emit(f"{row.scope} {row.target}: {row.key} = {row.value}", views.override_view(row))


async def cmd_override_unset(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    await overrides.unset_override(session, ctx.catalog, a.scope, a.target, a.key, actor=ctx.actor)
    ctx.emit(f"{a.scope} {a.target}: {a.key} removed", {"removed": True})


async def cmd_override_list(ctx: Context, session: AsyncSession) -> None:
    rows = await overrides.list_overrides(session, ctx.args.scope, ctx.args.target)
    human = "\n".join(f"{r.scope} {r.target}\t{r.key} = {r.value}" for r in rows)
    ctx.emit(human or "no overrides", [views.override_view(r) for r in rows])


async def cmd_token_create(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    row, secret = await tokens.create_token(
        session,
        a.role,
        account_id=a.account_id,
        name=a.name or "",
        expires_days=a.expires_days,
        actor=ctx.actor,
    )
    ctx.emit(secret, {**tokens.token_view(row), "token": secret})


async def cmd_token_list(ctx: Context, session: AsyncSession) -> None:
    rows = [tokens.token_view(r) for r in await tokens.list_tokens(session)]
    human = "\n".join(
        f"{r['id']}\t{r['role']}\taccount {r['account_id'] or '-'}\t{r['name']}\t"
        f"{'revoked' if r['revoked_at'] else 'expires ' + str(r['expires_at'] or 'never')}"
        for r in rows
    )
    ctx.emit(human or "no tokens", rows)


async def cmd_token_revoke(ctx: Context, session: AsyncSession) -> None:
    row = await tokens.revoke_token(session, ctx.args.token_id, actor=ctx.actor)
    ctx.emit(f"token {row.id} revoked", tokens.token_view(row))


async def cmd_audit(ctx: Context, session: AsyncSession) -> None:
    mac = inventory.parse_mac(ctx.args.device) if ctx.args.device else None
    events = await audit.list_events(
        session, account_id=ctx.args.account, device_mac=mac, limit=ctx.args.limit
    )
    rows = [audit.event_view(e) for e in events]
    human = "\n".join(
        f"{r['at']}\t{r['actor']}\t{r['action']}\t{r['object']['type']} {r['object']['id']}"
        for r in rows
    )
    ctx.emit(human or "no events", rows)


async def cmd_secret_rotate(ctx: Context, session: AsyncSession) -> None:
    counts = await rotate_secrets(session, ctx.cipher, actor=ctx.actor)
    ctx.emit(
        f"re-encrypted {counts['lines']} line password(s), {counts['devices']} device "
        f"token(s) and {counts['credentials']} other device credential(s) with the first key",
        counts,
    )


async def cmd_lab_phone(ctx: Context) -> None:
    a = ctx.args
    mac = inventory.parse_mac(a.mac)
    model = ctx.catalog.model(a.model)
    if model is None:
        raise CliError(f"unknown model {a.model!r}")
    family = ctx.catalog.family_of(model.id)
    try:
        phone = EmulatedPhone(
            a.url, mac, family, model, say=lambda text: print(text, flush=True),
            answer_notify=not a.ignore_notify, poll_seconds=a.poll,
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    await phone.start(a.sip_host)
    sip_host, sip_port = phone.endpoint.address
    print(f"{len(phone.lines)} line(s); SIP at {sip_host}:{sip_port}", flush=True)
    try:
        if a.duration:
            await asyncio.sleep(a.duration)
        else:
            await asyncio.Event().wait()
    finally:
        await phone.stop()
    if ctx.args.json:
        ctx.emit("", vars(phone.stats))


async def cmd_lab_storm(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    families = set(PARSERS)
    rows = await inventory.list_devices(session)
    chosen = [d for d in rows if ctx.catalog.family_of(d.model_id).name in families][: a.count]
    if len(chosen) < a.count:
        raise CliError(
            f"only {len(chosen)} device(s) of the families the emulator plays "
            f"({', '.join(sorted(families))}); add more with `device add`"
        )
    devices = [
        StormDevice(inventory.provisioning_url(ctx.settings.base_url, ctx.cipher, d), d.mac,
                    d.model_id)
        for d in chosen
    ]  # fmt: skip
    await session.commit()
    summary = await storm(
        ctx.catalog, devices, concurrency=a.concurrency, duration=a.duration,
        progress=not a.json,
    )  # fmt: skip
    ctx.emit("\n".join(f"{k}: {v}" for k, v in summary.items()), summary)


async def cmd_push_devices(ctx: Context, session: AsyncSession) -> None:
    a = ctx.args
    if not (a.model or a.family or a.account or a.all):
        raise CliError("say which devices: --model, --family, --account or --all")
    conditions = []
    if a.model:
        if ctx.catalog.model(a.model) is None:
            raise CliError(f"unknown model {a.model!r}")
        conditions.append(Device.model_id == a.model)
    if a.family:
        if a.family not in ctx.catalog.families:
            raise CliError(f"unknown family {a.family!r}")
        conditions.append(Device.model_id.startswith(a.family + "-"))
    if a.account:
        conditions.append(Device.account_id == a.account)
    where = and_(*conditions) if conditions else true()
    ids = await devices_changed(session, where, a.reason)
    ctx.emit(f"{len(ids)} push(es) queued", {"queued": len(ids)})


async def cmd_push_status(ctx: Context, session: AsyncSession) -> None:
    by_state = await push_counts(session)
    ctx.emit("\n".join(f"{k}: {v}" for k, v in sorted(by_state.items())) or "no pushes", by_state)


async def cmd_render(ctx: Context, session: AsyncSession) -> None:
    mac = inventory.parse_mac(ctx.args.mac)
    device = await find_device(session, mac=mac)
    if device is None:
        raise NotFound(f"device {mac} not found")
    data = await load_device_data(session, device, ctx.cipher, ctx.settings)
    renderer = Renderer(ctx.catalog, ctx.settings.templates_override_dir)
    files = device_files(ctx.catalog, device.model_id, device.mac)
    if ctx.args.file:
        files = [(name, spec) for name, spec in files if name.lower() == ctx.args.file.lower()]
        if not files:
            names = ", ".join(n for n, _ in device_files(ctx.catalog, device.model_id, mac))
            raise CliError(f"{ctx.args.file}: not a file of this device (its files: {names})")
    rendered = {name: render_file(renderer, ctx.settings, data, spec) for name, spec in files}
    if ctx.args.json:
        ctx.emit("", {name: r.body.decode("utf-8") for name, r in rendered.items()})
    elif ctx.args.file:
        sys.stdout.buffer.write(next(iter(rendered.values())).body)
        sys.stdout.flush()
    else:
        for name, r in rendered.items():
            print(f"==> {name} <==")
            sys.stdout.flush()
            sys.stdout.buffer.write(r.body)
            sys.stdout.flush()


async def cmd_templates_check(ctx: Context) -> None:
    results = check_templates(ctx.catalog, ctx.settings)
    bad = [r for r in results if r.problems]
    if ctx.args.json:
        ctx.emit("", [vars(r) for r in results])
    else:
        for r in bad:
            for problem in r.problems:
                print(f"{r.family}/{r.model} {r.file}: {problem}")
        models = {r.model for r in results}
        print(
            f"{len(results)} files of {len(models)} models in {len(ctx.catalog.families)} "
            f"families rendered and validated: {len(bad)} with problems"
        )
    if bad:
        raise SystemExit(EXIT_ERROR)


async def cmd_catalog_list(ctx: Context) -> None:
    models = sorted(ctx.catalog.models.values(), key=lambda m: m.id)
    human = "\n".join(f"{m.id}\t{m.slots} slot(s)\t{m.label}" for m in models)
    ctx.emit(
        human,
        [
            {
                "id": m.id,
                "family": m.family,
                "vendor": m.vendor,
                "label": m.label,
                "slots": m.slots,
                "orderable": m.orderable,
                "price_cents": m.price_cents,
            }
            for m in models
        ],
    )


async def cmd_db_upgrade(ctx: Context) -> None:
    engine = make_engine(ctx.settings.database_url)
    try:
        await prepare_database(engine, ctx.catalog, migrate=True)
    finally:
        await engine.dispose()
    ctx.emit("database is up to date", {"upgraded": True})


async def cmd_secret_generate(ctx: Context) -> None:
    key = generate_key()
    ctx.emit(key, {"key": key})


def cmd_serve(args: argparse.Namespace) -> None:
    from provisioning.server import serve

    settings = load_settings(create_key=True, demo_mode=args.demo)
    if args.host:
        settings = replace(settings, host=args.host)
    if args.port:
        settings = replace(settings, port=args.port)
    if args.workers:
        settings = replace(settings, workers=args.workers)
    serve(settings, demo=args.demo)


# -- parser ---------------------------------------------------------------------------------


def _human(view: dict[str, Any]) -> str:
    lines = []
    for key, value in view.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provisioning", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: Any, name: str, handler: Any, help_text: str, *, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        p.set_defaults(handler=handler)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON document")
        return p

    p = command(sub, "serve", None, "run the server", json_flag=False)
    p.add_argument("--host")
    p.add_argument("--port", type=_positive)
    p.add_argument("--demo", action="store_true", help="seed a demo account, lines and phones")
    p.add_argument(
        "--workers", type=_positive, help="processes sharing the port (default: WORKERS, 1)"
    )
    p.set_defaults(serve=True)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db", required=True)
    command(db, "upgrade", cmd_db_upgrade, "create or migrate the schema, sync the catalog")

    secret = sub.add_parser("secret", help="secret keys").add_subparsers(dest="s", required=True)
    command(secret, "generate", cmd_secret_generate, "print a new PROVISIONING_SECRET_KEY")
    command(
        secret,
        "rotate",
        with_session(cmd_secret_rotate),
        "re-encrypt every stored secret with the first key of PROVISIONING_SECRET_KEY",
    )

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="tk", required=True)
    p = command(token, "create", with_session(cmd_token_create), "create a bearer token")
    p.add_argument("role", choices=["operator", "customer"])
    p.add_argument("account_id", type=_positive, nargs="?", help="for a customer token")
    p.add_argument("--name")
    p.add_argument("--expires-days", type=_positive)
    command(token, "list", with_session(cmd_token_list), "list tokens (never their secret)")
    p = command(token, "revoke", with_session(cmd_token_revoke), "revoke a token")
    p.add_argument("token_id", type=_positive)

    p = command(sub, "audit", with_session(cmd_audit), "list the audit trail, newest first")
    p.add_argument("--account", type=_positive)
    p.add_argument("--device")
    p.add_argument("--limit", type=_positive, default=100)

    catalog = sub.add_parser("catalog", help="models").add_subparsers(dest="c", required=True)
    command(catalog, "list", cmd_catalog_list, "list the models of every family")

    account = sub.add_parser("account", help="accounts").add_subparsers(dest="a", required=True)
    p = command(account, "add", with_session(cmd_account_add), "add an account; prints its id")
    p.add_argument("name")
    p.add_argument("--address", help='default delivery address: "street, postcode town"')
    p.add_argument("--timezone", help="IANA time zone (default from settings)")
    p.add_argument("--language", help="two-letter language code (default from settings)")
    command(account, "list", with_session(cmd_account_list), "list accounts")
    p = command(account, "show", with_session(cmd_account_show), "show an account")
    p.add_argument("account_id", type=_positive)
    # account password; user create (the web Manager's sign-in)
    web_cli.add_commands(sub, account, command, with_session, _positive)

    line = sub.add_parser("line", help="SIP lines").add_subparsers(dest="l", required=True)
    p = command(line, "add", with_session(cmd_line_add), "add a SIP line; prints its id")
    p.add_argument("account_id", type=_positive)
    p.add_argument("number")
    p.add_argument("--password", required=True)
    p.add_argument("--username", help="SIP username (default: the number without +)")
    p.add_argument("--auth-username", help="authentication username if different")
    p.add_argument("--display-name")
    p.add_argument("--registrar", help="HOST[:PORT] (default from settings)")
    p.add_argument("--transport", choices=["udp", "tcp", "tls"])
    p = command(line, "list", with_session(cmd_line_list), "list lines")
    p.add_argument("--account", type=_positive)
    p = command(line, "show", with_session(cmd_line_show), "show a line")
    p.add_argument("line_id", type=_positive)
    p = command(line, "password", with_session(cmd_line_password), "change a line's password")
    p.add_argument("line_id", type=_positive)
    p.add_argument("--password", required=True)

    device = sub.add_parser("device", help="devices").add_subparsers(dest="d", required=True)
    p = command(device, "add", with_session(cmd_device_add), "add a device; prints its URL")
    p.add_argument("mac")
    p.add_argument("model", help="model id, see `provisioning catalog list`")
    p.add_argument("account_id", type=_positive, nargs="?")
    p = command(device, "assign", with_session(cmd_device_assign), "put a line on a device")
    p.add_argument("mac")
    p.add_argument("line_id", type=_positive)
    p.add_argument("--slot", type=_positive)
    p = command(device, "unassign", with_session(cmd_device_unassign), "take a line off")
    p.add_argument("mac")
    p.add_argument("line_id", type=_positive)
    p = command(device, "show", with_session(cmd_device_show), "show a device")
    p.add_argument("mac")
    p = command(device, "url", with_session(cmd_device_url), "print a device's provisioning URL")
    p.add_argument("mac")
    p = command(device, "list", with_session(cmd_device_list), "list devices")
    p.add_argument("--account", type=_positive)
    p.add_argument("--unknown", action="store_true", help="devices seen but not registered")
    # ban, policy, certs; device security / unlock / rotate
    security_cli.add_commands(sub, device, command, with_session, _positive)

    override = sub.add_parser("override", help="settings merged over the templates")
    override_sub = override.add_subparsers(dest="o", required=True)
    scopes = list(overrides.SCOPES)
    p = command(override_sub, "set", with_session(cmd_override_set), "set a setting override")
    p.add_argument("scope", choices=scopes)
    p.add_argument("target", help="model id, account id or device MAC")
    p.add_argument("key", help="`key` (key = value formats) or XML path `a/b[@name='x']@attr`")
    p.add_argument("value")
    p = command(override_sub, "unset", with_session(cmd_override_unset), "remove an override")
    p.add_argument("scope", choices=scopes)
    p.add_argument("target")
    p.add_argument("key")
    p = command(override_sub, "list", with_session(cmd_override_list), "list overrides")
    p.add_argument("--scope", choices=scopes)
    p.add_argument("--target")

    lab = sub.add_parser("lab", help="emulated phones").add_subparsers(dest="lab", required=True)
    p = command(lab, "phone", cmd_lab_phone, "run one emulated handset")
    p.add_argument("url", help="the device's provisioning URL (with its token)")
    p.add_argument("--mac", required=True)
    p.add_argument("--model", required=True, help="model id, e.g. yealink-t46u")
    p.add_argument("--poll", type=float, help="seconds between re-checks (default: the config's)")
    p.add_argument("--ignore-notify", action="store_true", help="never answer NOTIFYs")
    p.add_argument("--duration", type=float, default=0, help="seconds to run (default: forever)")
    p.add_argument("--sip-host", default="127.0.0.1")
    p = command(lab, "storm", with_session(cmd_lab_storm), "boot N emulated phones at once")
    p.add_argument("--count", type=_positive, default=100)
    p.add_argument("--concurrency", type=_positive, default=50)
    p.add_argument("--duration", type=float, default=0, help="seconds to keep them up")

    push = sub.add_parser("push", help="config pushes").add_subparsers(dest="pu", required=True)
    p = command(
        push, "devices", with_session(cmd_push_devices),
        "give devices a new revision and queue their pushes (after a template change)",
    )  # fmt: skip
    p.add_argument("--model")
    p.add_argument("--family")
    p.add_argument("--account", type=_positive)
    p.add_argument("--all", action="store_true")
    p.add_argument("--reason", default="template", choices=["template", "manual"])
    command(push, "status", with_session(cmd_push_status), "pushes by state")

    order_commands.register(sub, command, with_session, _positive)

    p = command(sub, "render", with_session(cmd_render), "print what the phone would get")
    p.add_argument("mac")
    p.add_argument("file", nargs="?")

    templates = sub.add_parser("templates", help="templates").add_subparsers(
        dest="t", required=True
    )
    command(templates, "check", cmd_templates_check, "render and validate every model's files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "serve", False):
            cmd_serve(args)
            return 0
        keyless = {
            cmd_secret_generate,
            cmd_templates_check,
            cmd_catalog_list,
            cmd_lab_phone,
            *security_cli.KEYLESS,
        }
        needs_key = args.handler not in keyless
        if needs_key:
            settings = load_settings(create_key=args.handler is cmd_db_upgrade)
        else:
            settings = Settings.from_env()
        asyncio.run(args.handler(Context(settings, args)))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except (CliError, SettingsError, CatalogError, SecretKeyError, RenderError, LabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SQLAlchemyError as exc:
        print(f"error: database: {_db_reason(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return 0


def _db_reason(exc: SQLAlchemyError) -> str:
    # The driver's first line says what went wrong; never the statement (it may hold values).
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).splitlines()[0]
    return text[:200]
