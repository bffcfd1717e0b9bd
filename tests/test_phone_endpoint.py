"""The phone endpoint through the real app factory: what phones get, and what everyone else
doesn't."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, Sighting
from provisioning.devices import inventory
from tests.conftest import YEALINK_UA, World

pytestmark = pytest.mark.usefixtures("world")


async def get(client: TestClient, path: str, **headers: str):  # type: ignore[no-untyped-def]
    return await client.get(path, headers=headers)


async def test_yealink_mac_file_has_its_lines_and_disables_the_rest(
    client: TestClient, world: World
) -> None:
    resp = await get(
        client, f"/{world.yealink_token}/0015654aa937.cfg", **{"User-Agent": YEALINK_UA}
    )
    assert resp.status == 200
    body = await resp.text()
    assert body.startswith("#!version:1.0.0.1\n")
    assert "account.1.enable = 1" in body
    assert "account.1.user_name = 33123456701" in body
    assert "account.1.password = secret-1" in body
    assert "account.2.password = secret-2" in body
    # T46U has 16 slots: 3..16 written disabled, with no credentials left behind.
    for slot in range(3, 17):
        assert f"account.{slot}.enable = 0" in body
        assert f"account.{slot}.password = %NULL%" in body
    assert "account.17." not in body
    assert "static.auto_provision.repeat.minutes = 5" in body
    assert (
        f"static.auto_provision.server.url = http://phones.test:8080/{world.yealink_token}/" in body
    )
    assert "lang.gui = French" in body
    assert resp.headers["ETag"].startswith('"')


async def test_yealink_boot_and_common_files(client: TestClient, world: World) -> None:
    boot = await get(client, f"/{world.yealink_token}/0015654aa937.boot")
    assert boot.status == 200
    assert 'include:config "0015654aa937.cfg"' in await boot.text()
    common = await get(client, f"/{world.yealink_token}/y000000000108.cfg")
    assert common.status == 200
    text = await common.text()
    assert "static.auto_provision.repeat.minutes = 5" in text
    assert "password" not in text and world.yealink_token not in text


async def test_mac_in_any_case_in_file_name(client: TestClient, world: World) -> None:
    resp = await get(client, f"/{world.yealink_token}/0015654AA937.cfg")
    assert resp.status == 200


async def test_token_in_query_string(client: TestClient, world: World) -> None:
    resp = await get(client, f"/0015654aa937.cfg?token={world.yealink_token}")
    assert resp.status == 200


async def test_etag_and_304(client: TestClient, world: World) -> None:
    path = f"/{world.yealink_token}/0015654aa937.cfg"
    first = await get(client, path)
    etag = first.headers["ETag"]
    again = await get(client, path, **{"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    other = await get(client, path, **{"If-None-Match": '"something-else"'})
    assert other.status == 200


async def test_change_gives_new_content_and_etag(
    client: TestClient, world: World, sessions: SessionFactory
) -> None:
    path = f"/{world.yealink_token}/0015654aa937.cfg"
    before = await get(client, path)
    etag = before.headers["ETag"]
    async with sessions() as session, session.begin():
        await inventory.unassign_line(session, world.yealink_mac, world.line_ids[1])
    after = await get(client, path, **{"If-None-Match": etag})
    assert after.status == 200
    body = await after.text()
    assert "account.2.enable = 0" in body
    assert "secret-2" not in body
    assert after.headers["ETag"] != etag


async def test_linphone_xml_by_token(
    client: TestClient, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, world.linphone_mac, world.line_ids[2])
    resp = await get(client, f"/{world.linphone_token}/linphone.xml", **{"User-Agent": "Unknown"})
    assert resp.status == 200
    assert resp.content_type == "application/xml"
    body = await resp.text()
    assert '<section name="proxy_0">' in body
    assert '<entry name="passwd" overwrite="true">secret-3</entry>' in body
    assert '<section name="proxy_7">' in body  # every slot written


UNKNOWN_TOKEN = "A" * 32


@pytest.mark.parametrize(
    "path_template",
    [
        "/0015654aa937.cfg",  # MAC only: off by default
        f"/{UNKNOWN_TOKEN}/0015654aa937.cfg",  # unknown token
        "/{yealink}/001565000001.cfg",  # valid token, another device's MAC
        "/{yealink}/linphone.xml",  # valid token, another family's file
        "/{yealink}/nothing.txt",  # unknown file
        "/{linphone}/0015654aa937.cfg",  # the Linphone's token asking for the Yealink
        "/0015654aa937.cfg?token=short",  # malformed token
        "/a/b/c",
        "/",
    ],
)
async def test_unknown_or_unauthorised_get_identical_empty_404(
    client: TestClient, world: World, path_template: str
) -> None:
    path = path_template.format(yealink=world.yealink_token, linphone=world.linphone_token)
    resp = await get(client, path, **{"User-Agent": YEALINK_UA})
    assert resp.status == 404
    assert await resp.read() == b""
    # Beside the date, only a per-request id (random, the same shape for everyone).
    assert set(resp.headers) - {"Date", "Server", "X-Request-ID"} == {"Content-Length"}


async def test_user_agent_with_another_mac_is_refused(client: TestClient, world: World) -> None:
    resp = await get(
        client,
        f"/{world.yealink_token}/0015654aa937.cfg",
        **{"User-Agent": "Yealink SIP-T46U 108.86.0.20 00:15:65:00:00:01"},
    )
    assert resp.status == 404


async def test_mac_only_access_when_allowed(
    aiohttp_client, settings, world: World, sessions: SessionFactory
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from provisioning.app import create_app

    client = await aiohttp_client(create_app(replace(settings, allow_mac_only=True)))
    resp = await client.get("/0015654aa937.cfg")
    assert resp.status == 200
    # Common file: no MAC in the name, the User-Agent's MAC identifies the phone.
    resp = await client.get("/y000000000108.cfg", headers={"User-Agent": YEALINK_UA})
    assert resp.status == 200
    resp = await client.get("/y000000000108.cfg")
    assert resp.status == 404


async def test_fetch_records_a_sighting(
    client: TestClient, world: World, sessions: SessionFactory
) -> None:
    resp = await get(
        client, f"/{world.yealink_token}/0015654aa937.cfg", **{"User-Agent": YEALINK_UA}
    )
    assert resp.status == 200
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == world.yealink_mac))
        assert device is not None
        assert device.state == "active"
        assert device.last_ip == "127.0.0.1"
        assert device.last_user_agent == YEALINK_UA
        assert device.last_firmware == "108.86.0.20"
        assert device.last_revision_served == device.config_revision
        assert device.last_seen_at is not None
        sightings = (await session.scalars(select(Sighting))).all()
    assert [(s.file_name, s.ip, s.firmware) for s in sightings] == [
        ("0015654aa937.cfg", "127.0.0.1", "108.86.0.20")
    ]


async def test_forwarded_for_believed_only_from_trusted_proxies(
    aiohttp_client, settings, world: World, sessions: SessionFactory
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    import netaddr

    from provisioning.app import create_app

    path = f"/{world.yealink_token}/0015654aa937.cfg"
    untrusted = await aiohttp_client(create_app(settings))
    await untrusted.get(path, headers={"X-Forwarded-For": "203.0.113.7"})
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == world.yealink_mac))
        assert device is not None and device.last_ip == "127.0.0.1"

    trusting = replace(settings, trusted_proxies=netaddr.IPSet(["127.0.0.0/8"]))
    proxied = await aiohttp_client(create_app(trusting))
    await proxied.get(path, headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.7"})
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == world.yealink_mac))
        assert device is not None and device.last_ip == "203.0.113.7"


async def test_database_failure_is_503_not_404(
    client: TestClient, world: World, sessions: SessionFactory, is_postgres: bool
) -> None:
    async with sessions() as session, session.begin():
        from sqlalchemy import text

        # A real failure of the database under the running app: its main table is gone.
        await session.execute(text("ALTER TABLE devices RENAME TO devices_away"))
    try:
        resp = await get(client, f"/{world.yealink_token}/0015654aa937.cfg")
        assert resp.status == 503
        assert resp.headers["Retry-After"].isdigit()
    finally:
        async with sessions() as session, session.begin():
            from sqlalchemy import text

            await session.execute(text("ALTER TABLE devices_away RENAME TO devices"))


async def test_unreachable_database_is_503(aiohttp_client, settings, world: World) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from provisioning.app import create_app

    # Nothing listens on port 9 of loopback: the connection is refused.
    down = replace(settings, database_url="postgresql+asyncpg://nobody:x@127.0.0.1:9/none")
    client = await aiohttp_client(create_app(down))
    resp = await client.get(f"/{world.yealink_token}/0015654aa937.cfg")
    assert resp.status == 503
    assert resp.headers["Retry-After"]


async def test_firmware_url_when_an_image_is_present(
    client: TestClient, world: World, sessions: SessionFactory, firmware_dir, catalog
) -> None:  # type: ignore[no-untyped-def]
    from provisioning.crypto import Cipher
    from tests.conftest import TEST_KEY

    async with sessions() as session, session.begin():
        _, token = await inventory.add_device(
            session, catalog, Cipher((TEST_KEY,)), "001565000046", "yealink-t46s", world.account_id
        )
    path = f"/{token}/001565000046.cfg"
    assert "static.firmware.url" not in await (await get(client, path)).text()
    (firmware_dir / "yealink").mkdir()
    for version in ("66.86.0.9", "66.86.0.15"):
        (firmware_dir / "yealink" / f"T46S(T48S,T42S,T41S)-{version}.rom").write_bytes(b"x")
    async with sessions() as session, session.begin():  # a new revision: the cache is bypassed
        await inventory.assign_line(session, "001565000046", world.line_ids[2])
    body = await (await get(client, path)).text()
    url = "http://phones.test:8080/firmware/yealink/T46S%28T48S%2CT42S%2CT41S%29-66.86.0.15.rom"
    assert f"static.firmware.url = {url}" in body
    image = await client.get(url.removeprefix("http://phones.test:8080"))
    assert image.status == 200


async def test_disagreeing_macs_are_logged(
    client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="provisioning.phones.files"):
        resp = await get(
            client,
            f"/{world.yealink_token}/0015654aa937.cfg",
            **{"User-Agent": "Yealink SIP-T46U 108.86.0.20 00:15:65:00:00:01"},
        )
    assert resp.status == 404 and await resp.read() == b""
    (record,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert "0015654aa937" in record.getMessage() and "001565000001" in record.getMessage()
    assert world.yealink_token not in record.getMessage()
