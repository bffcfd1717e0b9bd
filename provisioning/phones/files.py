"""GET of a configuration file: identify, authorise, look up, render or take from the cache,
record the sighting, answer.

Unknown and unauthorised requests get one identical empty 404, so a scanner learns nothing. An
internal failure (database down) is a 503 with Retry-After: a known phone must never be told
"no such file" because of us, since phones keep their settings only when the server is silent.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.crypto import SecretKeyError
from provisioning.db.errors import DB_ERRORS, DatabaseUnavailable, describe
from provisioning.db.models import utcnow
from provisioning.devices.identify import FileMatch, UserAgentInfo, match_file, parse_user_agent
from provisioning.devices.unknown import UnknownFacts, plausible_phone, record_unknown
from provisioning.orders.handover import at_first_fetch
from provisioning.phones.answers import Kept
from provisioning.phones.auth import Decision, Evidence
from provisioning.phones.client import client_ip, peer_address, user_agent
from provisioning.phones.guard import Claim, Refusal
from provisioning.phones.request import PhoneRequest, Replay, Reply, empty, to_response
from provisioning.phones.sightings import SightingFacts
from provisioning.render.cache import Rendered
from provisioning.render.environment import RenderError
from provisioning.render.files import render_file, spec_for
from provisioning.security.bans import Miss
from provisioning.state import SERVICES, Services

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
RETRY_AFTER = "30"
# Set on the request once the file name is matched: the family a fetch counts under (metrics).
FAMILY_KEY: web.RequestKey[str] = web.RequestKey("provisioning.family", str)
# Bookkeeping of a served file left to the caller, to run once the client has it all (`fetch`).
Later = list[Callable[[], Awaitable[None]]]


def not_found() -> web.Response:
    # Built fresh each time (a Response cannot be sent twice), identical every time.
    return web.Response(status=404)


async def fetch_file(request: web.Request) -> web.StreamResponse:
    """The aiohttp route: the same `fetch` the phone lane calls."""
    file_name = request.match_info.get("file", "")
    token = request.match_info.get("token") or request.query.get("token")
    reply = await fetch(request.app[SERVICES], request, file_name, token)
    request[FAMILY_KEY] = reply.family
    return to_response(reply)


def unavailable(family: str = "") -> Reply:
    return Reply(503, [("Retry-After", RETRY_AFTER)], family=family)


async def fetch(
    services: Services,
    request: PhoneRequest,
    file_name: str,
    token: str | None,
    *,
    mac_only: bool = False,
    later: Later | None = None,
) -> Reply:
    """What a phone asking `file_name` is answered: never a 5xx but 503 with Retry-After. A
    phone keeps its settings and asks again when the server cannot answer; told 500 (or 404) it
    may give up or fall back to factory settings, whatever failed on our side.

    `mac_only`: the MAC the request names is proof enough for this request, as with
    ALLOW_MAC_ONLY on, and no digest challenge is made (guard.Claim.mac_only). Only a listener
    whose clients can carry nothing else passes it (tftp); the HTTP layers never do.

    `later`: a served file's bookkeeping (its sighting, with the proof a change applied, and the
    first-contact binding) is appended there, to be awaited by the caller once the client has
    the whole file, instead of done now. For a listener that learns only after answering whether
    the file arrived, from a source it cannot authenticate (tftp: UDP); the HTTP layers never
    pass it."""
    try:
        return await _fetch(services, request, file_name, token, mac_only, later)
    except DB_ERRORS as exc:  # the bookkeeping after the read: misses, unknown devices...
        log.warning("phone fetch: database unavailable: %s", describe(exc))
    except Exception:
        # A bug of ours: its traceback for us (the path is logged masked, by the access log).
        log.exception("phone fetch: unexpected error answering %s", file_name)
    return unavailable()


async def _fetch(
    services: Services,
    request: PhoneRequest,
    file_name: str,
    token: str | None,
    mac_only: bool,
    later: Later | None,
) -> Reply:
    settings = services.settings
    if not FILE_NAME.fullmatch(file_name):
        return empty(404)
    if token is not None and not TOKEN.fullmatch(token):
        return await services.guard.refuse(request, Refusal(miss=Miss.BAD_TOKEN))
    matches = match_file(services.catalog, file_name)
    if not matches:
        return empty(404)
    family = matches[0].family.name
    agent = user_agent(request)
    ua = parse_user_agent(services.catalog, agent)
    path_mac = next((m.mac for m in matches if m.mac), None)
    ua_mac = ua.mac if ua else None

    guard = services.guard
    phone = plausible_phone(matches, ua, path_mac) is not None
    claim = Claim(
        token=token,
        path_mac=path_mac,
        ua_mac=ua_mac,
        phone=phone,
        want=(file_name, services.stored.fingerprint),
        mac_only=mac_only,
    )
    refusal: Refusal | None = None
    try:
        found = await guard.identify(request, services.read_sessions, claim)
        device = found.device
        spec = spec_for(services.catalog, device.model_id, matches) if device else None
        if device is not None and spec is not None:
            # The device's family, not the first one the name fits (`<mac>.cfg`).
            family = services.catalog.family_of(device.model_id).name
        if device is None:
            if token is None:
                await _maybe_unknown(services, request, matches, ua, path_mac, agent, file_name)
            refusal = found.refusal
        else:
            assert found.evidence is not None
            decision = services.authorize(found.evidence) if spec else Decision.REFUSE
            refusal = guard.refusal(request, found, decision, spec)
            if refusal is not None:
                _log_refusal(services, request, found.evidence, file_name)
        if device is not None and spec is not None and refusal is None:
            # Orders: a shipped phone's first fetch completes its delivery (a replacement
            # takes over its lines) before anything is rendered for it.
            if device.awaiting_delivery and await at_first_fetch(services.sessions, device.id):
                device = await services.guard.rows.by_mac(device.mac) or device
            key = (device.id, device.config_revision, file_name)
            cached = services.cache.get(key)
            device_id, revision = device.id, device.config_revision
            if cached is None and device.kept is not None:
                cached = _opened(
                    services, device_id, revision, file_name, spec.content_type, device.kept
                )
            elif cached is None and not device.with_file:
                cached = await _kept(services, device_id, revision, file_name, spec.content_type)
            if cached is None:
                # Slots and lines only now; the row read again with them may carry a newer
                # revision (another transaction committed meanwhile): the key follows it.
                found_rows = await services.guard.rows.render_rows(device_id)
                if found_rows is None:  # deleted meanwhile
                    return empty(404)
                data = found_rows.device_data(services.cipher, settings)
                cached = render_file(services.renderer, settings, data, spec)
                revision = data.revision
                services.cache.put((device_id, revision, file_name), cached)
            rendered = cached
    except DB_ERRORS as exc:
        log.warning("phone fetch: database unavailable: %s", describe(exc))
        return unavailable(family)
    except (RenderError, SecretKeyError) as exc:
        log.error("phone fetch: cannot render %s: %s", file_name, exc)
        return unavailable(family)

    # Refusals and their bookkeeping (misses, bans) once the read transaction is over.
    if refusal is not None:
        reply = await guard.refuse(request, refusal)
    else:
        proof = spec is not None and spec.lines
        reply = await guard.accept(request, found, bind=later is None) or await _send(
            services, request, device_id, agent, ua, file_name, revision, proof, rendered, later
        )
        if later is not None and reply.status == 200:
            later.append(partial(guard.bind, found))
        # Served (no refusal): the device, its file and its evidence are known here.
        assert device is not None and spec is not None and found.evidence is not None
        if (
            found.replay_from is not None
            and services.answers.size > 0
            and reply.status in (200, 304)
            and not device.awaiting_delivery  # the delivery just completed moved things
            and not (spec.secret and settings.http == "public")  # depends on the transport
        ):
            reply.replay = Replay(
                found.replay_from,
                device.account_id,
                found.evidence.policy,
                device_id,
                agent,
                _firmware(ua),
                file_name,
                revision,
                spec.lines,
            )
    reply.family = family
    return reply


async def _kept(
    services: Services, device_id: int, revision: int, file_name: str, content_type: str
) -> Rendered | None:
    """The file rendered ahead at this very revision (render.stored), now in the render cache;
    None when it was not, or cannot be trusted (then it is rendered here)."""
    stored = services.stored
    found = await services.guard.rows.stored_file(
        device_id, file_name, revision, stored.fingerprint
    )
    if found is None:
        return None
    return _opened(services, device_id, revision, file_name, content_type, found)


def _opened(
    services: Services,
    device_id: int,
    revision: int,
    file_name: str,
    content_type: str,
    found: tuple[bytes, str],
) -> Rendered | None:
    """The file kept at `revision`, opened and put in the render cache; None if it cannot be
    trusted (then it is rendered here)."""
    sealed, etag = found
    body = services.stored.sealer.open(sealed, device_id, file_name, revision)
    if body is None:
        return None
    rendered = Rendered(body=body, etag=etag, content_type=content_type)
    services.cache.put((device_id, revision, file_name), rendered)
    return rendered


def _firmware(ua: UserAgentInfo | None) -> str | None:
    return ua.firmware[:64] if ua and ua.firmware else None


async def fetch_again(services: Services, request: PhoneRequest, kept: Kept) -> Reply | None:
    """A kept answer (phones.answers) if it is still what `fetch` would say, its sighting
    recorded; None when `fetch` must answer."""
    replay = kept.reply.replay
    assert replay is not None
    try:
        generation = await services.guard.rows.generation()
    except DatabaseUnavailable:
        return None  # the whole path answers what it answers then (a 503)
    if not _still_true(services, replay, generation):
        return None
    facts = _replayed_sighting(services, request, replay)
    if facts is not None:
        await services.sightings.add(facts)
    return kept.reply


def given_again(services: Services, request: PhoneRequest, kept: Kept) -> Reply | None:
    """`fetch_again` without waiting for anything, when the device rows' generation is read
    so (SQLite) and sightings are batched; None when it cannot answer so (PostgreSQL,
    sightings written at once, or the answer no longer holds)."""
    rows = services.guard.rows
    if services.sightings.interval <= 0 or not rows.immediate:
        return None
    try:
        generation = rows.generation_now()
    except DatabaseUnavailable:
        return None
    return given_again_at(services, request, kept, generation)


def given_again_at(
    services: Services, request: PhoneRequest, kept: Kept, generation: int | None
) -> Reply | None:
    """The kept answer if it still holds at `generation` (the device rows' generation, read
    after the request arrived), its sighting added to the batch; None when `fetch` must
    answer. Only when sightings are batched."""
    replay = kept.reply.replay
    assert replay is not None
    if not _still_true(services, replay, generation):
        return None
    facts = _replayed_sighting(services, request, replay)
    if facts is not None:
        services.sightings.add_nowait(facts)
    return kept.reply


def _replayed_sighting(
    services: Services, request: PhoneRequest, replay: Replay
) -> SightingFacts | None:
    return _sighting(
        services, request, replay.device_id, replay.user_agent, replay.firmware,
        replay.file_name, replay.revision, replay.proof,
    )  # fmt: skip


def _still_true(services: Services, replay: Replay, generation: int | None) -> bool:
    """Nothing the answer was decided from has changed since: the device rows' generation,
    read after the request arrived, is still the one it was decided at, and so is the policy."""
    if generation is None or generation != replay.generation:
        return False
    policy = services.guard.policies.policy_for(replay.account_id)
    return policy is replay.policy or policy == replay.policy


async def _send(
    services: Services,
    request: PhoneRequest,
    device_id: int,
    agent: str,
    ua: UserAgentInfo | None,
    file_name: str,
    revision: int,
    proof: bool,
    rendered: Rendered,
    later: Later | None = None,
) -> Reply:
    firmware = _firmware(ua)
    if later is not None:
        # Decided then too: `_sighting` remembers what it lets through.
        later.append(
            partial(
                _seen, services, request, device_id, agent, firmware, file_name, revision, proof
            )
        )
    else:
        await _seen(services, request, device_id, agent, firmware, file_name, revision, proof)
    headers = [("ETag", rendered.etag), ("Cache-Control", "no-store")]
    if rendered.etag in _etags(request.headers.get("If-None-Match", "")):
        return Reply(304, headers)
    return Reply(200, headers, rendered.body, rendered.content_type)


async def _maybe_unknown(
    services: Services,
    request: PhoneRequest,
    matches: list[FileMatch],
    ua: UserAgentInfo | None,
    path_mac: str | None,
    agent: str,
    file_name: str,
) -> None:
    """A phone asking without a token: if it is not registered, keep it for an operator."""
    plausible = plausible_phone(matches, ua, path_mac)
    if plausible is None:
        return
    mac, family, ua_model = plausible
    if await services.guard.rows.by_mac(mac) is not None:
        return
    facts = UnknownFacts(
        mac=mac,
        family=family,
        ua_model=ua_model,
        seen_at=utcnow(),
        ip=_client_ip(services, request),
        user_agent=agent,
        file_name=file_name,
    )
    # The answer is 404 either way; bookkeeping must not change it.
    await _write_behind(services, "unknown device", lambda s: record_unknown(s, facts))


def _log_refusal(
    services: Services, request: PhoneRequest, evidence: Evidence, file_name: str
) -> None:
    stated = {mac for mac in (evidence.path_mac, evidence.ua_mac) if mac}
    if stated - {evidence.device_mac}:
        # A phone (or someone) claiming another MAC than the device it reached: worth a look.
        log.warning(
            "phone fetch refused: %s asked %s as %s; MAC in path %s, in User-Agent %s",
            _client_ip(services, request),
            file_name,
            evidence.device_mac,
            evidence.path_mac or "-",
            evidence.ua_mac or "-",
        )


def _client_ip(services: Services, request: PhoneRequest) -> str:
    return client_ip(
        peer_address(request),
        request.headers.get("X-Forwarded-For"),
        services.settings.trusted_proxies,
    )


async def _seen(
    services: Services,
    request: PhoneRequest,
    device_id: int,
    agent: str,
    firmware: str | None,
    file_name: str,
    revision: int,
    proof: bool,
) -> None:
    facts = _sighting(services, request, device_id, agent, firmware, file_name, revision, proof)
    if facts is not None:
        # Batched (or written now when SIGHTING_FLUSH_MS is 0); a failure is logged, never the
        # phone's problem: the file is already rendered.
        await services.sightings.add(facts)


def _sighting(
    services: Services,
    request: PhoneRequest,
    device_id: int,
    agent: str,
    firmware: str | None,
    file_name: str,
    revision: int,
    proof: bool,
) -> SightingFacts | None:
    """What this fetch tells worth writing, or None: what was written a moment ago, again."""
    ip = _client_ip(services, request)
    buffer = services.sightings
    told, now = (revision, ip, agent, firmware), time.monotonic()
    history = buffer.history.keep(device_id, file_name, told, now)
    touch = buffer.refresh.keep(device_id, "", told, now)
    # A revision proven once is proven (`refresh` keeps it per device under a name no file has).
    proof = proof and buffer.refresh.keep(device_id, "/proof", (revision,), now)
    if not (history or touch or proof):
        return None
    return SightingFacts(
        device_id, utcnow(), ip, agent, firmware, file_name, revision, history, touch, proof
    )


async def _write_behind(
    services: Services, what: str, write: Callable[[AsyncSession], Awaitable[None]]
) -> None:
    """Bookkeeping of the fetch path, in its own short transaction; a failure is logged only."""
    try:
        async with services.sessions() as session, session.begin():
            await write(session)
    except DB_ERRORS as exc:
        log.warning("phone fetch: %s not recorded: %s", what, type(exc).__name__)


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}
