"""What the assign-time files check does with an error that is not a refusal of the values: a
template bug (an operator's override with a misspelt variable) or a stored secret the server's
keys cannot decrypt. When the error is there without the change, the change goes through, as it
did before the check existed, and the error is logged: it is the server's fault, the phone's
fetch reports it anyway, and refusing would also refuse the repair. A refusal in another file is
still found, and a template error that only the change causes is refused. Through the real app's API;
the refusing template is Aastra's (`#`), as in test_files_refused.py."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from provisioning import accounts, tokens
from provisioning.app import create_app
from provisioning.crypto import Cipher, generate_key
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Line, LineSlot
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.conftest import World
from tests.test_files_refused import AASTRA, AASTRA_MAC, HASH_PASSWORD, call


async def _aastra(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> tuple[str, str, int, int, int]:
    """An operator token, the Aastra's token, the Aastra with a plain line in slot 1, a free line of the same
    account with a `#` in its password and a free plain one."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
        _, token = await inventory.add_device(
            session, catalog, cipher, AASTRA_MAC, AASTRA, world.account_id
        )
        made = [
            await accounts.create_line(
                session, settings, cipher, world.account_id, f"+3310000009{n}", password=password
            )
            for n, password in enumerate(("plain-pw", HASH_PASSWORD, "other-pw"), 1)
        ]
        await inventory.assign_line(session, AASTRA_MAC, made[0].id)
    return operator, token, made[0].id, made[1].id, made[2].id


async def _slots(sessions: SessionFactory) -> list[int]:
    async with sessions() as session:
        return sorted((await session.scalars(select(LineSlot.line_id))).all())


