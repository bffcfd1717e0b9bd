"""A fleet seeded in a database of its own and `provisioning serve` started on it in a subprocess,
as an operator runs it: the phone-path tests that need real sockets, a real server process and
its defaults (tests/test_phone_concurrency.py, tests/test_slow_clients.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import text, update

from provisioning import accounts, tokens
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory, make_engine, make_session_factory
from provisioning.db.migrate import upgrade
from provisioning.db.models import Account
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.devices.mac import colon_mac
from provisioning.orders import fulfilment, orders
from provisioning.orders.carriers import load_carriers
from provisioning.security.credentials import rotate_credential
from provisioning.security.policy import set_policy
from provisioning.settings import Settings
from provisioning.web.users import create_operator
from tests.conftest import PG_TEST_DB, TEST_KEY, fresh_pg_database
from tests.peers.require import free_port

WEB_LOGIN, WEB_PASSWORD = "ops", "a long enough password 1"


def yealink_ua(mac: str, model: str = "T46U") -> str:
    return f"Yealink SIP-{model} 108.86.0.20 {colon_mac(mac)}"


@dataclass
class Fleet:
    """What the tests ask for: (mac, token) pairs by kind, and the API's and Manager's keys."""

    shipped: list[tuple[str, str]] = field(default_factory=list)
    rotated: list[tuple[str, str]] = field(default_factory=list)  # the token before rotation
    digest: list[tuple[str, str]] = field(default_factory=list)
    plain: list[tuple[str, str]] = field(default_factory=list)
    free_lines: list[int] = field(default_factory=list)
    operator: str = ""


async def fresh_database(base_url: str, folder: Path, name: str) -> str:
    """An empty, migrated database of this test's own: a SQLite file in `folder`, or a
    PostgreSQL database `name` beside the suite's."""
    if base_url.startswith("postgresql"):
        url = await fresh_pg_database(base_url, f"{PG_TEST_DB}_{name}")
    else:
        url = f"sqlite+aiosqlite:///{folder / (name + '.sqlite3')}"
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def seed(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, *, size: int = 10
) -> Fleet:
    """`size` phones of each kind: shipped and never fetched (an order in `shipped`), in a
    token rotation's overlap, on a digest account, plain; free lines; an operator's API token
    and a Manager sign-in."""
    cipher = Cipher(settings.secret_key)
    carriers = load_carriers()
    fleet = Fleet()
    async with sessions() as session, session.begin():
        await inventory.sync_models(session, catalog)
        alice = await accounts.create_account(session, settings, "Alice Martin")
        bob = await accounts.create_account(session, settings, "Bob Durand")
        await session.execute(
            update(Account)
            .where(Account.id == alice.id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        await set_policy(session, bob.id, "digest")
        lines = [
            (
                await accounts.create_line(
                    session, settings, cipher, alice.id, f"+331234{n:05d}", password=f"pw-{n}"
                )
            ).id
            for n in range(4 * size)
        ]
        _, fleet.operator = await tokens.create_token(session, "operator", name="ops")
        await create_operator(session, WEB_LOGIN, WEB_PASSWORD)
        for n in range(size):
            for kind, account, prefix in (
                (fleet.rotated, alice.id, 0x10),
                (fleet.digest, bob.id, 0x20),
                (fleet.plain, alice.id, 0x30),
            ):
                mac = f"001565{prefix:02x}{n:04x}"
                _, token = await inventory.add_device(
                    session, catalog, cipher, mac, "yealink-t46u", account
                )
                kind.append((mac, token))
            await inventory.assign_line(session, fleet.plain[-1][0], lines[n])
        for mac, _ in fleet.rotated:
            await rotate_credential(session, cipher, mac, "token", overlap=3600)
    for n in range(size):
        request = orders.OrderRequest(
            line_id=lines[size + n], model_id="yealink-t46u", carrier="dhl"
        )
        async with sessions() as session, session.begin():
            order, _ = await orders.place_order(
                session, settings, catalog, carriers, request, accept_contract=True
            )
        async with sessions() as session, session.begin():
            mac = f"001565{0x40:02x}{n:04x}"
            shipment = await fulfilment.ship_order(
                session, catalog, cipher, carriers, order.id, mac
            )
            fleet.shipped.append((mac, cipher.decrypt(shipment.device.token_enc)))
    fleet.free_lines = lines[2 * size :]
    return fleet


async def order_states(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT state, count(*) FROM orders GROUP BY state"))
            return {state: int(count) for state, count in rows}
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def seeded(
    base_url: str, folder: Path, name: str, catalog: Catalog, settings: Settings, size: int = 10
) -> AsyncIterator[tuple[str, Fleet]]:
    url = await fresh_database(base_url, folder, name)
    engine = make_engine(url)
    try:
        fleet = await seed(make_session_factory(engine), settings, catalog, size=size)
    finally:
        await engine.dispose()
    yield url, fleet


class Served:
    """`python -m provisioning serve` on `url`, with the interpreter running the tests (so the
    suite run under Python 3.12 serves with 3.12), its log in `folder`."""

    def __init__(self, url: str, folder: Path, **settings: str) -> None:
        self.port = free_port("tcp")
        self.log_path = folder / f"serve-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
            "PROVISIONING_DATABASE_URL": url,
            "PROVISIONING_SECRET_KEY": TEST_KEY,
            "PROVISIONING_PORT": str(self.port),
            "PROVISIONING_PUBLIC_URL": "http://phones.test",
            # Pushes would go to the lines' registrars (sip.example.net): not this test's matter.
            "PROVISIONING_PUSH_ENABLED": "false",
            **{f"PROVISIONING_{key.upper()}": value for key, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.folder = folder

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "provisioning", "serve"],
                cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def ready(self, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited: {self.log()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"serve not ready: {self.log()[-3000:]}")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def serving(served: Served) -> Iterator[Served]:
    served.start()
    try:
        yield served
    finally:
        served.stop()


def client_from(address: str, *, limit: int = 20) -> aiohttp.ClientSession:
    """A client whose requests come from `address` (any 127.x.y.z is this machine), each on a
    new connection, as phones booting do; cookies kept for an IP host (the Manager's)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=limit, force_close=True)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=60),
    )
