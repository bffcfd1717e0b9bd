"""Answers the phone lane gives again to the same request head (phones.answers), on real
sockets: the same bytes as the whole fetch path while nothing changed; the whole path's answer
as soon as anything it weighs changed, whoever changed it; never an answer that proved more than
the head (a digest answer, a binding)."""

from __future__ import annotations

import re
from dataclasses import replace

import aiohttp
import pytest
from sqlalchemy import text

from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import AccountPolicy
from provisioning.devices.catalog import Catalog
from provisioning.overrides import set_override
from provisioning.phones.answers import Answers
from provisioning.phones.request import Reply
from provisioning.security.credentials import rotate_credential
from provisioning.settings import Settings
from provisioning.state import SERVICES
from tests.conftest import YEALINK_MAC, YEALINK_UA, World
from tests.security_kit import digest_header, parse_challenge
from tests.test_lane import VARYING, answer, exchange, get, lane_settings, serving, split_responses

__all__ = ["lane_settings"]  # the fixture, imported for pytest

UA = f"User-Agent: {YEALINK_UA}"


def stable(found: list[tuple[int, dict[str, str], bytes]]) -> list[object]:
    """An answer without what differs each time (date, request id)."""
    return [
        (status, {k: v for k, v in headers.items() if k not in VARYING}, body)
        for status, headers, body in found
    ]


def policy(account_id: int, proofs: str = "token", binding: str = "off") -> AccountPolicy:
    return AccountPolicy(
        account_id=account_id, proofs=proofs, binding=binding, first_contact_days=None
    )


@pytest.mark.parametrize("flush_ms", [0, 500])
async def test_the_same_head_gets_the_same_answer_again(
    lane_settings: Settings, world: World, flush_ms: int
) -> None:
    """flush 0: each answer given again waits for its sighting (a task); 500: given within
    the generation's read (SQLite) or its future's callback (PostgreSQL)."""
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    async with serving(replace(lane_settings, sighting_flush_ms=flush_ms)) as (url, app):
        answers = app[SERVICES].answers
        etag = (await answer(url, get(path, UA)))[0][1]["etag"]
        # The first sighting written now (batched, it would be at a moment of its own): it
        # says the device was seen, which moves the generation, once.
        await app[SERVICES].sightings.flush()
        heads = [
            get(path, UA),
            get(path, UA, method="HEAD"),
            get(path, UA, f"If-None-Match: {etag}"),
            get(path, UA, "Connection: close"),
            get(path, UA, version="1.0"),
        ]
        first = [await answer(url, head) for head in heads]
        again = [await answer(url, head) for head in heads]
        # Pipelined on one connection, each answered in turn.
        pipelined = split_responses(await exchange(url, get(path, UA) * 3, answers=3))
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
            scraped = await resp.text()
    given = re.search(r"^provisioning_phone_answers_given_again_total (\S+)$", scraped, re.M)
    assert given is not None and float(given[1]) == answers.given
    assert [found[0][0] for found in first] == [200, 200, 304, 200, 200]
    assert [stable(found) for found in again] == [stable(found) for found in first]
    assert stable(pipelined) == stable(first[0]) * 3
    ids = {found[0][1]["x-request-id"] for found in [*first, *again, [pipelined[0]]]}
    assert len(ids) == 11  # a request id of its own each time
    assert again[3][0][1]["connection"] == "close"
    assert again[4][0][1][":version"] == "HTTP/1.0"
    assert again[1][0][2] == b"" and int(again[1][0][1]["content-length"]) > 0
    # Five heads kept; the nine requests repeating a head before them given again, but for
    # the first: its answer was kept before the first sighting moved the generation.
    assert len(answers) == 5
    assert (answers.given, answers.stale) == (8, 1)


