"""Bearer tokens of the JSON API: operator (every account) or customer (one account). Stored as
SHA-256 only, revocable, optionally expiring."""

from __future__ import annotations

import secrets as _random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.accounts import clean_text, get_account
from provisioning.crypto import token_hash
from provisioning.db.models import ApiToken, utcnow
from provisioning.errors import InvalidInput, NotFound

PREFIX = "pp_"  # recognisable in a leaked log or a secret scanner


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: str
    account_id: int | None
    name: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


async def create_token(
    session: AsyncSession,
    role: str,
    *,
    account_id: int | None = None,
    name: str = "",
    expires_days: int | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> tuple[ApiToken, str]:
    if role not in ("operator", "customer"):
        raise InvalidInput("role: operator or customer", field="role")
    if role == "customer":
        if account_id is None:
            raise InvalidInput("account_id: a customer token is bound to an account")
        await get_account(session, account_id)
    elif account_id is not None:
        raise InvalidInput("account_id: an operator token sees every account")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InvalidInput("expires_days: 1 to 3650", field="expires_days")
    secret = PREFIX + _random.token_urlsafe(32)
    row = ApiToken(
        token_hash=token_hash(secret),
        role=role,
        account_id=account_id,
        name=clean_text(name, "name", max_length=100, required=False),
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session, actor, "token.create", "token", row.id, account_id=account_id,
        after=token_view(row),
    )  # fmt: skip
    return row, secret


async def authenticate(session: AsyncSession, secret: str) -> Principal | None:
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return Principal(row.id, row.role, row.account_id, row.name or f"token {row.id}")


async def revoke_token(
    session: AsyncSession, token_id: int, *, actor: audit.Actor = audit.SYSTEM
) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    before = token_view(row)
    row.revoked_at = row.revoked_at or utcnow()
    await session.flush()
    await audit.record(
        session, actor, "token.revoke", "token", row.id, account_id=row.account_id,
        before=before, after=token_view(row),
    )  # fmt: skip
    return row


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.scalars(select(ApiToken).order_by(ApiToken.id))).all())


def token_view(row: ApiToken) -> dict[str, object]:
    return {
        "id": row.id,
        "role": row.role,
        "account_id": row.account_id,
        "name": row.name,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }
