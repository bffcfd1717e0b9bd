"""Signed-in browsers. The cookie carries a random token; the database keeps its SHA-256 and an
expiry, so any server instance can check it and signing out ends it everywhere."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.crypto import token_hash
from provisioning.db.models import WebSession, WebUser, utcnow
from provisioning.web.users import Who, who_of

LIFETIME = timedelta(hours=12)


async def open_session(session: AsyncSession, user: WebUser, now: datetime | None = None) -> str:
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + LIFETIME
        )
    )
    # Old, expired sessions of this user go at each sign-in: the table stays small.
    await session.execute(
        delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires_at <= now)
    )
    await session.flush()
    return token


async def find_session(
    session: AsyncSession, token: str, now: datetime | None = None
) -> Who | None:
    if not 20 <= len(token) <= 100:
        return None
    row = await session.execute(
        select(WebUser)
        .join(WebSession, WebSession.user_id == WebUser.id)
        .where(
            WebSession.token_hash == token_hash(token), WebSession.expires_at > (now or utcnow())
        )
    )
    user = row.scalar_one_or_none()
    return who_of(user) if user is not None else None


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
