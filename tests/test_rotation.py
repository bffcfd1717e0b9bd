"""Credential rotation with overlap, across a phone's reboot: the new credential is in the next
config the phone fetches, the old one keeps working for the overlap, then stops."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from provisioning import tokens
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import AuditEvent, Device, DeviceCredential, Push, utcnow
from provisioning.security.credentials import rotate_credential
from provisioning.settings import Settings
from tests.conftest import YEALINK_UA, World
from tests.security_kit import client_from, digest_header, parse_challenge, running
from tests.test_cli import Cli

pytestmark = pytest.mark.usefixtures("world")
MAC = "0015654aa937"


async def get(server: Any, path: str, **headers: str) -> tuple[int, str]:
    async with (
        client_from("127.0.0.1") as client,
        client.get(server.url(path), headers={"User-Agent": YEALINK_UA, **headers}) as resp,
    ):
        return resp.status, await resp.text()


async def expire_previous(sessions: SessionFactory) -> None:
    """The overlap ends (as if its time had passed)."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(DeviceCredential)
            .where(DeviceCredential.expires_at.is_not(None))
            .values(expires_at=utcnow())
        )


async def test_token_rotation_across_a_reboot(
    settings: Settings, world: World, sessions: SessionFactory, tmp_path: Path
) -> None:
    old = world.yealink_token
    async with running(settings) as server:
        cli = Cli(settings, tmp_path)
        rotated = cli.json("device", "rotate", MAC, "token", "--overlap", "3600")
        new = rotated["url"].rstrip("/").rsplit("/", 1)[1]
        assert new != old and rotated["previous_valid_until"]
        # The phone polls with the old URL: still served, and told its new URL.
        status, body = await get(server, f"/{old}/{MAC}.cfg")
        assert status == 200
        assert re.search(rf"static\.auto_provision\.server\.url = \S+/{new}/$", body, re.M)
        # It reboots and uses the new URL from then on.
        assert (await get(server, f"/{new}/{MAC}.boot"))[0] == 200
        assert (await get(server, f"/{new}/{MAC}.cfg"))[0] == 200
        await expire_previous(sessions)
        assert await get(server, f"/{old}/{MAC}.cfg") == (404, "")
        assert (await get(server, f"/{new}/{MAC}.cfg"))[0] == 200
        # The old URL is not the device's any more, in the CLI either.
        assert cli.json("device", "url", MAC)["url"].endswith(f"/{new}/")


async def test_digest_rotation_across_a_reboot(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    digest = replace(settings, digest=True, auth_proofs="digest")
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        first = await rotate_credential(session, cipher, MAC, "digest", overlap=0)
    assert first.previous_valid_until is None  # the first one is simply issued
    path = f"/{MAC}.cfg"

    async with running(digest) as server:

        async def fetch_with(password: str) -> tuple[int, str]:
            status, _ = await get(server, path)
            assert status == 401
            async with client_from("127.0.0.1") as client, client.get(server.url(path)) as resp:
                c = parse_challenge(resp.headers.getall("WWW-Authenticate")[1])
            header = digest_header(
                username=MAC, password=password, realm=c["realm"], nonce=c["nonce"], uri=path
            )
            return await get(server, path, Authorization=header)

        def password_in(body: str) -> str:
            found = re.search(r"^static\.auto_provision\.server\.password = (\S+)$", body, re.M)
            assert found is not None
            return found.group(1)

        # The phone got its password in an earlier config (here: read from the database).
        async with sessions() as session:
            from provisioning.security.credentials import current_digest

            device_id = await session.scalar(select(DeviceCredential.device_id))
            assert device_id is not None
            _, old = await current_digest(session, cipher, device_id) or ("", "")
        status, body = await fetch_with(old)
        assert status == 200 and password_in(body) == old

        async with sessions() as session, session.begin():
            await rotate_credential(session, cipher, MAC, "digest", overlap=3600)
        status, body = await fetch_with(old)  # the last fetch before the reboot
        assert status == 200
        new = password_in(body)
        assert new != old
        assert (await fetch_with(new))[0] == 200  # after the reboot
        await expire_previous(sessions)
        assert (await fetch_with(old))[0] == 401
        assert (await fetch_with(new))[0] == 200


async def test_rotation_through_the_api_hands_out_the_url_once(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
    headers = {"Authorization": f"Bearer {operator}"}
    async with running(settings) as server, client_from("127.0.0.1") as client:
        url = server.url(f"/api/v1/devices/{MAC}/credentials")
        async with client.post(url, json={"kind": "token", "overlap": 60}, headers=headers) as resp:
            assert resp.status == 201
            rotated = await resp.json()
        assert rotated["url"].startswith("http://phones.test:8080/") and rotated["kind"] == "token"
        async with client.post(url, json={"kind": "digest"}, headers=headers) as resp:
            digest = await resp.json()
        assert (resp.status, digest["username"], digest["previous_valid_until"]) == (201, MAC, None)
        async with client.get(
            server.url(f"/api/v1/devices/{MAC}/security"), headers=headers
        ) as resp:
            view = await resp.json()
        kinds = sorted((c["kind"], c["valid_until"] is None) for c in view["credentials"])
        assert kinds == [("digest", True), ("token", False)]
        text = str(view)
        assert rotated["url"].split("/")[-2] not in text and world.yealink_token not in text
        for bad in ({"kind": "password"}, {"kind": "token", "overlap": -1}, {"overlap": 5}):
            async with client.post(url, json=bad, headers=headers) as resp:
                assert resp.status == 422, bad
    async with sessions() as session:
        events = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "device.credential.rotate")
            )
        ).all()
    assert len(events) == 2
    assert all(world.yealink_token not in (e.after or "") for e in events)


