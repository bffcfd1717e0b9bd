"""Pushes end to end: a change becomes a push, the NOTIFY reaches the phone (through a real
kamailio, or directly to a real SIPp), the phone re-fetches, and the fetch is the proof."""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from provisioning import accounts, tokens
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Push
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.lab.phone import EmulatedPhone
from provisioning.push.changes import devices_changed, mark_overdue
from provisioning.push.worker import claim
from provisioning.settings import Settings
from provisioning.sip import digest
from provisioning.sip.message import parse
from provisioning.state import Services
from tests.peers.kamailio import Kamailio
from tests.peers.require import free_port, require_binary

MAC = "001565123456"


def test_digest_matches_rfc_2617_example() -> None:
    challenge = digest.parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = digest.authorization(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle Of Life", cnonce="0a4f113b",
    )  # fmt: skip
    assert header is not None
    assert 'response="6629fae49393a05397450978507c4ef1"' in header


def test_sip_parse_compact_headers() -> None:
    message = parse(
        b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\ni: abc\r\n"
        b"CSeq: 2 NOTIFY\r\nl: 0\r\n\r\n"
    )
    assert message.status == 200 and message.method == "NOTIFY"
    assert (
        message.get("Call-ID") == "abc"
        and message.get(
            "via",
        )
        is not None
    )


async def _world(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    registrar: str,
    transport: str = "udp",
) -> dict[str, Any]:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Alice")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001",
            username="alice", password="pw-alice", registrar=registrar, transport=transport,
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002",
            username="alice2", password="pw-alice2", registrar=registrar,
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "yealink-t46u", account.id
        )
        await inventory.assign_line(session, MAC, first.id)
        _, api_token = await tokens.create_token(session, "customer", account_id=account.id)
    return {"token": token, "first": first.id, "second": second.id, "api": api_token}


async def _wait_status(
    client: Any, api: str, association_id: int, wanted: str, limit: float
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        resp = await client.get(
            f"/api/v1/associations/{association_id}", headers={"Authorization": f"Bearer {api}"}
        )
        view: dict[str, Any] = await resp.json()
        if view["status"] == wanted or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)


async def _latest_push_with_result(sessions: SessionFactory) -> Push | None:
    """The newest push once the worker has recorded what the phone answered."""
    push = None
    for _ in range(100):
        async with sessions() as session:
            push = (await session.scalars(select(Push).order_by(Push.id.desc()))).first()
        if push is not None and push.last_result is not None:
            break
        await asyncio.sleep(0.05)
    return push


@pytest.fixture
def push_settings(settings: Settings) -> Settings:
    return replace(settings, push_enabled=True, push_t1_ms=100)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_association_is_applied_through_kamailio_in_seconds(
    aiohttp_client: Any, push_settings: Settings, sessions: SessionFactory, catalog: Catalog,
    kamailio: Kamailio, transport: str,
) -> None:  # fmt: skip
    """The NOTIFY goes to kamailio over the first line's transport; kamailio relays it to the
    phone's registered contact."""
    world = await _world(
        sessions, push_settings, catalog, f"127.0.0.1:{kamailio.sip_port}", transport
    )
    for user, password in (("alice", "pw-alice"), ("alice2", "pw-alice2")):
        await asyncio.to_thread(kamailio.add_user, user, password)
    client = await aiohttp_client(create_app(push_settings))
    family = catalog.families["yealink"]
    said: list[str] = []
    phone = EmulatedPhone(
        str(client.make_url(f"/{world['token']}/")), MAC, family,
        family.models["yealink-t46u"], say=said.append,
    )  # fmt: skip
    await phone.start()
    try:
        assert [line.user for line in phone.lines] == ["alice"]
        assert await asyncio.to_thread(kamailio.registered_contacts, "alice")
        headers = {"Authorization": f"Bearer {world['api']}"}
        resp = await client.get(
            f"/api/v1/lines/{world['second']}/compatible-devices", headers=headers
        )
        candidates = (await resp.json())["items"]
        assert [c["mac"] for c in candidates] == [MAC]
        assert candidates[0]["same_network"] is True and candidates[0]["public_ip"] == "127.0.0.1"
        resp = await client.post(
            "/api/v1/associations", json={"line_id": world["second"], "mac": MAC}, headers=headers
        )
        assert resp.status == 202
        created = await resp.json()
        assert created["status"] == "pending" and created["slot"] == 2
        view = await _wait_status(client, world["api"], created["id"], "applied", 10)
        assert view["status"] == "applied", (view, said)
        assert view["last_result"] in (None, "200")
        assert view["seconds_to_apply"] < 3
        # `applied` is recorded when the server hands the file over; the phone parses it next.
        for _ in range(40):
            if len(phone.lines) == 2:
                break
            await asyncio.sleep(0.05)
        assert [line.user for line in phone.lines] == ["alice", "alice2"]
        assert any(s.startswith("NOTIFY Event: check-sync") for s in said)
        await asyncio.sleep(0.3)
        assert await asyncio.to_thread(kamailio.registered_contacts, "alice2")
        again = await client.get(
            f"/api/v1/lines/{world['second']}/compatible-devices", headers=headers
        )
        assert again.status == 409
    finally:
        await phone.stop()


