"""Phones that ask without being registered are kept for operators; scanners are not."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.devices.unknown import list_unknown
from tests.conftest import YEALINK_UA, World

NEW_UA = "Yealink SIP-T54W 96.86.0.45 24:9a:d8:01:02:03"


async def unknown_macs(sessions: SessionFactory) -> dict[str, int]:
    async with sessions() as session:
        return {u.mac: u.requests for u in await list_unknown(session)}


async def test_new_phone_is_recorded_and_claimable(
    client: TestClient, world: World, sessions: SessionFactory, catalog: Catalog, cipher: Cipher
) -> None:
    for name in ("249ad8010203.boot", "249ad8010203.cfg"):
        resp = await client.get(f"/{name}", headers={"User-Agent": NEW_UA})
        assert resp.status == 404 and await resp.read() == b""
    async with sessions() as session:
        (unknown,) = await list_unknown(session)
    assert (unknown.mac, unknown.family, unknown.ua_model) == ("249ad8010203", "yealink", "T54W")
    assert (unknown.requests, unknown.last_file, unknown.last_ip) == (
        2,
        "249ad8010203.cfg",
        "127.0.0.1",
    )
    async with sessions() as session, session.begin():
        await inventory.add_device(
            session, catalog, cipher, "249ad8010203", "yealink-t54w", world.account_id
        )
    assert await unknown_macs(sessions) == {}


async def test_scanners_and_registered_phones_are_not_recorded(
    client: TestClient, world: World, sessions: SessionFactory
) -> None:
    await client.get("/249ad8010203.cfg")  # no User-Agent
    await client.get("/249ad8010203.cfg", headers={"User-Agent": "curl/8"})
    await client.get(  # MACs disagree
        "/249ad8010299.cfg", headers={"User-Agent": NEW_UA}
    )
    await client.get("/linphone.xml", headers={"User-Agent": NEW_UA})  # not a Yealink file
    await client.get("/0015654aa937.cfg", headers={"User-Agent": YEALINK_UA})  # registered
    await client.get(f"/{'A' * 32}/249ad8010203.cfg", headers={"User-Agent": NEW_UA})  # bad token
    assert await unknown_macs(sessions) == {}