@pytest.mark.parametrize("flush_ms", [0, 500])
async def test_a_change_is_answered_at_the_next_fetch(
    flush_ms: int,
    lane_settings: Settings,
    world: World,
    sessions: SessionFactory,
    catalog: Catalog,
    cipher: Cipher,
) -> None:
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    head = get(path, UA)
    async with serving(replace(lane_settings, sighting_flush_ms=flush_ms)) as (url, app):
        services = app[SERVICES]
        first = await answer(url, head)
        assert first == await answer(url, head) or stable(first) == stable(await answer(url, head))
        # The first sighting written (it says the device was seen: the generation moves), so
        # that no batch moves it below at a moment of its own.
        await services.sightings.flush()
        # A change committed through another connection: a new revision, a new file.
        async with sessions() as session, session.begin():
            await set_override(
                session, catalog, "device", YEALINK_MAC, "local_time.ntp_server1", "ntp.new.test"
            )
        changed = await answer(url, head)
        assert changed[0][0] == 200 and b"ntp.new.test" in changed[0][2]
        assert changed[0][1]["etag"] != first[0][1]["etag"]
        assert stable(await answer(url, head)) == stable(changed)

        # The account's policy now wants a digest answer too: a challenge, not the file.
        services.guard.policies.put(world.account_id, policy(world.account_id, "token+digest"))
        assert (await answer(url, head))[0][0] == 401
        services.guard.policies.put(world.account_id, None)
        assert stable(await answer(url, head)) == stable(changed)

        # By hand, bypassing every domain function: still seen at the next fetch.
        async with sessions() as session, session.begin():
            await session.execute(
                text("UPDATE devices SET config_revision = config_revision + 1 WHERE mac = :m"),
                {"m": YEALINK_MAC},
            )
        stale = services.answers.stale
        # The same bytes (a revision alone changes nothing in the file), but worked out again.
        assert stable(await answer(url, head)) == stable(changed)
        assert services.answers.stale == stale + 1

        # The URL token rotated with no overlap: the old one opens nothing any more.
        async with sessions() as session, session.begin():
            await rotate_credential(session, cipher, YEALINK_MAC, "token", overlap=0)
        gone = await answer(url, head)
        assert (gone[0][0], gone[0][2]) == (404, b"")
        assert (await answer(url, head))[0][0] == 404


async def test_sightings_of_answers_given_again_are_recorded(
    lane_settings: Settings, world: World, sessions: SessionFactory
) -> None:
    settings = replace(
        lane_settings,
        sighting_flush_ms=0,
        sighting_history_seconds=0,
        sighting_refresh_seconds=0,
    )
    head = get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", UA)
    async with serving(settings) as (url, app):
        for _ in range(3):
            assert (await answer(url, head))[0][0] == 200
        answers = app[SERVICES].answers
    # The first sighting (written at once here) made the device seen, which is in its row: the
    # second fetch went the whole way, the third was given the answer again.
    assert (answers.stale, answers.given) == (1, 1)
    async with sessions() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM sightings s JOIN devices d ON d.id = s.device_id"
                " WHERE d.mac = :m"
            ),
            {"m": YEALINK_MAC},
        )
        seen = await session.scalar(
            text("SELECT last_user_agent FROM devices WHERE mac = :m"), {"m": YEALINK_MAC}
        )
    assert count == 3
    assert seen == YEALINK_UA