async def test_a_silent_phone_gets_the_change_by_polling(
    aiohttp_client: Any, push_settings: Settings, sessions: SessionFactory, catalog: Catalog,
    kamailio: Kamailio,
) -> None:  # fmt: skip
    world = await _world(sessions, push_settings, catalog, f"127.0.0.1:{kamailio.sip_port}")
    await asyncio.to_thread(kamailio.add_user, "alice", "pw-alice")
    client = await aiohttp_client(create_app(push_settings))
    family = catalog.families["yealink"]
    phone = EmulatedPhone(
        str(client.make_url(f"/{world['token']}/")), MAC, family,
        family.models["yealink-t46u"], answer_notify=False, poll_seconds=1.0,
    )  # fmt: skip
    await phone.start()
    try:
        headers = {"Authorization": f"Bearer {world['api']}"}
        resp = await client.post(
            "/api/v1/associations", json={"line_id": world["second"], "mac": MAC}, headers=headers
        )
        created = await resp.json()
        view = await _wait_status(client, world["api"], created["id"], "applied", 10)
        assert view["status"] == "applied"
        assert view["notified_at"] is None  # the NOTIFY got no answer: polling applied it
        assert phone.stats.notifies >= 1
    finally:
        await phone.stop()


async def test_notify_on_the_wire_to_a_real_sipp_phone(
    aiohttp_client: Any, push_settings: Settings, sessions: SessionFactory, catalog: Catalog,
) -> None:  # fmt: skip
    sipp = require_binary("sipp")
    port = free_port("udp")
    world = await _world(sessions, push_settings, catalog, "127.0.0.1:5099")
    direct = replace(push_settings, push_route="direct", push_direct_port=port)
    client = await aiohttp_client(create_app(direct))
    # The phone is known at the address it fetched from.
    assert (await client.get(f"/{world['token']}/{MAC}.cfg")).status == 200
    scenario = Path(__file__).parent / "peers" / "sipp_notify_uas.xml"
    proc = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
        "-timeout", "15", "-timeout_error", "-nostdin", "-trace_msg",
        "-message_file", str(Path(direct.firmware_dir) / "sipp.log"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    await asyncio.sleep(0.5)
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, MAC, world["second"])
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    wire = (Path(direct.firmware_dir) / "sipp.log").read_text(errors="replace")
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:] + wire[-2000:]
    assert f"NOTIFY sip:alice@127.0.0.1:{port} SIP/2.0" in wire
    assert "Event: check-sync;reboot=false" in wire
    push = await _latest_push_with_result(sessions)
    assert push is not None and push.last_result == "200" and push.state == "notified"


async def test_every_change_queues_a_push_and_a_fetch_applies_it(
    client: Any, sessions: SessionFactory, catalog: Catalog, settings: Settings
) -> None:
    world = await _world(sessions, settings, catalog, "sip.example.net")
    async with sessions() as session, session.begin():
        await accounts.set_line_password(
            session, Cipher(settings.secret_key), world["first"], "n3w"
        )
    async with sessions() as session:
        pushes = (await session.scalars(select(Push).order_by(Push.id))).all()
    # add_device queues nothing (no revision change); assign and password do.
    assert [(p.reason, p.state) for p in pushes] == [("assign", "pending"), ("password", "pending")]
    assert pushes[1].target_revision == pushes[0].target_revision + 1
    assert (pushes[0].deadline - pushes[0].created_at).total_seconds() == 300
    resp = await client.get(f"/{world['token']}/{MAC}.cfg")
    assert resp.status == 200
    async with sessions() as session:
        states = (await session.scalars(select(Push.state).order_by(Push.id))).all()
    assert list(states) == ["applied", "applied"]


async def test_overdue_and_durable_claims(
    sessions: SessionFactory, catalog: Catalog, settings: Settings, is_postgres: bool
) -> None:
    """Pushes are rows: a new worker (after a restart) claims them; two claimers never get the
    same push; past the deadline they are overdue."""
    from datetime import timedelta

    from provisioning.db.models import Device, utcnow

    world = await _world(sessions, settings, catalog, "sip.example.net")
    async with sessions() as session, session.begin():
        for _ in range(5):
            await devices_changed(session, Device.mac == MAC, "template")
    services = _services(settings, catalog)
    now = utcnow()
    if is_postgres:
        async with sessions() as first, first.begin(), sessions() as second, second.begin():
            a = await claim(first, services, now, 3)
            b = await claim(second, services, now, 10)
        assert len(a) == 3 and len(b) == 3  # 6 pushes: SKIP LOCKED split them
        assert not {j.push_id for j in a} & {j.push_id for j in b}
    else:
        async with sessions() as session, session.begin():
            a = await claim(session, services, now, 10)
        async with sessions() as session, session.begin():
            b = await claim(session, services, now, 10)
        assert len(a) == 6 and b == []  # claimed attempts move forward: not sent twice
    async with sessions() as session, session.begin():
        assert await mark_overdue(session, now + timedelta(minutes=6)) == 6
    del world


