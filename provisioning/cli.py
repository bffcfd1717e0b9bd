"""Plug & Phone provisioning server: run it, and manage its accounts, lines, phones and orders.

Each subcommand parses its arguments, calls the domain functions the API and the pages also use,
and prints a human line or, with --json, one JSON document on stdout. Errors are one line on
stderr and a non-zero exit, never a traceback.

`GROUPS` is the static table `provisioning --help` lists: it names each group's modules, and
only the group being run has them imported (see `provisioning.commands`). The commands below
import what they need inside their bodies, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from provisioning.commands import (
    EXIT_ERROR,
    CliError,
    Context,
    Group,
    arg,
    command,
    human,
    load_settings,
    positive,
    run,
)
from provisioning.sip.address import FORMS as REGISTRAR_FORMS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from provisioning.db.models import Device, Line

_CORE = ("provisioning.cli",)
_SECURITY = "provisioning.security.cli"
_ORDERS = ("provisioning.orders.commands",)

# The groups in the order `--help` lists them. A test checks that each exists and loads.
GROUPS: dict[str, Group] = {
    "serve": Group("run the server", _CORE),
    "db": Group("database", _CORE),
    "secret": Group("secret keys", _CORE),
    "token": Group("API tokens", _CORE),
    "audit": Group("list the audit trail, newest first", _CORE),
    "catalog": Group("models", _CORE),
    "account": Group("accounts", (*_CORE, "provisioning.web.cli")),
    "user": Group("Manager operators", ("provisioning.web.cli",)),
    "line": Group("SIP lines", _CORE),
    "device": Group("devices", (*_CORE, _SECURITY)),
    "ban": Group("sources banned for missing too often", (_SECURITY,)),
    "policy": Group("proofs an account's phones must give", (_SECURITY,)),
    "certs": Group("lab CA, server and device certificates", (_SECURITY,)),
    "override": Group("settings merged over the templates", _CORE),
    "import": Group("import accounts, lines and phones from a CSV file", _CORE),
    "export": Group("export accounts, lines and phones to a CSV file", _CORE),
    "lab": Group("emulated phones", _CORE),
    "push": Group("config pushes", _CORE),
    "order": Group("phone orders", _ORDERS),
    "return": Group("phones coming back", _ORDERS),
    "render": Group("print what the phone would get", _CORE),
    "templates": Group("templates", _CORE),
}

DESCRIPTION = (
    "Plug & Phone provisioning server: run it, and manage its accounts, lines, phones and orders."
)
EPILOG = (
    "`provisioning COMMAND --help` shows a command's options. Commands print a human line, or "
    "with --json one JSON document; errors are one line on stderr and a non-zero exit."
)


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, GROUPS, description=DESCRIPTION, epilog=EPILOG)


# -- views ----------------------------------------------------------------------------------


def device_view(ctx: Context, device: Device) -> dict[str, Any]:
    from provisioning import views
    from provisioning.devices import inventory
    from provisioning.render.files import device_files

    view = views.device_view(device)
    view["url"] = inventory.provisioning_url(ctx.settings.base_url, ctx.cipher, device)
    view["files"] = [name for name, _ in device_files(ctx.catalog, device.model_id, device.mac)]
    return view


# -- server, database, keys -----------------------------------------------------------------


@command(
    "serve",
    "run the server",
    arg("--host"),
    arg("--port", type=positive),
    arg("--demo", action="store_true", help="seed a demo account, lines and phones"),
    arg("--workers", type=positive, help="processes sharing the port (default: WORKERS, 1)"),
    session=False,
    key="none",
    json_flag=False,
)
def cmd_serve(ctx: Context) -> None:
    from provisioning.server import serve

    args = ctx.args
    settings = load_settings(create_key=True, demo_mode=args.demo)
    if args.host:
        settings = replace(settings, host=args.host)
    if args.port:
        settings = replace(settings, port=args.port)
    if args.workers:
        settings = replace(settings, workers=args.workers)
    serve(settings, demo=args.demo)


@command(
    "db upgrade",
    "create or migrate the schema, sync the catalog",
    session=False,
    key="create",
)
async def cmd_db_upgrade(ctx: Context) -> None:
    from provisioning.commands import prepare_database
    from provisioning.db.engine import make_engine

    engine = make_engine(ctx.settings.database_url)
    try:
        await prepare_database(engine, ctx.catalog, migrate=True)
    finally:
        await engine.dispose()
    ctx.emit("database is up to date", {"upgraded": True})


@command("secret generate", "print a new PROVISIONING_SECRET_KEY", session=False, key="none")
async def cmd_secret_generate(ctx: Context) -> None:
    from provisioning.crypto import generate_key

    key = generate_key()
    ctx.emit(key, {"key": key})


@command(
    "secret rotate", "re-encrypt every stored secret with the first key of PROVISIONING_SECRET_KEY"
)
async def cmd_secret_rotate(ctx: Context, session: AsyncSession) -> None:
    from provisioning.rotation import rotate_secrets

    counts = await rotate_secrets(session, ctx.cipher, actor=ctx.actor)
    ctx.emit(
        f"re-encrypted {counts['lines']} line password(s), {counts['devices']} device "
        f"token(s) and {counts['credentials']} other device credential(s) with the first key",
        counts,
    )


# -- tokens and audit -----------------------------------------------------------------------


@command(
    "token create",
    "create a bearer token",
    arg("role", choices=["operator", "customer"]),
    arg("account_id", type=positive, nargs="?", help="for a customer token"),
    arg("--name"),
    arg("--expires-days", type=positive),
)
async def cmd_token_create(ctx: Context, session: AsyncSession) -> None:
    from provisioning import tokens

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


@command("token list", "list tokens (never their secret)")
async def cmd_token_list(ctx: Context, session: AsyncSession) -> None:
    from provisioning import tokens

    rows = [tokens.token_view(r) for r in await tokens.list_tokens(session)]
    text = "\n".join(
        f"{r['id']}\t{r['role']}\taccount {r['account_id'] or '-'}\t{r['name']}\t"
        f"{'revoked' if r['revoked_at'] else 'expires ' + str(r['expires_at'] or 'never')}"
        for r in rows
    )
    ctx.emit(text or "no tokens", rows)


@command("token revoke", "revoke a token", arg("token_id", type=positive))
async def cmd_token_revoke(ctx: Context, session: AsyncSession) -> None:
    from provisioning import tokens

    row = await tokens.revoke_token(session, ctx.args.token_id, actor=ctx.actor)
    ctx.emit(f"token {row.id} revoked", tokens.token_view(row))


@command(
    "audit",
    "list the audit trail, newest first",
    arg("--account", type=positive),
    arg("--device"),
    arg("--limit", type=positive, default=100),
)
async def cmd_audit(ctx: Context, session: AsyncSession) -> None:
    from provisioning import audit
    from provisioning.devices import inventory

    mac = inventory.parse_mac(ctx.args.device) if ctx.args.device else None
    events = await audit.list_events(
        session, account_id=ctx.args.account, device_mac=mac, limit=ctx.args.limit
    )
    rows = [audit.event_view(e) for e in events]
    text = "\n".join(
        f"{r['at']}\t{r['actor']}\t{r['action']}\t{r['object']['type']} {r['object']['id']}"
        for r in rows
    )
    ctx.emit(text or "no events", rows)


# -- catalog, accounts, lines ---------------------------------------------------------------


@command("catalog list", "list the models of every family", session=False, key="none")
async def cmd_catalog_list(ctx: Context) -> None:
    models = sorted(ctx.catalog.models.values(), key=lambda m: m.id)
    text = "\n".join(f"{m.id}\t{m.slots} slot(s)\t{m.label}" for m in models)
    ctx.emit(
        text,
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


@command(
    "account add",
    "add an account; prints its id",
    arg("name"),
    arg("--address", help='default delivery address: "street, postcode town"'),
    arg("--timezone", help="IANA time zone (default from settings)"),
    arg("--language", help="two-letter language code (default from settings)"),
)
async def cmd_account_add(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts, views

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


@command("account list", "list accounts")
async def cmd_account_list(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts, views

    rows = await accounts.list_accounts(session)
    text = "\n".join(f"{r.id}\t{r.name}\t{r.postcode} {r.town}".rstrip() for r in rows)
    ctx.emit(text or "no accounts", [views.account_view(r) for r in rows])


@command("account show", "show an account", arg("account_id", type=positive))
async def cmd_account_show(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts, views

    account = await accounts.get_account(session, ctx.args.account_id)
    view = views.account_view(account)
    ctx.emit(human(view), view)


@command(
    "line add",
    "add a SIP line; prints its id",
    arg("account_id", type=positive),
    arg("number"),
    arg("--password", required=True),
    arg("--username", help="SIP username (default: the number without +)"),
    arg("--auth-username", help="authentication username if different"),
    arg("--display-name"),
    arg("--registrar", help=f"{REGISTRAR_FORMS} (default: DEFAULT_REGISTRAR)"),
    arg("--transport", choices=["udp", "tcp", "tls"]),
)
async def cmd_line_add(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts, views

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


@command("line list", "list lines", arg("--account", type=positive))
async def cmd_line_list(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts

    rows = await accounts.list_lines(session, ctx.args.account)
    found = [await _line_with_device(session, line) for line in rows]
    text = "\n".join(
        f"{v['id']}\t{v['number']}\t{v['username']}@{v['registrar']}\t"
        f"{v['device'] + ' slot ' + str(v['slot']) if v['device'] else 'no phone'}"
        for v in found
    )
    ctx.emit(text or "no lines", found)


@command("line show", "show a line", arg("line_id", type=positive))
async def cmd_line_show(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts

    view = await _line_with_device(session, await accounts.get_line(session, ctx.args.line_id))
    ctx.emit(human(view), view)


@command(
    "line password",
    "change a line's password",
    arg("line_id", type=positive),
    arg("--password", required=True),
)
async def cmd_line_password(ctx: Context, session: AsyncSession) -> None:
    from provisioning import accounts
    from provisioning.render.refusals import FilesCheck

    files = FilesCheck.for_settings(ctx.catalog, ctx.settings, ctx.cipher)
    line = await accounts.set_line_password(
        session, ctx.cipher, ctx.args.line_id, ctx.args.password, actor=ctx.actor, files=files
    )
    ctx.emit(f"password of line {line.id} changed", {"id": line.id, "changed": True})


async def _line_with_device(session: AsyncSession, line: Line) -> dict[str, Any]:
    from provisioning import views
    from provisioning.db.models import Device

    await session.refresh(line, ["slot"])
    if line.slot is None:
        return views.line_view(line)
    device = await session.get(Device, line.slot.device_id)
    return views.line_view(line, device.mac if device else None, line.slot.slot)


# -- devices --------------------------------------------------------------------------------


@command(
    "device add",
    "add a device; prints its URL",
    arg("mac"),
    arg("model", help="model id, see `provisioning catalog list`"),
    arg("account_id", type=positive, nargs="?"),
)
async def cmd_device_add(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory

    a = ctx.args
    device, token = await inventory.add_device(
        session, ctx.catalog, ctx.cipher, a.mac, a.model, a.account_id, actor=ctx.actor
    )
    url = f"{ctx.settings.base_url}/{token}/"
    ctx.emit(url, {"mac": device.mac, "model": device.model_id, "url": url})


@command(
    "device assign",
    "put a line on a device",
    arg("mac"),
    arg("line_id", type=positive),
    arg("--slot", type=positive),
)
async def cmd_device_assign(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory
    from provisioning.render.refusals import FilesCheck

    a = ctx.args
    # A line the device's files could not carry (a template's refuse) is refused, nothing written.
    files = FilesCheck.for_settings(ctx.catalog, ctx.settings, ctx.cipher)
    slot = await inventory.assign_line(
        session, a.mac, a.line_id, a.slot, actor=ctx.actor, files=files
    )
    ctx.emit(
        f"line {a.line_id} in slot {slot.slot} of {inventory.parse_mac(a.mac)}",
        {"mac": inventory.parse_mac(a.mac), "line_id": a.line_id, "slot": slot.slot},
    )


@command("device unassign", "take a line off", arg("mac"), arg("line_id", type=positive))
async def cmd_device_unassign(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory

    a = ctx.args
    slot = await inventory.unassign_line(session, a.mac, a.line_id, actor=ctx.actor)
    mac = inventory.parse_mac(a.mac)
    ctx.emit(
        f"line {a.line_id} removed from slot {slot} of {mac}",
        {"mac": mac, "line_id": a.line_id, "slot": slot},
    )


@command("device show", "show a device", arg("mac"))
async def cmd_device_show(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory

    view = device_view(ctx, await inventory.get_device(session, ctx.args.mac))
    ctx.emit(human(view), view)


@command("device url", "print a device's provisioning URL", arg("mac"))
async def cmd_device_url(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory

    device = await inventory.get_device(session, ctx.args.mac)
    url = inventory.provisioning_url(ctx.settings.base_url, ctx.cipher, device)
    ctx.emit(url, {"mac": device.mac, "url": url})


@command(
    "device list",
    "list devices",
    arg("--account", type=positive),
    arg("--unknown", action="store_true", help="devices seen but not registered"),
)
async def cmd_device_list(ctx: Context, session: AsyncSession) -> None:
    from provisioning import views
    from provisioning.devices import inventory
    from provisioning.devices.unknown import list_unknown

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
    found = [device_view(ctx, d) for d in rows]
    text = "\n".join(
        f"{v['mac']}\t{v['model']}\taccount {v['account_id']}\t{v['state']}\t"
        f"{len(v['slots'])} line(s)\tlast seen {v['last_seen']['at'] or 'never'}"
        for v in found
    )
    ctx.emit(text or "no devices", found)


@command(
    "device claim",
    "register unknown devices in bulk (all or none); prints each one's URL",
    arg("macs", nargs="*", metavar="MAC", help="MACs from `device list --unknown`"),
    arg("--file", help="CSV file with columns mac[, model][, account_id] (instead of MACs)"),
    arg("--model", help="model id for every MAC (default: the one its User-Agent names)"),
    arg("--account", type=positive, help="account id for every MAC (default: stock)"),
    arg("--dry-run", action="store_true", help="check every phone, claim none"),
)
async def cmd_device_claim(ctx: Context, session: AsyncSession) -> None:
    import asyncio

    from provisioning.devices import unknown
    from provisioning.imports import Problem

    a = ctx.args
    if bool(a.macs) == bool(a.file):
        raise CliError("give MACs or --file FILE.csv (one of them)")
    if a.file and (a.model or a.account):
        raise CliError("--model and --account are for MACs; a file gives them in its columns")
    problems: list[Problem] = []
    if a.file:
        try:
            data = await asyncio.to_thread(Path(a.file).read_bytes)
        except OSError as exc:
            raise CliError(f"{a.file}: {exc.strerror or exc}") from None
        claims = unknown.parse_claims_csv(data, problems)
    else:
        claims = [
            unknown.ClaimRequest(n, mac, a.model, a.account) for n, mac in enumerate(a.macs, 1)
        ]
    if problems:
        report = unknown.ClaimReport(a.dry_run, problems=problems)
    else:
        report = await unknown.claim_unknown(
            session,
            ctx.catalog,
            ctx.cipher,
            ctx.settings.base_url,
            claims,
            dry_run=a.dry_run,
            actor=ctx.actor,
        )
    ctx.emit(report.human(), report.view())
    if report.problems:
        raise SystemExit(EXIT_ERROR)


# -- overrides ------------------------------------------------------------------------------


def _scopes() -> tuple[str, ...]:
    from provisioning.overrides import SCOPES

    return SCOPES


@command(
    "override set",
    "set a setting override",
    arg("scope", choices=_scopes),
    arg("target", help="model id, account id or device MAC"),
    arg("key", help="`key` (key = value formats) or XML path `a/b[@name='x']@attr`"),
    arg("value"),
)
async def cmd_override_set(ctx: Context, session: AsyncSession) -> None:
    from provisioning import overrides, views

    a = ctx.args
    row = await overrides.set_override(
        session, ctx.catalog, a.scope, a.target, a.key, a.value, actor=ctx.actor
    )
    ctx.emit(f"{row.scope} {row.target}: {row.key} = {row.value}", views.override_view(row))


@command(
    "override unset",
    "remove an override",
    arg("scope", choices=_scopes),
    arg("target"),
    arg("key"),
)
async def cmd_override_unset(ctx: Context, session: AsyncSession) -> None:
    from provisioning import overrides

    a = ctx.args
    await overrides.unset_override(session, ctx.catalog, a.scope, a.target, a.key, actor=ctx.actor)
    ctx.emit(f"{a.scope} {a.target}: {a.key} removed", {"removed": True})


@command(
    "override list",
    "list overrides",
    arg("--scope", choices=_scopes),
    arg("--target"),
)
async def cmd_override_list(ctx: Context, session: AsyncSession) -> None:
    from provisioning import overrides, views

    rows = await overrides.list_overrides(session, ctx.args.scope, ctx.args.target)
    text = "\n".join(f"{r.scope} {r.target}\t{r.key} = {r.value}" for r in rows)
    ctx.emit(text or "no overrides", [views.override_view(r) for r in rows])


# -- bulk import and export -----------------------------------------------------------------


def _import_format() -> str:
    from provisioning import imports

    return imports.__doc__ or ""


def _export_notes() -> str:
    from provisioning import exports

    return exports.__doc__ or ""


@command(
    "import",
    "import accounts, lines and phones from a CSV file (its format: below)",
    arg("file", help="CSV file, comma or semicolon separated, UTF-8 (with or without BOM)"),
    arg("--dry-run", action="store_true", help="check every row, report problems, write nothing"),
    arg(
        "--continue",
        dest="keep_going",
        action="store_true",
        help="import the good rows and report the refused ones (default: all or nothing)",
    ),
    details=_import_format,
)
async def cmd_import(ctx: Context, session: AsyncSession) -> None:
    import asyncio

    from provisioning import imports
    from provisioning.render.refusals import FilesCheck

    a = ctx.args
    try:
        data = await asyncio.to_thread(Path(a.file).read_bytes)
    except OSError as exc:
        raise CliError(f"{a.file}: {exc.strerror or exc}") from None
    progress = imports.TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    mode: imports.Mode = "dry-run" if a.dry_run else "continue" if a.keep_going else "all"
    report = await imports.import_csv(
        session,
        ctx.settings,
        ctx.catalog,
        ctx.cipher,
        data,
        mode=mode,
        actor=ctx.actor,
        progress=progress,
        # A row whose line a phone's files could not carry is refused (render.refusals).
        files=FilesCheck.for_settings(ctx.catalog, ctx.settings, ctx.cipher),
    )
    ctx.emit(report.human(), report.view())
    if report.problems:
        # What was imported (the good rows of --continue) is kept; a refused import or a dry
        # run left nothing to commit (`import_csv` rolled its savepoint back).
        await session.commit()
        raise SystemExit(EXIT_ERROR)


@command(
    "export",
    "write accounts, lines and phones as a CSV file `provisioning import` reads back",
    arg("file", help="the CSV file to create (`-` for standard output); never overwritten"),
    arg(
        "--with-secrets",
        action="store_true",
        help="WRITE THE SIP PASSWORDS IN CLEAR (decrypted with the server's key), for a backup "
        "or a move; keep the file safe. Without it the password column is left empty",
    ),
    arg("--account", type=positive, help="only this account"),
    arg(
        "--delimiter",
        choices=[",", ";"],
        default=",",
        metavar="SEP",
        help="column separator: , (the default) or ; (as spreadsheets of many locales save)",
    ),
    details=_export_notes,
)
async def cmd_export(ctx: Context, session: AsyncSession) -> None:
    from provisioning import exports

    a = ctx.args
    options: dict[str, Any] = {
        "with_secrets": a.with_secrets,
        "account_id": a.account,
        "delimiter": a.delimiter,
        "actor": ctx.actor,
    }
    warning = " WITH THE SIP PASSWORDS IN CLEAR: keep it safe" if a.with_secrets else ""
    if a.file == "-":
        counts = await exports.export_csv(session, ctx.cipher, sys.stdout, **options)
        print(f"exported {counts['rows']} row(s){warning}", file=sys.stderr)
        return
    path = Path(a.file)
    # Created before the export (never over an existing file; private when it will hold
    # passwords), removed again if the export fails.
    handle = _new_file(path, private=a.with_secrets)
    try:
        with handle:
            counts = await exports.export_csv(session, ctx.cipher, handle, **options)
    except BaseException:
        _remove(path)
        raise
    ctx.emit(
        f"exported {counts['rows']} row(s) to {path}: {counts['accounts']} account(s), "
        f"{counts['lines']} line(s), {counts['devices']} device(s){warning}",
        {**counts, "file": str(path), "with_secrets": a.with_secrets},
    )


def _new_file(path: Path, *, private: bool) -> TextIO:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    except FileExistsError:
        raise CliError(f"{path} exists: an export never overwrites a file") from None
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


# -- lab, pushes, rendering -----------------------------------------------------------------


@command(
    "lab phone",
    "run one emulated handset",
    arg("url", help="the device's provisioning URL (with its token)"),
    arg("--mac", required=True),
    arg("--model", required=True, help="model id, e.g. yealink-t46u"),
    arg("--poll", type=float, help="seconds between re-checks (default: the config's)"),
    arg("--ignore-notify", action="store_true", help="never answer NOTIFYs"),
    arg("--duration", type=float, default=0, help="seconds to run (default: forever)"),
    arg("--sip-host", default="127.0.0.1"),
    session=False,
    key="none",
)
async def cmd_lab_phone(ctx: Context) -> None:
    import asyncio

    from provisioning.devices import inventory
    from provisioning.lab.phone import EmulatedPhone

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


@command(
    "lab storm",
    "boot N emulated phones at once",
    arg("--count", type=positive, default=100),
    arg("--concurrency", type=positive, default=50),
    arg("--duration", type=float, default=0, help="seconds to keep them up"),
)
async def cmd_lab_storm(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory
    from provisioning.lab.parsers import PARSERS
    from provisioning.lab.storm import StormDevice, storm

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


@command(
    "push devices",
    "give devices a new revision and queue their pushes (after a template change)",
    arg("--model"),
    arg("--family"),
    arg("--account", type=positive),
    arg("--all", action="store_true"),
    arg("--reason", default="template", choices=["template", "manual"]),
)
async def cmd_push_devices(ctx: Context, session: AsyncSession) -> None:
    from sqlalchemy import and_, true

    from provisioning.db.models import Device
    from provisioning.push.changes import devices_changed

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


@command("push status", "pushes by state")
async def cmd_push_status(ctx: Context, session: AsyncSession) -> None:
    from provisioning.push.changes import counts as push_counts

    by_state = await push_counts(session)
    ctx.emit("\n".join(f"{k}: {v}" for k, v in sorted(by_state.items())) or "no pushes", by_state)


@command("render", "print what the phone would get", arg("mac"), arg("file", nargs="?"))
async def cmd_render(ctx: Context, session: AsyncSession) -> None:
    from provisioning.devices import inventory
    from provisioning.errors import NotFound
    from provisioning.render.environment import Renderer
    from provisioning.render.files import device_files, render_file
    from provisioning.render.snapshot import find_device, load_device_data

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


@command(
    "templates check",
    "render and validate every model's files",
    session=False,
    key="none",
)
async def cmd_templates_check(ctx: Context) -> None:
    from provisioning.render.check import check_templates

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
