"""People who sign in to the Manager: customers (one account each) and operators. Passwords
are set by the CLI (`provisioning account password`, `provisioning user create`); a login is
locked for a while after repeated failures, and the answer never says whether the login exists."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.accounts import get_account
from provisioning.db.engine import SessionFactory
from provisioning.db.models import WebUser, utcnow
from provisioning.errors import Conflict, InvalidInput
from provisioning.web.passwords import (
    DUMMY_HASH,
    MAX_LENGTH,
    MIN_LENGTH,
    hash_password,
)
from provisioning.web.signin_gate import SignInGate

MAX_FAILURES = 5
LOCK_TIME = timedelta(minutes=15)
_LOGIN = re.compile(r"[A-Za-z0-9._@+-]{1,64}")


class LoginTaken(Conflict):
    code = "login-taken"


@dataclass(frozen=True)
class Who:
    """The signed-in person, as pages need it."""

    user_id: int
    login: str
    role: str
    account_id: int | None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        return f"web-{self.role}:{self.login}"


def who_of(user: WebUser) -> Who:
    return Who(user.id, user.login, user.role, user.account_id)


def check_login(login: str) -> str:
    login = login.strip()
    if not _LOGIN.fullmatch(login):
        raise InvalidInput("login: 1 to 64 letters, digits or . _ @ + -", field="login")
    return login


def check_new_password(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"password: {MIN_LENGTH} to {MAX_LENGTH} characters", field="password")
    if password.strip() != password or any(ord(c) < 32 for c in password):
        raise InvalidInput(
            "password: no leading or trailing spaces, no control characters", field="password"
        )
    return password


async def _save_user(
    session: AsyncSession,
    login: str,
    password: str,
    role: str,
    account_id: int | None,
    actor: audit.Actor,
) -> WebUser:
    password_hash = await asyncio.to_thread(hash_password, check_new_password(password))
    existing = await session.scalar(select(WebUser).where(WebUser.login == login))
    if existing is not None and (existing.role, existing.account_id) != (role, account_id):
        raise LoginTaken(f"login {login} is already used by someone else", field="login")
    user = existing or WebUser(login=login, role=role, account_id=account_id, password_hash="")
    user.password_hash = password_hash
    user.failed_logins = 0
    user.locked_until = None
    if existing is None:
        session.add(user)
    await session.flush()
    await audit.record(
        session,
        actor,
        "web_user.password",
        "web_user",
        user.id,
        account_id=account_id,
        after={"login": login, "role": role, "created": existing is None},
    )
    return user


async def set_customer_password(
    session: AsyncSession,
    account_id: int,
    password: str,
    *,
    login: str | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> WebUser:
    """Set (or create) the sign-in of an account's holder. The login defaults to the one the
    account already has, else to the account number."""
    await get_account(session, account_id)
    if login is None:
        current = await session.scalar(
            select(WebUser).where(WebUser.account_id == account_id).order_by(WebUser.id)
        )
        login = current.login if current is not None else str(account_id)
    return await _save_user(session, check_login(login), password, "customer", account_id, actor)


async def create_operator(
    session: AsyncSession, login: str, password: str, *, actor: audit.Actor = audit.SYSTEM
) -> WebUser:
    return await _save_user(session, check_login(login), password, "operator", None, actor)


async def sign_in(
    sessions: SessionFactory,
    gate: SignInGate,
    login: str,
    password: str,
    *,
    now: datetime | None = None,
    actor_ip: str | None = None,
) -> WebUser | None:
    """The user whose password this is, or None: wrong login, wrong password or locked look
    the same. Five failures lock the login for fifteen minutes, a good password included.
    The password is verified outside any transaction (`signin_gate`): only the outcome is
    written, in a short one. TooManyAttempts from the gate, before any hashing."""
    gate.admit(actor_ip)
    now = now or utcnow()
    login = login.strip()[:64]
    async with sessions() as session:
        found = await session.scalar(select(WebUser.password_hash).where(WebUser.login == login))
    if found is None:
        await gate.verify(password, DUMMY_HASH)  # the same time as for a login that exists
        return None
    good = await gate.verify(password[:MAX_LENGTH], found)
    async with sessions() as session, session.begin():
        user = await session.scalar(select(WebUser).where(WebUser.login == login).with_for_update())
        if user is None:
            return None
        # The password changed meanwhile: what was verified is not what is stored.
        good = good and user.password_hash == found
        return await _record_sign_in(
            session, user, good, now, audit.Actor(f"web:{login}", actor_ip)
        )


async def _record_sign_in(
    session: AsyncSession, user: WebUser, good: bool, now: datetime, who: audit.Actor
) -> WebUser | None:
    locked = user.locked_until is not None and user.locked_until > now
    if locked or not good:
        if not locked:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILURES:
                user.locked_until = now + LOCK_TIME
                user.failed_logins = 0
                await audit.record(
                    session,
                    who,
                    "web_user.locked",
                    "web_user",
                    user.id,
                    account_id=user.account_id,
                    after={"until": user.locked_until.isoformat()},
                )
        await session.flush()
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    await session.flush()
    await audit.record(
        session, who, "web_user.sign_in", "web_user", user.id, account_id=user.account_id
    )
    return user