def _services(settings: Settings, catalog: Catalog) -> Services:
    from provisioning.render.cache import RenderCache
    from provisioning.render.environment import Renderer
    from provisioning.render.stored import StoredFiles

    return Services(
        settings=settings, engine=None, sessions=None, read_sessions=None,  # type: ignore[arg-type]
        catalog=catalog, renderer=Renderer(catalog), cipher=Cipher(settings.secret_key),
        cache=RenderCache(0), stored=StoredFiles.for_settings(settings), authorize=lambda _e: True,
        guard=None, sightings=None, load=None, answers=None,
    )  # fmt: skip


@pytest.mark.parametrize(("password", "expected"), [("pw-alice", "200"), ("wrong", "403")])
async def test_notify_answers_a_digest_challenge_with_the_line_credentials(
    aiohttp_client: Any, push_settings: Settings, sessions: SessionFactory, catalog: Catalog,
    password: str, expected: str,
) -> None:  # fmt: skip
    sipp = require_binary("sipp")
    port = free_port("udp")
    world = await _world(sessions, push_settings, catalog, "127.0.0.1:5099")
    if password != "pw-alice":
        async with sessions() as session, session.begin():
            await accounts.set_line_password(
                session, Cipher(push_settings.secret_key), world["first"], password
            )
    direct = replace(push_settings, push_route="direct", push_direct_port=port)
    client = await aiohttp_client(create_app(direct))
    assert (await client.get(f"/{world['token']}/{MAC}.cfg")).status == 200
    scenario = Path(__file__).parent / "peers" / "sipp_notify_auth_uas.xml"
    proc = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
        "-timeout", "15", "-nostdin",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    await asyncio.sleep(0.5)
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, MAC, world["second"])
    await asyncio.wait_for(proc.communicate(), 20)
    push = await _latest_push_with_result(sessions)
    assert push is not None and push.last_result == expected


@pytest.mark.parametrize("flush_ms", [0, 50], ids=["at-once", "batched"])
async def test_only_the_file_with_the_lines_proves_a_push_applied(
    aiohttp_client: Any, sessions: SessionFactory, catalog: Catalog, settings: Settings,
    flush_ms: int,
) -> None:  # fmt: skip
    """A Yealink fetches `<mac>.boot` (an include, no line), its common file, then `<mac>.cfg`
    (the accounts): a phone that got the boot file and then failed its MAC file has applied
    nothing, and the association must not say `applied`."""
    world = await _world(sessions, settings, catalog, "sip.example.net")
    client = await aiohttp_client(create_app(replace(settings, sighting_flush_ms=flush_ms)))
    ua = {"User-Agent": f"Yealink SIP-T46U 108.86.0.20 {MAC}"}

    async def states() -> list[str]:
        await asyncio.sleep(0.2)  # a batch's interval, and then some
        async with sessions() as session:
            return list((await session.scalars(select(Push.state).order_by(Push.id))).all())

    for name in (f"{MAC}.boot", "y000000000108.cfg"):
        assert (await client.get(f"/{world['token']}/{name}", headers=ua)).status == 200
    assert await states() == ["pending"]
    assert (await client.get(f"/{world['token']}/{MAC}.cfg", headers=ua)).status == 200
    assert await states() == ["applied"]


def test_every_family_declares_the_file_with_the_lines(catalog: Catalog) -> None:
    for family in catalog.families.values():
        assert any(spec.lines for spec in family.files), family.name


async def test_a_phone_on_its_way_back_is_never_a_candidate(
    client: Any, sessions: SessionFactory, catalog: Catalog, settings: Settings
) -> None:
    """Once its return is asked for, a phone is offered for no line, and an association to it
    is refused (the customer would be told to wait for a phone that is leaving)."""
    from provisioning.orders import returns

    world = await _world(sessions, settings, catalog, "sip.example.net")
    headers = {"Authorization": f"Bearer {world['api']}"}
    url = f"/api/v1/lines/{world['second']}/compatible-devices"
    assert [c["mac"] for c in (await (await client.get(url, headers=headers)).json())["items"]] == [
        MAC
    ]
    async with sessions() as session, session.begin():
        await returns.request_return(session, MAC)
    resp = await client.get(url, headers=headers)
    assert resp.status == 200 and (await resp.json())["items"] == []
    resp = await client.post(
        "/api/v1/associations", json={"line_id": world["second"], "mac": MAC}, headers=headers
    )
    assert resp.status == 409 and (await resp.json())["type"].endswith("device-leaving")
