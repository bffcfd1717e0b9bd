"""Commands of `provisioning` for the Manager's sign-in: a customer's password
(`account password ACCOUNT_ID`) and operators (`user create LOGIN`). The password is read from
standard input when it is not a terminal (for scripts), else asked twice without echo; it never
appears on the command line, where `ps` would show it."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.errors import InvalidInput
from provisioning.web import users

if TYPE_CHECKING:
    from provisioning.cli import Context

SessionCommand = Callable[["Context", AsyncSession], Awaitable[None]]
Command = Callable[["Context"], Awaitable[None]]


def read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise InvalidInput("password: the two entries differ", field="password")
    return first


async def cmd_account_password(ctx: Context, session: AsyncSession) -> None:
    user = await users.set_customer_password(
        session, ctx.args.account_id, read_password(), login=ctx.args.login, actor=ctx.actor
    )
    view = {"login": user.login, "role": user.role, "account_id": user.account_id}
    ctx.emit(f"account {user.account_id} signs in to the Manager as {user.login!r}", view)


async def cmd_user_create(ctx: Context, session: AsyncSession) -> None:
    user = await users.create_operator(session, ctx.args.login, read_password(), actor=ctx.actor)
    ctx.emit(
        f"operator {user.login!r} can sign in to the Manager",
        {"login": user.login, "role": user.role, "account_id": None},
    )


def add_commands(
    sub: Any,
    account: Any,
    command: Callable[..., argparse.ArgumentParser],
    with_session: Callable[[SessionCommand], Command],
    positive: Callable[[str], int],
) -> None:
    p = command(
        account,
        "password",
        with_session(cmd_account_password),
        "set the Manager password of an account's holder (read from stdin or asked)",
    )
    p.add_argument("account_id", type=positive)
    p.add_argument("--login", help="sign-in name (default: the current one, else the account id)")
    user = sub.add_parser("user", help="Manager operators").add_subparsers(dest="u", required=True)
    p = command(
        user,
        "create",
        with_session(cmd_user_create),
        "create an operator of the Manager, or set their password (read from stdin or asked)",
    )
    p.add_argument("login")
