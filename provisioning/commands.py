"""The machinery of the `provisioning` command, below every module that adds commands to it.

A module registers its commands with the `command` decorator and imports `Context` from here,
never from `provisioning.cli`. `run` builds the parser from a static table of groups (name,
one-line help, the modules registering its commands): only the group being run has its modules
imported, so `provisioning --help` and the commands that need no database start without
SQLAlchemy, aiohttp or the ORM models. This module imports nothing heavy; what a command needs
is imported by its module, or inside the functions here that need it.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from provisioning.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from provisioning.audit import Actor
    from provisioning.crypto import Cipher
    from provisioning.devices.catalog import Catalog
    from provisioning.settings import Settings

EXIT_ERROR = 1
EXIT_USAGE = 2

SessionBody = Callable[["Context", "AsyncSession"], Awaitable[None]]
Body = Callable[["Context"], Coroutine[Any, Any, None]]
F = TypeVar("F", bound=Callable[..., Any])
# What a command needs of the secret key: it must be there ("required"), it is created when
# missing ("create", `db upgrade`), or the command never uses it ("none").
KeyNeed = Literal["required", "create", "none"]


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
            from provisioning.devices.catalog import load_catalog

            self._catalog = load_catalog(self.settings.templates_dir)
        return self._catalog

    @property
    def cipher(self) -> Cipher:
        from provisioning.crypto import Cipher

        return Cipher(self.settings.secret_key)

    @property
    def actor(self) -> Actor:
        from provisioning.audit import Actor

        return Actor(f"cli:{_user()}")

    def emit(self, human_text: str, data: Any) -> None:
        if getattr(self.args, "json", False):
            print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        else:
            print(human_text)


# -- registration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A top-level word of the command line: its one-line help, and the modules whose
    `command` decorators register its commands (imported only when the group is run)."""

    help: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    options: Mapping[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """One `add_argument` call. `choices` may be a function, called when the parser is built
    (so a command's choices can come from a module that only that command imports)."""
    return Arg(flags, options)


@dataclass(frozen=True)
class Spec:
    path: tuple[str, ...]
    help: str
    handler: Callable[..., Any]
    arguments: tuple[Arg, ...]
    session: bool
    key: KeyNeed
    json: bool
    details: str | Callable[[], str] | None = None


REGISTRY: dict[tuple[str, ...], Spec] = {}


def command(
    path: str,
    help_text: str,
    *arguments: Arg,
    session: bool = True,
    key: KeyNeed = "required",
    json_flag: bool = True,
    details: str | Callable[[], str] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as `provisioning PATH` ("group" or "group command").

    With `session` (the default) it is called as `handler(ctx, session)` inside one transaction
    on a database brought up to date; else `handler(ctx)`. A coroutine function runs in its own
    event loop; a plain function (`serve`, which runs its own) is called as it is. `details`,
    shown after the options by `--help` as it is written, may be a function (called then)."""
    words = tuple(path.split())
    if not 1 <= len(words) <= 2:
        raise ValueError(f"{path!r}: a command is one or two words")

    def register(handler: F) -> F:
        REGISTRY[words] = Spec(
            words, help_text, handler, arguments, session, key, json_flag, details
        )
        return handler

    return register


# -- settings and database ------------------------------------------------------------------


def load_settings(*, create_key: bool = False, demo_mode: bool = False) -> Settings:
    from provisioning.settings import Settings

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
    from provisioning.crypto import Cipher, generate_key

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
    from provisioning.db.engine import make_session_factory
    from provisioning.db.migrate import is_current, upgrade
    from provisioning.devices import inventory

    if not await is_current(engine):
        if not migrate:
            raise CliError("the database schema is not up to date: run `provisioning db upgrade`")
        await upgrade(engine)
    async with make_session_factory(engine)() as session, session.begin():
        await inventory.sync_models(session, catalog)


def with_session(body: SessionBody) -> Body:
    async def run(ctx: Context) -> None:
        from provisioning.db.engine import make_engine, make_session_factory

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


# -- helpers for commands -------------------------------------------------------------------


def human(view: Mapping[str, Any]) -> str:
    """A view as `key: value` lines (nested values as JSON)."""
    lines = []
    for key, value in view.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


# -- parser ---------------------------------------------------------------------------------


def build_parser(
    groups: Mapping[str, Group],
    *,
    description: str,
    epilog: str | None = None,
    load: Iterable[str] = (),
) -> argparse.ArgumentParser:
    """Every group of the table is listed; only those in `load` have their modules imported
    and their commands and arguments added."""
    parser = argparse.ArgumentParser(prog="provisioning", description=description, epilog=epilog)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = set(load)
    for name, group in groups.items():
        p = sub.add_parser(name, help=group.help, description=group.help)
        if name in wanted:
            for module in group.modules:
                importlib.import_module(module)
            _fill(p, name)
    return parser


def group_specs(name: str) -> list[Spec]:
    """The registered commands of a group, in registration order."""
    return [spec for spec in REGISTRY.values() if spec.path[0] == name]


def _fill(parser: argparse.ArgumentParser, name: str) -> None:
    specs = group_specs(name)
    if not specs:
        raise LookupError(f"{name}: no command registered by the group's modules")
    whole = [spec for spec in specs if len(spec.path) == 1]
    if whole:
        parser.description = whole[0].help
        _configure(parser, whole[0])
        return
    sub = parser.add_subparsers(dest=f"{name}_command", required=True)
    for spec in specs:
        _configure(sub.add_parser(spec.path[1], help=spec.help, description=spec.help), spec)


def _configure(parser: argparse.ArgumentParser, spec: Spec) -> None:
    parser.set_defaults(spec=spec)
    if spec.details is not None:
        parser.epilog = spec.details() if callable(spec.details) else spec.details
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if spec.json:
        parser.add_argument("--json", action="store_true", help="print one JSON document")
    for argument in spec.arguments:
        options = dict(argument.options)
        if callable(options.get("choices")):
            options["choices"] = list(options["choices"]())
        parser.add_argument(*argument.flags, **options)


# -- running --------------------------------------------------------------------------------


def run(
    argv: Sequence[str] | None,
    groups: Mapping[str, Group],
    *,
    description: str,
    epilog: str | None = None,
) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # The group is the first word that is not an option (the top level has only -h).
    chosen = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser(groups, description=description, epilog=epilog, load=[chosen or ""])
    args = parser.parse_args(words)
    spec: Spec = args.spec
    # Past the parser only: `--help` and usage errors never load the event loop.
    import asyncio
    import inspect

    try:
        ctx = Context(_settings_for(spec), args)
        if spec.session:
            asyncio.run(with_session(spec.handler)(ctx))
        elif inspect.iscoroutinefunction(spec.handler):
            asyncio.run(spec.handler(ctx))
        else:
            spec.handler(ctx)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = _one_line(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _settings_for(spec: Spec) -> Settings:
    if spec.key == "none":
        from provisioning.settings import Settings

        return Settings.from_env()
    return load_settings(create_key=spec.key == "create")


# Errors reported in one line. Their modules are looked up among those already imported: an
# exception cannot be of a class whose module was never loaded, so nothing is imported here.
_REPORTED = (
    ("provisioning.settings", "SettingsError"),
    ("provisioning.devices.catalog", "CatalogError"),
    ("provisioning.crypto", "SecretKeyError"),
    ("provisioning.render.environment", "RenderError"),
    ("provisioning.security.lab", "LabError"),
)


def _loaded_class(module: str, name: str) -> type[BaseException] | None:
    found = sys.modules.get(module)
    cls = getattr(found, name, None) if found is not None else None
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def _one_line(exc: Exception) -> str | None:
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, CliError):
        return str(exc)
    for module, name in _REPORTED:
        cls = _loaded_class(module, name)
        if cls is not None and isinstance(exc, cls):
            return str(exc)
    database_error = _loaded_class("sqlalchemy.exc", "SQLAlchemyError")
    if database_error is not None and isinstance(exc, database_error):
        return f"database: {_db_reason(exc)}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return None


def _db_reason(exc: BaseException) -> str:
    # The driver's first line says what went wrong; never the statement (it may hold values).
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).splitlines()[0]
    return text[:200]
