"""What the Manager's tests share: a world with sign-ins, and a browser-like client that
keeps cookies and repeats the CSRF token in every form, as the pages do."""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account
from provisioning.web import users
from provisioning.web.formats import Formats
from tests.conftest import World

ALICE = ("alice", "alice-password-1")
BOB = ("bob", "bob-password-12")
OPERATOR = ("warehouse", "warehouse-pass-1")


@dataclass
class ManagerWorld:
    world: World

    @property
    def free_line(self) -> int:
        """Alice's third line: no phone."""
        return self.world.line_ids[2]


async def make_manager_world(sessions: SessionFactory, world: World) -> ManagerWorld:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        await users.set_customer_password(session, world.account_id, ALICE[1], login=ALICE[0])
        await users.set_customer_password(session, world.other_account_id, BOB[1], login=BOB[0])
        await users.create_operator(session, *OPERATOR)
    return ManagerWorld(world)


class Browser:
    """An HTTP client that behaves like a browser without JavaScript."""

    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client

    def csrf(self) -> str:
        for cookie in self.client.session.cookie_jar:
            if cookie.key == "pp_csrf":
                return cookie.value
        return ""

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        resp = await self.client.get(path, **kw)
        return resp.status, await resp.text()

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kw: Any
    ) -> tuple[int, str]:
        if not self.csrf():
            await self.client.get("/manager/login")
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf()
        resp = await self.client.post(path, data=form, **kw)
        return resp.status, await resp.text()

    async def sign_in(self, login: str, password: str, lang: str = "fr") -> tuple[int, str]:
        await self.client.get(f"/manager/language?lang={lang}&next=/manager/login")
        return await self.post("/manager/login", {"login": login, "password": password})


def mac_label(mac: str) -> str:
    """A MAC as the pages write it: "00:15:65:4A:A9:37"."""
    return Formats("fr", "Europe/Paris").mac(mac)


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page, as the next form would send them."""
    found = {}
    for tag in re.findall(r"<input type=\"hidden\"[^>]*>", html):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and value:
            found[name.group(1)] = html_lib.unescape(value.group(1))
    return found
