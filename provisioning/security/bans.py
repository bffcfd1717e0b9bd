"""Scanner defence: misses (bad token, unknown MAC, failed digest, ...) counted per source address
and per network in a sliding window; past a threshold the source is banned for a while and gets
403 for everything.

State lives in the database, so every server instance counts the same misses and honours the
same bans. The per-request check reads an in-memory copy of the active bans (`BanList`), kept in
step with the database every few seconds and at once for bans this instance makes or lifts: O(1)
and no database round trip for phones that are served.

Counting never depends on whether a device exists: a miss on a real MAC and a miss on a guessed
one cost the same, so the moment a ban falls tells a scanner nothing. It depends on how the
request looks instead: one without a credential from what looks like a phone (its User-Agent
names the family of the file asked, the MACs it states agree: `devices.unknown.plausible_phone`)
is weighed once per MAC and address (`unseen_phone`), so a site booting new phones behind one
NAT is not banned, and a scanner still is (see POINTS). Log lines are meant for fail2ban too
(`deploy/fail2ban/`): `phone-miss host=<ip> reason=<why>` for each miss and
`phone-ban host=<ip> source=<ip or network> seconds=<n>` for each ban.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import netaddr
from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.db.models import SourceBan, SourceMisses, utcnow
from provisioning.errors import InvalidInput, NotFound
from provisioning.security.sources import Source, parse_source
from provisioning.settings import Settings

log = logging.getLogger("provisioning.security")


class Miss(StrEnum):
    BAD_TOKEN = "bad-token"  # noqa: S105 -- a token that opens nothing
    UNKNOWN_MAC = "unknown-mac"  # a device named by MAC alone, without any credential
    FAILED_DIGEST = "failed-digest"  # a digest answer that does not verify
    REPLAYED_DIGEST = "replayed-digest"  # a nonce count already used
    WRONG_DEVICE = "wrong-device"  # a credential of one device asking for another's file
    CHALLENGE = "challenge"  # a digest challenge sent (the phone has not answered yet)
    UNKNOWN_PHONE = "unknown-phone"  # a plausible phone, no credential, its MAC new here


# Every digest phone is challenged once per file it fetches (a Yealink boot: three), and a
# challenge gives nothing away, so it weighs a quarter of a miss; a scanner that never answers
# is still banned, after four times as many requests.
#
# A phone not registered yet asks its boot files (a Yealink: `<mac>.boot`, the common file,
# `<mac>.cfg`) at each boot and keeps asking; twelve of them booting behind one NAT made 24
# misses and banned the site's address, and with it the site's registered phones and its
# Manager. So a plausible phone asking without a credential (UNKNOWN_PHONE, or the CHALLENGE
# digest sends it) weighs a quarter of a miss the first time its MAC asks from an address
# within the window (`unseen_phone`), and nothing when it asks again: a site can boot up to
# BAN_THRESHOLD * MISS_POINTS (80 by default) new phones per address, and 400 per network, per
# window before a ban. A scanner gets the same quarter for each MAC it guesses with a matching
# phone User-Agent: banned after at most 80 guesses per address (4 times the 20 full misses of
# a scanner that does not pretend), 400 per network. A guess by bare MAC opens nothing unless
# ALLOW_MAC_ONLY is set; tokens and digest answers are still full misses.
MISS_POINTS = 4
POINTS = {miss: MISS_POINTS for miss in Miss} | {Miss.CHALLENGE: 1, Miss.UNKNOWN_PHONE: 1}


@dataclass(frozen=True)
class BanRules:
    threshold: int  # misses per address in the window
    network_threshold: int  # misses per network in the window
    window: int  # seconds
    seconds: int  # ban length
    exempt: netaddr.IPSet  # never counted: the operator's own networks, trusted proxies

    @classmethod
    def from_settings(cls, settings: Settings) -> BanRules:
        return cls(
            threshold=settings.ban_threshold,
            network_threshold=settings.ban_network_threshold,
            window=settings.ban_window,
            seconds=settings.ban_seconds,
            exempt=settings.ban_exempt | settings.trusted_proxies,
        )

    def exempted(self, source: Source) -> bool:
        return netaddr.IPAddress(source.address) in self.exempt


@dataclass(frozen=True)
class NewBan:
    source: str
    until: datetime
    misses: int


class BanList:
    """This instance's copy of the active bans: source key -> end (seconds since the epoch)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def banned(self, source: Source) -> bool:
        if not self._until:  # the usual case: nothing to look up
            return False
        now = time.time()
        for key in (source.address, source.network):
            until = self._until.get(key)
            if until is not None and until > now:
                return True
        return False

    def add(self, source: str, until: datetime) -> None:
        self._until[source] = until.timestamp()

    def remove(self, source: str) -> None:
        self._until.pop(source, None)

    def replace(self, bans: Iterable[tuple[str, datetime]]) -> None:
        self._until = {source: until.timestamp() for source, until in bans}

    def __len__(self) -> int:
        return len(self._until)

    def active(self) -> int:
        now = time.time()
        return sum(1 for until in self._until.values() if until > now)


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def record_miss(
    session: AsyncSession, source: Source, miss: Miss, rules: BanRules, *, now: float | None = None
) -> list[NewBan]:
    """Count one miss of `source` (address and network, one upsert) and ban what crossed its
    threshold. Returns the bans made."""
    now = time.time() if now is None else now
    bucket = int(now // rules.window)
    points = POINTS[miss]
    insert = _insert(session)
    statement = insert(SourceMisses).values(
        [
            {"source": key, "bucket": bucket, "points": points, "previous": 0}
            for key in (source.address, source.network)
        ]
    )
    # Two fixed windows per source; the estimate weighs the previous one by how much of it
    # still lies within the sliding window. All SET expressions see the row as it was.
    statement = statement.on_conflict_do_update(
        index_elements=[SourceMisses.source],
        set_={
            "previous": case(
                (SourceMisses.bucket == bucket, SourceMisses.previous),
                (SourceMisses.bucket == bucket - 1, SourceMisses.points),
                else_=0,
            ),
            "points": case(
                (SourceMisses.bucket == bucket, SourceMisses.points + points), else_=points
            ),
            "bucket": bucket,
        },
    ).returning(SourceMisses.source, SourceMisses.points, SourceMisses.previous)
    rows = (await session.execute(statement)).all()
    elapsed = (now % rules.window) / rules.window
    limits = {
        source.address: rules.threshold * MISS_POINTS,
        source.network: rules.network_threshold * MISS_POINTS,
    }
    log.info("phone-miss host=%s reason=%s", source.address, miss.value)
    bans = []
    for key, current, previous in rows:
        estimate = previous * (1 - elapsed) + current
        if estimate >= limits[key]:
            bans.append(await _ban(session, key, rules, int(estimate // MISS_POINTS)))
            log.warning(
                "phone-ban host=%s source=%s seconds=%d misses=%d",
                source.address,
                key,
                rules.seconds,
                int(estimate // MISS_POINTS),
            )
    return bans


async def unseen_phone(
    session: AsyncSession, source: Source, mac: str, rules: BanRules, *, now: float | None = None
) -> bool:
    """Whether `mac` asks from the source's address for the first time within the window (this
    fixed window or the one before): only then is a plausible phone's request weighed. Kept in
    `source_misses` under `<address> <mac>` (a space: never a source, never parsed as one), the
    bucket of its last request and `points` 1 at the first, 2 after; `forget_expired` drops it
    with the counters. Never depends on whether the MAC is registered."""
    now = time.time() if now is None else now
    bucket = int(now // rules.window)
    statement = _insert(session)(SourceMisses).values(
        source=f"{source.address} {mac}", bucket=bucket, points=1, previous=0
    )
    statement = statement.on_conflict_do_update(
        index_elements=[SourceMisses.source],
        set_={
            "points": case((SourceMisses.bucket >= bucket - 1, 2), else_=1),
            "bucket": bucket,
        },
    ).returning(SourceMisses.points)
    return bool((await session.execute(statement)).scalar_one() == 1)


async def _ban(session: AsyncSession, key: str, rules: BanRules, misses: int) -> NewBan:
    until = utcnow() + timedelta(seconds=rules.seconds)
    statement = _insert(session)(SourceBan).values(
        source=key, until=until, misses=misses, created_at=utcnow()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[SourceBan.source],
            set_={"until": statement.excluded.until, "misses": statement.excluded.misses},
        )
    )
    return NewBan(source=key, until=until, misses=misses)


async def active_bans(session: AsyncSession, *, limit: int | None = None) -> list[SourceBan]:
    query = select(SourceBan).where(SourceBan.until > utcnow()).order_by(SourceBan.until.desc())
    if limit is not None:
        query = query.limit(limit)
    return list((await session.scalars(query)).all())


async def active_ban_ends(session: AsyncSession) -> list[tuple[str, datetime]]:
    rows = await session.execute(
        select(SourceBan.source, SourceBan.until).where(SourceBan.until > utcnow())
    )
    return [(source, until) for source, until in rows.all()]


async def lift_ban(session: AsyncSession, text: str, *, actor: audit.Actor = audit.SYSTEM) -> str:
    """Lift the ban of a source (address or network); its misses are forgotten too, so the next
    miss does not ban it again at once. Returns the canonical source."""
    source = parse_source(text)
    if source is None:
        raise InvalidInput("source: an IP address or a network (CIDR)", field="source")
    ban = await session.get(SourceBan, source)
    if ban is None or ban.until <= utcnow():
        raise NotFound(f"no active ban of {source}")
    before = ban_view(ban)
    await session.delete(ban)
    await session.execute(delete(SourceMisses).where(SourceMisses.source == source))
    await audit.record(session, actor, "ban.lift", "ban", source, before=before)
    log.warning("phone-unban source=%s by=%s", source, actor.name)
    return source


async def forget_expired(session: AsyncSession, rules: BanRules) -> None:
    """Housekeeping: drop ended bans and counters older than the sliding window."""
    now = utcnow()
    await session.execute(delete(SourceBan).where(SourceBan.until <= now))
    stale = int(now.timestamp() // rules.window) - 1
    await session.execute(delete(SourceMisses).where(SourceMisses.bucket < stale))


def ban_view(ban: SourceBan) -> dict[str, Any]:
    return {
        "source": ban.source,
        "kind": "network" if "/" in ban.source else "address",
        "until": ban.until.astimezone(UTC).isoformat(),
        "misses": ban.misses,
        "since": ban.created_at.astimezone(UTC).isoformat(),
    }