async def test_answers_that_proved_more_than_the_head_are_not_kept(
    lane_settings: Settings, world: World, sessions: SessionFactory, cipher: Cipher
) -> None:
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    async with serving(lane_settings) as (url, app):
        services = app[SERVICES]
        # Refusals: answered the whole way each time.
        for head in (get(f"/{'A' * 32}/{YEALINK_MAC}.cfg", UA), get(f"/{YEALINK_MAC}.cfg", UA)):
            assert [(await answer(url, head))[0][0] for _ in range(2)] == [404, 404]
        # Bound to where it first fetched from: the binding is weighed every time.
        services.guard.policies.put(world.account_id, policy(world.account_id, binding="address"))
        assert [(await answer(url, get(path, UA)))[0][0] for _ in range(2)] == [200, 200]
        assert (services.answers.given, len(services.answers)) == (0, 0)

    # A digest answer: its nonce count is spent once; the same bytes again are a replay.
    async with sessions() as session, session.begin():
        await rotate_credential(session, cipher, YEALINK_MAC, "digest", overlap=0)
    digest = replace(lane_settings, digest=True, auth_proofs="any")
    file = f"/{YEALINK_MAC}.cfg"
    async with serving(digest) as (url, app):
        challenge = await answer(url, get(file, UA))
        assert challenge[0][0] == 401
        fields = parse_challenge(challenge[0][1]["www-authenticate"])
        config = (await answer(url, get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", UA)))[0][2]
        password = next(
            line.split(" = ", 1)[1]
            for line in config.decode().splitlines()
            if line.startswith("static.auto_provision.server.password = ")
        )
        authorization = digest_header(
            username=YEALINK_MAC,
            password=password,
            realm=fields["realm"],
            nonce=fields["nonce"],
            uri=file,
        )
        head = get(file, UA, f"Authorization: {authorization}")
        assert (await answer(url, head))[0][0] == 200
        replayed = await answer(url, head)
        assert replayed[0][0] == 401 and replayed[0][2] == b""
        # The token fetch above was kept; the digest one never was.
        assert len(app[SERVICES].answers) <= 1


def test_answers_are_bounded() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    from provisioning.phones.answers import MAX_HEAD, Kept
    from provisioning.phones.auth import Policy
    from provisioning.phones.request import Replay

    reply = Reply(200, replay=Replay(1, None, Policy(), 1, "ua", None, "f.cfg", 1, True))
    headers = CIMultiDictProxy(CIMultiDict[str]())
    answers = Answers(2)
    for n in range(3):
        answers.put(b"head %d" % n, Kept("GET", "/f.cfg", headers, True, "1.1", "f", None, reply))
    assert len(answers) == 2 and answers.get(b"head 0") is None and answers.get(b"head 2")
    answers.put(b"x" * (MAX_HEAD + 1), Kept("GET", "/", headers, True, "1.1", "f", None, reply))
    assert answers.get(b"x" * (MAX_HEAD + 1)) is None
    unkept = Reply(200)  # no replay: nothing to keep
    answers.put(b"other", Kept("GET", "/", headers, True, "1.1", "f", None, unkept))
    assert answers.get(b"other") is None
    assert len(Answers(0)) == 0


async def test_bans_and_shedding_come_first_and_count_once(
    lane_settings: Settings, world: World
) -> None:
    from datetime import UTC, datetime, timedelta

    from provisioning.security.sources import source_of

    head = get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", UA)
    async with serving(lane_settings) as (url, app):
        services = app[SERVICES]
        for _ in range(3):  # kept, and given again at least once (the first sighting aside)
            assert (await answer(url, head))[0][0] == 200
        services.load.inflight = services.load.max_inflight
        shed = await answer(url, head)
        services.load.inflight = 0
        source = source_of("127.0.0.1")
        assert source is not None
        services.guard.bans.add(source.address, datetime.now(UTC) + timedelta(hours=1))
        banned = await answer(url, head)
        services.guard.bans.remove(source.address)
        after = await answer(url, head)
    assert (shed[0][0], shed[0][1]["retry-after"], banned[0][0]) == (503, "10", 403)
    assert after[0][0] == 200
    assert services.load.shed == 1
    assert services.guard.counts["banned_requests", ""] == 1


async def test_behind_a_proxy_that_gives_each_request_an_id(
    lane_settings: Settings, world: World
) -> None:
    """deploy/nginx sets a new X-Request-Id on every request: the rest of the head is the
    phone's own, so its answer is given again, each with the id its request came with."""
    import netaddr

    settings = replace(lane_settings, trusted_proxies=netaddr.IPSet(["127.0.0.1/32"]))
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    ids = [f"nginx-{n:032x}" for n in range(4)]
    async with serving(settings) as (url, app):
        found = [
            await answer(url, get(path, UA, f"X-Request-Id: {rid}", "X-Forwarded-For: 192.0.2.7"))
            for rid in ids
        ]
        answers = app[SERVICES].answers
    assert [f[0][1]["x-request-id"] for f in found] == ids
    assert all(stable(f) == stable(found[0]) for f in found)
    # Kept once; given again to the others (one at most the whole way: the first sighting).
    assert len(answers) == 1 and answers.given + answers.stale == 3 and answers.given >= 2


@pytest.mark.parametrize("flush_ms", [0, 500])
async def test_a_database_that_stops_answering_gives_no_kept_answer(
    lane_settings: Settings, world: World, flush_ms: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a kept answer still holds cannot be told without the database: the whole path
    answers then, 503 with Retry-After, and the kept answer is given again once it is back.
    (The driver's reads fail here on purpose; test_lookup.py fails a real connection.)"""
    from provisioning.db.errors import DatabaseUnavailable

    head = get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", UA)
    async with serving(replace(lane_settings, sighting_flush_ms=flush_ms)) as (url, app):
        services = app[SERVICES]
        first = await answer(url, head)
        await services.sightings.flush()  # the first sighting moved the generation: now still
        assert stable(await answer(url, head)) == stable(first)
        rows = services.guard.rows
        given, stale = services.answers.given, services.answers.stale

        # What each read raises when the database is gone: the driver's error for the
        # number read alone (PostgreSQL), DatabaseUnavailable from the lookups.
        def down(*_args: object) -> None:
            raise DatabaseUnavailable("ConnectionRefusedError")

        async def refused(*_args: object) -> None:
            raise ConnectionRefusedError

        async def down_later(*_args: object) -> None:
            down()

        with monkeypatch.context() as patched:
            patched.setattr(rows, "generation_now" if rows.immediate else "_read_number",
                            down if rows.immediate else refused)  # fmt: skip
            patched.setattr(rows, "by_token_with_file", down_later)
            unavailable = await answer(url, head)
        assert (unavailable[0][0], unavailable[0][1]["retry-after"]) == (503, "30")
        assert services.answers.stale == stale + 1
        assert stable(await answer(url, head)) == stable(first)  # worked out again, then kept
        assert stable(await answer(url, head)) == stable(first)
        assert services.answers.given == given + 1