async def test_config_preview_masks_the_digest_password(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
        await rotate_credential(session, Cipher(settings.secret_key), MAC, "digest", overlap=0)
    async with running(settings) as server, client_from("127.0.0.1") as client:
        url = server.url(f"/api/v1/devices/{MAC}/config")
        async with client.get(url, headers={"Authorization": f"Bearer {operator}"}) as resp:
            body = (await resp.json())["files"][f"{MAC}.cfg"]
    assert "static.auto_provision.server.password = ********" in body
    assert f"static.auto_provision.server.username = {MAC}" in body


async def test_re_keying_secrets_covers_digest_passwords_and_old_tokens(
    settings: Settings, world: World, sessions: SessionFactory, tmp_path: Path
) -> None:
    from provisioning.crypto import generate_key

    cli = Cli(settings, tmp_path)
    cli.run("device", "rotate", MAC, "digest")
    cli.run("device", "rotate", MAC, "token")
    old_key = cli.env["PROVISIONING_SECRET_KEY"]
    new_key = generate_key()
    cli.env["PROVISIONING_SECRET_KEY"] = f"{new_key},{old_key}"
    assert cli.json("secret", "rotate") == {"lines": 4, "devices": 2, "credentials": 2}
    cli.env["PROVISIONING_SECRET_KEY"] = new_key  # the old key is gone: everything still reads
    body = cli.run("render", MAC, f"{MAC}.cfg").stdout
    assert re.search(r"^static\.auto_provision\.server\.password = \S{24}$", body, re.M)


@pytest.mark.parametrize("kind", ["token", "digest"])
async def test_a_rotation_queues_a_push(
    settings: Settings, sessions: SessionFactory, tmp_path: Path, kind: str
) -> None:
    """A rotation gives the phone a new revision: it is pushed like every other change, so a
    phone fetches its new credential at once, not at its next poll (after a short overlap, it
    would be locked out)."""
    async with sessions() as session:
        before = (await session.scalars(select(Push))).all()
    cli = Cli(settings, tmp_path)
    cli.json("device", "rotate", MAC, kind, "--overlap", "2")
    async with sessions() as session:
        pushes = (await session.scalars(select(Push).order_by(Push.id))).all()
        device = await session.scalar(select(Device).where(Device.mac == MAC))
    assert device is not None
    new = [push for push in pushes if push.id not in {p.id for p in before}]
    assert [(p.reason, p.state, p.target_revision) for p in new] == [
        (f"rotate-{kind}", "pending", device.config_revision)
    ]


def test_only_devices_changed_moves_a_revision() -> None:
    """Every change that gives a phone a new revision goes through push.changes.devices_changed,
    which queues its push: nowhere else writes `config_revision`."""
    root = Path(__file__).parent.parent / "provisioning"
    # An attribute set (`device.config_revision = ...`) or an UPDATE's values.
    writes = re.compile(r"\.config_revision\s*(?:=(?!=)|\+=)|values\(.*config_revision=")
    found = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if writes.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == ["push/changes.py:27"], found