async def test_a_broken_template_does_not_block_a_change_nor_hide_a_refusal(
    aiohttp_client: Any,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The operator's override of Aastra's common file names a variable that does not exist.
    (tmp_path / "aastra").mkdir()
    (tmp_path / "aastra" / "aastra.cfg.j2").write_text("time server1: {{ no_such_variable }}\n")
    app = create_app(replace(settings, templates_override_dir=tmp_path))
    client: TestClient = await aiohttp_client(app)
    operator, token, held, hashed, plain = await _aastra(sessions, settings, catalog, world)
    before = await _slots(sessions)

    # The `#` line is still refused: the MAC file is checked though the common file is broken.
    status, problem = await call(
        client, operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": hashed}
    )
    assert status == 409, problem
    assert problem["type"].endswith("/files-refused") and "contains a #" in problem["detail"]
    assert await _slots(sessions) == before

    # A line the files carry goes on the phone; the template error is logged, not answered.
    with caplog.at_level(logging.ERROR, logger="provisioning.render.files"):
        status, body = await call(
            client, operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": plain}
        )
    assert status == 201, body
    assert sorted([*before, plain]) == await _slots(sessions)
    logged = [r.getMessage() for r in caplog.records if r.name == "provisioning.render.files"]
    assert any(AASTRA_MAC in m and "aastra.cfg" in m and "no_such_variable" in m for m in logged), (
        logged
    )
    # A password change of a line it carries too.
    status, view = await call(client, operator, "PATCH", f"/lines/{held}", {"password": "new-pw"})
    assert status == 200, view

    # The phone's fetch of the broken file reports it itself: a 503, the phone retries.
    agent = "Aastra6731i MAC:00-08-5D-23-74-AA V:3.3.1.4305-SIP"
    resp = await client.get(f"/{token}/aastra.cfg", headers={"User-Agent": agent})
    assert resp.status == 503, await resp.text()
    resp = await client.get(f"/{token}/{AASTRA_MAC.upper()}.cfg", headers={"User-Agent": agent})
    assert resp.status == 200 and "other-pw" in await resp.text()


async def test_an_undecryptable_secret_does_not_block_the_change_that_repairs_it(
    client: TestClient,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Aastra's line was written with a key the server no longer holds (a key rotated
    away too early): its files cannot be rendered, whatever changes."""
    operator, _, held, hashed, plain = await _aastra(sessions, settings, catalog, world)
    lost = Cipher((generate_key(),))
    async with sessions() as session, session.begin():
        await session.execute(
            update(Line).where(Line.id == held).values(password_enc=lost.encrypt("lost-pw"))
        )
        unreadable_free = await accounts.create_line(
            session,
            settings,
            Cipher(settings.secret_key),
            world.account_id,
            "+33100000099",
            password="x",
        )
        await session.execute(
            update(Line)
            .where(Line.id == unreadable_free.id)
            .values(password_enc=lost.encrypt("lost-too"))
        )
    with caplog.at_level(logging.ERROR, logger="provisioning.render.refusals"):
        # Another line on the phone cannot be decrypted: a new line still goes on it.
        status, body = await call(
            client, operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": plain}
        )
        assert status == 201, body
        # The line's own password cannot be decrypted: its display name changes all the same.
        status, view = await call(
            client, operator, "PATCH", f"/lines/{held}", {"display_name": "Reception"}
        )
        assert status == 200, view
        # The repair: a new password for the line whose old one is lost.
        status, view = await call(
            client, operator, "PATCH", f"/lines/{held}", {"password": "fresh-pw"}
        )
        assert status == 200, view
        # A line whose own password cannot be decrypted is put on the phone too.
        status, body = await call(
            client,
            operator,
            "POST",
            f"/devices/{AASTRA_MAC}/lines",
            {"line_id": unreadable_free.id},
        )
        assert status == 201, body
    logged = [r.getMessage() for r in caplog.records if r.name == "provisioning.render.refusals"]
    assert len(logged) == 4 and all(AASTRA_MAC in m and "cannot be decrypted" in m for m in logged)
    assert all("lost-" not in m for m in logged)  # no secret in the log
    assert await _slots(sessions) == sorted([held, plain, unreadable_free.id, *world.line_ids[:2]])
    # Once the stored secret is readable again, the check is back: the `#` line is refused.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Line)
            .where(Line.id == unreadable_free.id)
            .values(password_enc=Cipher(settings.secret_key).encrypt("readable"))
        )
    status, problem = await call(
        client, operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": hashed}
    )
    assert status == 409 and "contains a #" in problem["detail"], problem


async def test_a_template_error_the_change_causes_is_refused(
    aiohttp_client: Any,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
    tmp_path: Path,
) -> None:
    """An override whose bug only a third line reaches: the phone works with two, and the
    change that would break it (every line of it answered 503) is refused, naming the file and
    the error, as a template's `refuse` is."""
    (tmp_path / "aastra").mkdir()
    (tmp_path / "aastra" / "aastra.cfg.j2").write_text(
        '{% include "_settings.cfg.j2" %}\n'
        "{% if lines[2].enabled %}screen name 3: {{ lines[2].no_such_key }}\n{% endif %}"
    )
    client: TestClient = await aiohttp_client(
        create_app(replace(settings, templates_override_dir=tmp_path))
    )
    operator, token, _, _, plain = await _aastra(sessions, settings, catalog, world)
    status, body = await call(
        client, operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": plain}
    )
    assert status == 201 and body["slot"] == 2, body
    before = await _slots(sessions)
    async with sessions() as session, session.begin():
        third = await accounts.create_line(
            session,
            settings,
            Cipher(settings.secret_key),
            world.account_id,
            "+33100000098",
            password="third-pw",
        )
    status, problem = await call(
        client, operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": third.id}
    )
    assert status == 409, problem
    assert problem["type"].endswith("/files-refused")
    assert "aastra.cfg" in problem["detail"] and "no_such_key" in problem["detail"]
    assert "third-pw" not in problem["detail"]
    assert await _slots(sessions) == before
    # The phone still gets its files.
    agent = "Aastra6731i MAC:00-08-5D-23-74-AA V:3.3.1.4305-SIP"
    resp = await client.get(f"/{token}/aastra.cfg", headers={"User-Agent": agent})
    assert resp.status == 200, await resp.text()
