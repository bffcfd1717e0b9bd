"""The push worker: claims due pushes from the database, sends their check-sync NOTIFYs at a
paced rate, records what came back, marks overdue ones. Several server instances share the queue:
on PostgreSQL a claim is `FOR UPDATE SKIP LOCKED`, and claiming moves the next attempt forward,
so one attempt is sent by one instance only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import Device, Line, LineSlot, Push, utcnow
from provisioning.numbers import parse_int
from provisioning.push.changes import mark_overdue
from provisioning.push.notify import Target, send_notify
from provisioning.sip.address import SipAddress
from provisioning.sip.transport import SipEndpoint, Timers
from provisioning.state import Services

log = logging.getLogger(__name__)

BATCH = 200
IDLE = 0.25
# After a 200 the phone should fetch within seconds; ask again later in case it did not.
AFTER_ANSWER = timedelta(seconds=60)
BACKOFF = (timedelta(seconds=2), timedelta(seconds=5), timedelta(seconds=15), timedelta(seconds=30))


@dataclass(frozen=True)
class Job:
    push_id: int
    target: Target | None
    skip_reason: str | None = None


def backoff(attempts: int) -> timedelta:
    return BACKOFF[min(attempts, len(BACKOFF)) - 1] if attempts > 0 else BACKOFF[0]


async def claim(session: AsyncSession, services: Services, now: datetime, limit: int) -> list[Job]:
    query = (
        select(Push, Device)
        .join(Device, Device.id == Push.device_id)
        .where(
            Push.state.in_(("pending", "notified")),
            Push.next_attempt_at <= now,
            Push.deadline > now,
        )
        .order_by(Push.next_attempt_at, Push.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Push)
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    device_ids = {device.id for _, device in rows}
    first_lines: dict[int, Line] = {}
    slots = await session.execute(
        select(LineSlot.device_id, Line)
        .join(Line, Line.id == LineSlot.line_id)
        .where(LineSlot.device_id.in_(device_ids))
        .order_by(LineSlot.device_id, LineSlot.slot)
    )
    for device_id, line in slots.all():
        first_lines.setdefault(device_id, line)
    jobs = []
    for push, device in rows:
        push.attempts += 1
        push.next_attempt_at = now + backoff(push.attempts)
        jobs.append(_job(services, push, device, first_lines.get(device.id)))
    await session.flush()
    return jobs


def _job(services: Services, push: Push, device: Device, line: Line | None) -> Job:
    settings = services.settings
    family = services.catalog.family_of(device.model_id)
    if family.notify_event is None:
        return Job(push.id, None, "no-resync-event")
    if line is None:
        return Job(push.id, None, "no-line")
    user = line.sip_username
    transport = line.transport
    if settings.push_route == "proxy" and settings.push_proxy and settings.push_proxy.transport:
        transport = settings.push_proxy.transport  # the proxy's own (PUSH_PROXY=tcp:host)
    if transport == "tls":
        return Job(push.id, None, "tls-unsupported")
    if settings.push_route == "direct":
        if not device.last_ip:
            return Job(push.id, None, "never-seen")
        host, port = device.last_ip, settings.push_direct_port
        # An IPv6 host goes in brackets in a URI (`sip:u@[2001:db8::7]:5060`); the socket
        # address (`host`) stays bare, as getaddrinfo takes it.
        uri = f"sip:{user}@{SipAddress(host, port)}"
        to_uri = uri
    else:
        proxy = settings.push_proxy
        host = proxy.host if proxy else line.registrar_host
        port = proxy.port if proxy else line.registrar_port
        # The Request-URI is a line of the phone: the registrar relays to its contact.
        registrar = SipAddress(line.registrar_host, line.registrar_port)
        uri = f"sip:{user}@{registrar}"
        to_uri = f"sip:{user}@{registrar.uri_host}"
    return Job(
        push.id,
        Target(
            request_uri=uri,
            to_uri=to_uri,
            host=host,
            port=port,
            transport=transport,
            event=family.notify_event,
            username=line.auth_username or user,
            password=services.cipher.decrypt(line.password_enc),
        ),
    )


async def record(
    session: AsyncSession, push_id: int, result: str, now: datetime, *, final: bool = False
) -> None:
    answered = parse_int(result, 200, 299) is not None
    values: dict[str, object] = {"last_result": result}
    if answered:
        values["next_attempt_at"] = now + AFTER_ANSWER
    if final:
        # Nothing to send for this device (no line, no resync event): polling alone applies it.
        values["next_attempt_at"] = now + timedelta(days=1)
    # Never overwrite `applied`: the phone may have fetched while we were sending.
    await session.execute(
        update(Push)
        .where(Push.id == push_id, Push.state.in_(("pending", "notified")))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if answered:
        await session.execute(
            update(Push)
            .where(Push.id == push_id, Push.state == "pending")
            .values(state="notified", notified_at=now)
            .execution_options(synchronize_session=False)
        )


class PushWorker:
    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.endpoint = SipEndpoint(Timers(t1=settings.push_t1_ms / 1000))
        self.interval = 1 / settings.push_rate
        self._sends: set[asyncio.Task[None]] = set()
        self.wakeup = asyncio.Event()
        self.finishing = False

    async def start(self) -> None:
        settings = self.services.settings
        await self.endpoint.open(settings.push_sip_host, settings.push_sip_port)

    async def run(self) -> None:
        """Ticks until `finish`: a tick is never cancelled in its transaction (a connection
        cancelled there could keep SQLite's write lock, and the shutdown's last sightings
        flush would wait the busy timeout for it)."""
        while not self.finishing:
            try:
                claimed = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("push worker: tick failed", exc_info=True)
                claimed = 0
            if claimed < BATCH and not self.finishing:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), IDLE)

    async def tick(self) -> int:
        now = utcnow()
        async with self.services.sessions() as session, session.begin():
            await mark_overdue(session, now)
            jobs = await claim(session, self.services, now, BATCH)
        for job in jobs:
            task = asyncio.create_task(self._send(job))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            await asyncio.sleep(self.interval)  # pacing: push_rate NOTIFYs per second
        return len(jobs)

    async def _send(self, job: Job) -> None:
        final = job.target is None
        if job.target is None:
            result = job.skip_reason or "no-target"
        else:
            try:
                result = await send_notify(self.endpoint, job.target)
            except OSError as exc:
                result = f"error:{type(exc).__name__}"[:64]
        log.info("push %s: %s", job.push_id, result)
        try:
            async with self.services.sessions() as session, session.begin():
                await record(session, job.push_id, result, utcnow(), final=final)
        except Exception:
            log.warning("push %s: result not recorded", job.push_id, exc_info=True)

    def finish(self) -> None:
        """`run` returns after the tick in progress, if any."""
        self.finishing = True
        self.wakeup.set()

    async def stop(self) -> None:
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)
        self.endpoint.close()
