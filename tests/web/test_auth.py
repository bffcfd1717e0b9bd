"""Signing in to the Manager: hashed passwords, cookie flags, CSRF on every form, sign-out,
lockout, and a customer seeing only their own account."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import netaddr
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from provisioning.app import create_app
from provisioning.db.engine import SessionFactory
from provisioning.db.models import AuditEvent, WebSession, WebUser
from provisioning.settings import Settings
from provisioning.web.passwords import hash_password, verify_password
from provisioning.web.users import MAX_FAILURES
from tests.conftest import World
from tests.web.kit import ALICE, BOB, OPERATOR, Browser, ManagerWorld, make_manager_world


def same_page(page: str) -> str:
    """A page without the address it was asked at (the language switch links back to it)."""
    return re.sub(r"next=[^\"]*", "next=", page)


@pytest.fixture
async def mw(sessions: SessionFactory, world: World) -> ManagerWorld:
    return await make_manager_world(sessions, world)


def test_password_hash_is_scrypt_and_salted() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$32768$8$1$") and first != second
    assert verify_password("correct horse", first)
    assert not verify_password("correct hors", first)
    assert not verify_password("x", "not-a-hash")


async def test_sign_in_sets_a_safe_session_cookie(client: TestClient, mw: ManagerWorld) -> None:
    browser = Browser(client)
    status, page = await browser.get("/manager/lines")
    assert status == 200 and 'name="password"' in page  # sent to the sign-in page
    resp = await client.post(
        "/manager/login",
        data={"login": ALICE[0], "password": ALICE[1], "csrf": browser.csrf()},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/manager/lines"
    cookie = resp.cookies["pp_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/manager"
    assert not cookie["secure"]  # plain HTTP here; set when served over HTTPS
    status, page = await browser.get("/manager/lines")
    assert status == 200 and "Mes lignes" in page and "01 23 45 67 03" in page


async def test_wrong_password_then_lockout(
    client: TestClient, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    browser = Browser(client)
    for _ in range(MAX_FAILURES):
        status, page = await browser.post(
            "/manager/login", {"login": ALICE[0], "password": "wrong-password"}
        )
        assert status == 401 and "Identifiant ou mot de passe incorrect" in page
    # Locked: even the right password is refused, with the same words.
    status, page = await browser.post("/manager/login", {"login": ALICE[0], "password": ALICE[1]})
    assert status == 401 and "Identifiant ou mot de passe incorrect" in page
    # An unknown login reads exactly the same.
    status, other = await browser.post("/manager/login", {"login": "nobody", "password": "x"})
    assert status == 401 and "Identifiant ou mot de passe incorrect" in other
    async with sessions() as session:
        user = await session.scalar(select(WebUser).where(WebUser.login == ALICE[0]))
        assert user is not None and user.locked_until is not None
        actions = (await session.scalars(select(AuditEvent.action))).all()
    assert "web_user.locked" in actions
    assert ALICE[1] not in str(actions) and "wrong-password" not in page


async def test_every_form_needs_the_csrf_token(client: TestClient, mw: ManagerWorld) -> None:
    browser = Browser(client)
    await browser.get("/manager/login")
    status, page = await browser.post(
        "/manager/login", {"login": ALICE[0], "password": ALICE[1]}, csrf=False
    )
    assert status == 403 and "expiré" in page
    await browser.sign_in(*ALICE)
    line = mw.free_line
    status, _ = await browser.post(
        f"/manager/lines/{line}/associate", {"mac": mw.world.yealink_mac, "csrf": "forged"},
        csrf=False,
    )  # fmt: skip
    assert status == 403
    status, page = await browser.get(f"/manager/lines/{line}")
    assert "Aucun téléphone ne porte encore cette ligne" in page  # nothing changed


async def test_sign_out_ends_the_session(
    client: TestClient, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    browser = Browser(client)
    await browser.sign_in(*ALICE)
    status, _ = await browser.post("/manager/logout")
    assert status == 200
    status, page = await browser.get("/manager/lines")
    assert 'name="password"' in page
    async with sessions() as session:
        assert (await session.scalars(select(WebSession))).all() == []


async def test_a_customer_sees_only_their_account(client: TestClient, mw: ManagerWorld) -> None:
    browser = Browser(client)
    await browser.sign_in(*ALICE)
    other = mw.world.other_line_id
    missing_status, missing = await browser.get("/manager/lines/999999")
    missing = same_page(missing)
    for path in (
        f"/manager/lines/{other}",
        f"/manager/lines/{other}/order",
        f"/manager/lines/{other}/order/shipping?model=yealink-t46u",
        "/manager/lines/abc",
        "/manager/orders/999999",
        "/manager/associations/1",
        "/manager/devices/001565000001/return",
    ):
        status, page = await browser.get(path)
        assert (status, same_page(page)) == (missing_status, missing) == (404, missing), path
    status, _ = await browser.post(
        f"/manager/lines/{other}/associate", {"mac": mw.world.yealink_mac}
    )
    assert status == 404
    # Operators' pages do not exist for a customer.
    status, page = await browser.get("/manager/ops/orders")
    assert status == 404 and same_page(page) == missing
    bob = Browser(client)
    await bob.sign_in(*BOB)
    status, _ = await bob.get(f"/manager/lines/{mw.free_line}")
    assert status == 404


async def test_operator_signs_in_to_the_warehouse(client: TestClient, mw: ManagerWorld) -> None:
    browser = Browser(client)
    await browser.sign_in(*OPERATOR, lang="en")
    status, page = await browser.get("/manager/")
    assert status == 200 and "Orders to ship" in page and "Nothing to ship" in page
    status, _ = await browser.get("/manager/lines")
    assert status == 404


async def test_open_redirect_is_refused(client: TestClient, mw: ManagerWorld) -> None:
    resp = await client.get(
        "/manager/language?lang=en&next=https://evil.example/", allow_redirects=False
    )
    assert resp.headers["Location"] == "/manager/"


async def test_cli_sets_passwords_from_stdin(
    settings: Settings, sessions: SessionFactory, world: World, tmp_path: Path,
    client: TestClient,
) -> None:  # fmt: skip
    """`provisioning account password` and `user create` read the password from stdin, never
    from the command line; the customer can then sign in."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
        "PROVISIONING_DATABASE_URL": settings.database_url,
        "PROVISIONING_SECRET_KEY": settings.secret_key[0],
    }

    def run(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "provisioning", *args, "--json"], input=stdin, env=env,
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = run("account", "password", str(world.account_id), "--login", "alice.m",
               stdin="a-long-password\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "login": "alice.m", "role": "customer", "account_id": world.account_id,
    }  # fmt: skip
    short = run("account", "password", str(world.account_id), stdin="short\n")
    assert short.returncode == 1 and "password: 10 to 200 characters" in short.stderr
    assert "short" not in short.stderr.replace("password: 10", "")
    done = run("user", "create", "ops", stdin="operator-password\n")
    assert done.returncode == 0, done.stderr
    browser = Browser(client)
    status, page = await browser.sign_in("alice.m", "a-long-password")
    assert status == 200 and "Mes lignes" in page


async def test_cookies_are_secure_behind_an_https_proxy(
    aiohttp_client: Any, settings: Settings, mw: ManagerWorld
) -> None:
    proxied = replace(settings, trusted_proxies=netaddr.IPSet(["127.0.0.1/32"]))
    client = await aiohttp_client(create_app(proxied))
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    resp = await client.get("/manager/login", headers=https)
    assert resp.cookies["pp_csrf"]["secure"] and resp.cookies["pp_csrf"]["samesite"] == "Strict"
    token = resp.cookies["pp_csrf"].value
    # Over plain HTTP a client keeps Secure cookies to itself: the proxy would have sent it.
    resp = await client.post(
        "/manager/login", headers={**https, "Cookie": f"pp_csrf={token}"},
        allow_redirects=False, data={"login": ALICE[0], "password": ALICE[1], "csrf": token},
    )  # fmt: skip
    assert resp.status == 303 and resp.cookies["pp_session"]["secure"]
    assert resp.cookies["pp_session"]["httponly"]
