"""Commands of `provisioning` for the Manager's sign-in: a customer's password
(`account password ACCOUNT_ID`) and operators (`user create LOGIN`). The password is read from
standard input when it is not a terminal (for scripts), else asked twice without echo; it never
appears on the command line, where `ps` would show it. Registered with
`provisioning.commands.command`, imported only when `account` or `user` runs."""

from __future__ import annotations

import getpass
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.commands import Context, arg, command, positive
from provisioning.errors import InvalidInput
from provisioning.web import users


def read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise InvalidInput("password: the two entries differ", field="password")
    return first


@command(
    "account password",
    "set the Manager password of an account's holder (read from stdin or asked)",
    arg("account_id", type=positive),
    arg("--login", help="sign-in name (default: the current one, else the account id)"),
)
async def cmd_account_password(ctx: Context, session: AsyncSession) -> None:
    user = await users.set_customer_password(
        session, ctx.args.account_id, read_password(), login=ctx.args.login, actor=ctx.actor
    )
    view = {"login": user.login, "role": user.role, "account_id": user.account_id}
    ctx.emit(f"account {user.account_id} signs in to the Manager as {user.login!r}", view)


@command(
    "user create",
    "create an operator of the Manager, or set their password (read from stdin or asked)",
    arg("login"),
)
async def cmd_user_create(ctx: Context, session: AsyncSession) -> None:
    user = await users.create_operator(session, ctx.args.login, read_password(), actor=ctx.actor)
    ctx.emit(
        f"operator {user.login!r} can sign in to the Manager",
        {"login": user.login, "role": user.role, "account_id": None},
    )
