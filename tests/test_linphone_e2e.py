"""A real Linphone provisioned by the server registers every provisioned line to a real kamailio.

The server runs in this test's event loop on a loopback port; the blocking peer helpers run in
threads so the loop keeps serving Linphone's request."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from provisioning import accounts
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, Sighting
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.peers.kamailio import Kamailio
from tests.peers.plugin import LinphoneFactory

USERS = {"alice": "alice-pw-1", "alice-office": "alice-pw-2"}
MAC = "020000c0ffee"
USER_AGENT = "Linphone/5.1.65 (e2e test)"


async def test_linphone_registers_every_provisioned_line(
    aiohttp_client,  # type: ignore[no-untyped-def]
    settings: Settings,
    sessions: SessionFactory,
    catalog: Catalog,
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
) -> None:
    cipher = Cipher(settings.secret_key)
    registrar = f"127.0.0.1:{kamailio.sip_port}"
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Alice Martin")
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "linphone-softphone", account.id
        )
        for n, (user, password) in enumerate(USERS.items(), start=1):
            line = await accounts.create_line(
                session, settings, cipher, account.id, f"+3312345670{n}",
                username=user, password=password, registrar=registrar,
                display_name=f'Alice "{n}" <test>',
            )  # fmt: skip
            await inventory.assign_line(session, MAC, line.id)
    for user, password in USERS.items():
        await asyncio.to_thread(kamailio.add_user, user, password)

    client = await aiohttp_client(create_app(settings))
    url = str(client.make_url(f"/{token}/linphone.xml"))
    phone = await asyncio.to_thread(linphone_factory, url, USER_AGENT)
    await asyncio.to_thread(phone.wait_registrations, len(USERS), 20)

    for user in USERS:
        contacts = await asyncio.to_thread(kamailio.registered_contacts, user)
        assert contacts, f"kamailio has no registration for {user}"
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == MAC))
        assert device is not None
        assert device.state == "active"
        assert device.last_user_agent == USER_AGENT
        assert device.last_firmware == "5.1.65"
        assert device.last_revision_served == device.config_revision
        files = (await session.scalars(select(Sighting.file_name))).all()
    assert set(files) == {"linphone.xml"}


async def test_linphone_with_a_wrong_token_gets_nothing(
    aiohttp_client,  # type: ignore[no-untyped-def]
    settings: Settings,
    sessions: SessionFactory,
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
) -> None:
    client = await aiohttp_client(create_app(settings))
    url = str(client.make_url(f"/{'B' * 32}/linphone.xml"))
    phone = await asyncio.to_thread(linphone_factory, url, USER_AGENT)
    # Linphone got the empty 404 (its log shows the answer), so it has no account to register.
    await asyncio.to_thread(phone.wait_log, r"HTTP/1.1 404 Not Found", 15)
    await asyncio.sleep(1)
    assert phone.registered_identities() == []
    assert phone.account_states() == {}
    assert await asyncio.to_thread(kamailio.registered_users) == []


async def test_linphone_answers_the_notify_but_only_a_fetch_applies_the_change(
    aiohttp_client,  # type: ignore[no-untyped-def]
    settings: Settings,
    sessions: SessionFactory,
    catalog: Catalog,
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
) -> None:
    from dataclasses import replace

    from provisioning.db.models import Push
    from provisioning.push import associations

    push_settings = replace(settings, push_enabled=True, push_t1_ms=100)
    cipher = Cipher(settings.secret_key)
    registrar = f"127.0.0.1:{kamailio.sip_port}"
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Alice Martin")
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "linphone-softphone", account.id
        )
        line_ids = []
        for user, password in USERS.items():
            line = await accounts.create_line(
                session, settings, cipher, account.id, f"+331234567{len(line_ids)}",
                username=user, password=password, registrar=registrar,
            )  # fmt: skip
            line_ids.append(line.id)
        await inventory.assign_line(session, MAC, line_ids[0])
    for user, password in USERS.items():
        await asyncio.to_thread(kamailio.add_user, user, password)
    client = await aiohttp_client(create_app(push_settings))
    url = str(client.make_url(f"/{token}/linphone.xml"))
    phone = await asyncio.to_thread(linphone_factory, url, USER_AGENT)
    await asyncio.to_thread(phone.wait_registrations, 1, 20)

    async with sessions() as session, session.begin():
        association = await associations.associate(session, line_ids[1], MAC)
    for _ in range(100):
        async with sessions() as session:
            push = await session.get(Push, association.push_id)
            assert push is not None
            if push.last_result is not None:
                break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    async with sessions() as session:
        push = await session.get(Push, association.push_id)
        assert push is not None
        # Linphone said 200 through kamailio, and did not fetch: not applied.
        assert (push.last_result, push.state, push.applied_at) == ("200", "notified", None)
    # Its next start is its only re-check: that fetch is the proof.
    again = await asyncio.to_thread(linphone_factory, url, USER_AGENT)
    await asyncio.to_thread(again.wait_registrations, 2, 20)
    async with sessions() as session:
        push = await session.get(Push, association.push_id)
        assert push is not None and push.state == "applied"
