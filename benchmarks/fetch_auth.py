"""What each way of proving a phone's identity costs on the fetch path, measured in one run
against the plain token path.

    .venv/bin/python benchmarks/fetch_auth.py [--seconds 6] [--rounds 3] [--concurrency 20]
                        [--devices 200] [--database-url postgresql+asyncpg://.../an_empty_db]

A real `provisioning serve` (HTTP and HTTPS, one process) on a fresh database seeded with
`--devices` Yealink phones (two lines each, a digest password and a lab client certificate each);
an aiohttp load generator in this process keeps `--concurrency` requests in flight for
`--seconds` per scheme (in `--rounds` turns, so the machine's drift hits every scheme alike),
cycling over the phones' per-device files. Every answer is checked
(status and a byte of the config), so a scheme that fails shows as failures, not as speed.

Schemes (one fetch = one file delivered):
  token              URL token over HTTP, keep-alive (the baseline)
  token-https        the same over HTTPS, keep-alive
  token-https-new    HTTPS, a new TLS connection for every file
  digest-reuse       HTTP digest answered with a known nonce, nc+1 each time (one request)
  digest-challenge   HTTP digest, challenged every time (two requests per file)
  certificate        mutual TLS with a client certificate, keep-alive
  certificate-new    mutual TLS, a new handshake for every file
  proxy-header       certificate verified by a trusted proxy, passed in X-Client-Cert
  miss               a wrong token (the scanner's path: 404 and a miss counted)
  banned             a banned source (403 from the ban check alone)

Client and server share the machine, and the client is Python: absolute figures are lower
bounds, the ratios to `token` are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import logging
import os
import secrets
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provisioning import accounts  # noqa: E402
from provisioning.crypto import Cipher, generate_key  # noqa: E402
from provisioning.db.engine import make_engine, make_session_factory  # noqa: E402
from provisioning.db.migrate import upgrade  # noqa: E402
from provisioning.devices import inventory  # noqa: E402
from provisioning.devices.catalog import load_catalog  # noqa: E402
from provisioning.render.snapshot import find_device, load_device_data  # noqa: E402
from provisioning.security import bans, lab  # noqa: E402
from provisioning.security.credentials import rotate_credential  # noqa: E402
from provisioning.security.sources import source_of  # noqa: E402
from provisioning.settings import PROJECT_ROOT, Settings  # noqa: E402

REALM = "provisioning"
UA = "Yealink SIP-T46U 108.86.0.20"
BANNED_ADDRESS = "127.0.99.1"


@dataclass(frozen=True)
class Phone:
    mac: str
    token: str
    password: str
    cert: lab.Issued


@dataclass
class Result:
    scheme: str
    fetches: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.fetches / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(url: str, key: str, count: int, folder: Path) -> list[Phone]:
    logging.getLogger("provisioning.security").setLevel(logging.ERROR)  # the seeded ban's lines
    settings = Settings(database_url=url, secret_key=(key,))
    catalog = load_catalog(PROJECT_ROOT / "templates" / "devices")
    cipher = Cipher((key,))
    engine = make_engine(url)
    await upgrade(engine)
    lab.create_ca(folder / "ca")
    phones = []
    async with make_session_factory(engine)() as session, session.begin():
        await inventory.sync_models(session, catalog)
        account = await accounts.create_account(session, settings, "Benchmark")
        for n in range(count):
            mac = f"0015650{n:05x}"
            _, token = await inventory.add_device(
                session, catalog, cipher, mac, "yealink-t46u", account.id
            )
            for slot in (1, 2):
                line = await accounts.create_line(
                    session, settings, cipher, account.id, f"+3310{n:05d}{slot}",
                    password=secrets.token_urlsafe(12),
                )  # fmt: skip
                await inventory.assign_line(session, mac, line.id)
            await rotate_credential(session, cipher, mac, "digest", overlap=0)
            cert = lab.create_device(folder / "ca", folder / "devices", mac)
            phones.append(Phone(mac, token, "", cert))
        for _ in range(30):  # a ban to check against on every request of the `banned` scheme
            source = source_of(BANNED_ADDRESS)
            assert source is not None
            await bans.record_miss(
                session, source, bans.Miss.BAD_TOKEN, bans.BanRules.from_settings(settings)
            )
    async with make_session_factory(engine)() as session:
        with_passwords = []
        for phone in phones:
            device = await find_device(session, mac=phone.mac)
            assert device is not None
            data = await load_device_data(session, device, cipher, settings)
            with_passwords.append(Phone(phone.mac, phone.token, data.http_password, phone.cert))
    await engine.dispose()
    return with_passwords


def start_server(
    url: str, key: str, folder: Path, http: int, https: int
) -> subprocess.Popen[bytes]:
    server = lab.create_server(folder / "ca", folder / "server", ["127.0.0.1"])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
        "PROVISIONING_DATABASE_URL": url,
        "PROVISIONING_SECRET_KEY": key,
        "PROVISIONING_TLS_CERT": str(server.certificate),
        "PROVISIONING_TLS_KEY": str(server.key),
        "PROVISIONING_TLS_PORT": str(https),
        "PROVISIONING_CLIENT_CAS": f"lab={folder / 'ca' / 'ca.pem'}",
        "PROVISIONING_TRUSTED_PROXIES": "127.0.0.1/32",
        "PROVISIONING_AUTH_PROOFS": "any",
        "PROVISIONING_DIGEST": "true",
        # Misses are counted (their cost is measured) but never ban the load generator.
        "PROVISIONING_BAN_THRESHOLD": "1000000",
        "PROVISIONING_BAN_NETWORK_THRESHOLD": "1000000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "serve", "--port", str(http)],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", https), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def digest_answer(phone: Phone, nonce: str, uri: str, nc: int) -> str:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 -- what phones speak

    ha1, ha2, count, cnonce = (
        md5(f"{phone.mac}:{REALM}:{phone.password}"),
        md5(f"GET:{uri}"),
        f"{nc:08x}",
        "b3nch",
    )
    response = md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{phone.mac}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
        f'algorithm=MD5, qop=auth, nc={count}, cnonce="{cnonce}", response="{response}"'
    )


def nonce_of(response: aiohttp.ClientResponse) -> str:
    challenge = response.headers.getall("WWW-Authenticate")[-1]
    return challenge.split('nonce="', 1)[1].split('"', 1)[0]


Fetch = Callable[[aiohttp.ClientSession, Phone], Awaitable[bool]]


class Bench:
    def __init__(self, phones: list[Phone], folder: Path, http: int, https: int) -> None:
        self.phones = phones
        self.folder = folder
        self.http = f"http://127.0.0.1:{http}"
        self.https = f"https://127.0.0.1:{https}"
        self.trust = ssl.create_default_context(cafile=str(folder / "ca" / "ca.pem"))

    def with_cert(self, phone: Phone) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.folder / "ca" / "ca.pem"))
        context.load_cert_chain(phone.cert.certificate, phone.cert.key)
        return context

    @staticmethod
    async def ok(response: aiohttp.ClientResponse, status: int = 200) -> bool:
        body = await response.read()
        return response.status == status and (status != 200 or b"account.1.enable = 1" in body)

    async def token(self, client: aiohttp.ClientSession, phone: Phone, base: str = "") -> bool:
        async with client.get(
            f"{base or self.http}/{phone.token}/{phone.mac}.cfg", headers={"User-Agent": UA}
        ) as r:
            return await self.ok(r)

    async def run(self, scheme: str, seconds: float, concurrency: int) -> Result:
        result = Result(scheme)
        stop = time.monotonic() + seconds
        cycle = itertools.cycle(self.phones)

        async def worker() -> None:
            local_addr = (BANNED_ADDRESS, 0) if scheme == "banned" else None
            new_each_time = scheme.endswith("-new")
            connector = aiohttp.TCPConnector(force_close=new_each_time, local_addr=local_addr)
            state: dict[str, tuple[str, int]] = {}
            async with aiohttp.ClientSession(connector=connector) as client:
                while time.monotonic() < stop:
                    phone = next(cycle)
                    started = time.perf_counter()
                    try:
                        good = await self.fetch(scheme, client, phone, state)
                    except (aiohttp.ClientError, ssl.SSLError, OSError):
                        good = False
                    if good:
                        result.fetches += 1
                        result.latencies.append(time.perf_counter() - started)
                    else:
                        result.failures += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.monotonic() - started
        return result

    async def fetch(
        self,
        scheme: str,
        client: aiohttp.ClientSession,
        phone: Phone,
        state: dict[str, tuple[str, int]],
    ) -> bool:
        uri = f"/{phone.mac}.cfg"
        if scheme == "token":
            return await self.token(client, phone)
        if scheme in ("token-https", "token-https-new"):
            async with client.get(
                f"{self.https}/{phone.token}/{phone.mac}.cfg", ssl=self.trust
            ) as r:
                return await self.ok(r)
        if scheme in ("certificate", "certificate-new"):
            # One TLS context per phone, like one certificate per phone; aiohttp keeps one
            # connection pool per context, so keep-alive works per phone.
            context = self._contexts.get(phone.mac)
            if context is None:
                context = self._contexts[phone.mac] = self.with_cert(phone)
            async with client.get(f"{self.https}{uri}", ssl=context) as r:
                return await self.ok(r)
        if scheme == "proxy-header":
            headers = {"X-Client-Cert": self._escaped(phone), "X-Client-Verify": "SUCCESS"}
            async with client.get(f"{self.http}{uri}", headers=headers) as r:
                return await self.ok(r)
        if scheme == "digest-challenge":
            async with client.get(f"{self.http}{uri}") as r:
                await r.read()
                nonce = nonce_of(r)
            headers = {"Authorization": digest_answer(phone, nonce, uri, 1)}
            async with client.get(f"{self.http}{uri}", headers=headers) as r:
                return await self.ok(r)
        if scheme == "digest-reuse":
            nonce, nc = state.get(phone.mac, ("", 0))
            if not nonce:
                async with client.get(f"{self.http}{uri}") as r:
                    await r.read()
                    nonce = nonce_of(r)
            state[phone.mac] = (nonce, nc + 1)
            headers = {"Authorization": digest_answer(phone, nonce, uri, nc + 1)}
            async with client.get(f"{self.http}{uri}", headers=headers) as r:
                if r.status == 401:  # the nonce expired: the phone starts again
                    state.pop(phone.mac)
                return await self.ok(r)
        if scheme == "miss":
            async with client.get(f"{self.http}/{secrets.token_urlsafe(24)}{uri}") as r:
                return await self.ok(r, 404)
        if scheme == "banned":
            async with client.get(f"{self.http}/{phone.token}{uri}") as r:
                return await self.ok(r, 403)
        raise ValueError(scheme)

    _contexts: dict[str, ssl.SSLContext] = {}  # noqa: RUF012 -- one benchmark per process
    _pem: dict[str, str] = {}  # noqa: RUF012

    def _escaped(self, phone: Phone) -> str:
        if phone.mac not in self._pem:
            self._pem[phone.mac] = quote(phone.cert.certificate.read_text(), safe="")
        return self._pem[phone.mac]


SCHEMES = (
    "token", "token-https", "token-https-new", "digest-reuse", "digest-challenge",
    "certificate", "certificate-new", "proxy-header", "miss", "banned",
)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per scheme, in all rounds")
    parser.add_argument(
        "--rounds", type=int, default=3, help="schemes take turns, so drift hits them alike"
    )
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fetch-auth-") as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
        key = generate_key()
        print(f"seeding {args.devices} phones ...", file=sys.stderr)
        phones = await seed(url, key, args.devices, folder)
        http, https = free_port(), free_port()
        server = start_server(url, key, folder, http, https)
        try:
            bench = Bench(phones, folder, http, https)
            for phone in phones[: args.concurrency]:  # warm the render cache
                async with aiohttp.ClientSession() as client:
                    await bench.token(client, phone)
            schemes = args.schemes.split(",")
            results = {scheme: Result(scheme) for scheme in schemes}
            for round_ in range(1, args.rounds + 1):
                for scheme in schemes:
                    print(f"round {round_}: {scheme} ...", file=sys.stderr)
                    part = await bench.run(scheme, args.seconds / args.rounds, args.concurrency)
                    total = results[scheme]
                    total.fetches += part.fetches
                    total.failures += part.failures
                    total.latencies += part.latencies
                    total.seconds += part.seconds
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=10)
    report(list(results.values()), args)


def report(results: list[Result], args: argparse.Namespace) -> None:
    base = next((r.rate for r in results if r.scheme == "token"), 0.0)
    rows = [
        {
            "scheme": r.scheme,
            "fetches_per_s": round(r.rate, 1),
            "vs_token": round(r.rate / base, 2) if base else None,
            "p50_ms": round(r.percentile(0.50), 2),
            "p99_ms": round(r.percentile(0.99), 2),
            "mean_ms": round(statistics.fmean(r.latencies) * 1000, 2) if r.latencies else 0.0,
            "fetches": r.fetches,
            "failures": r.failures,
        }
        for r in results
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "concurrency": args.concurrency,
                    "seconds": args.seconds,
                    "devices": args.devices,
                    "results": rows,
                },
                indent=2,
            )
        )
        return
    print(
        f"\nconcurrency {args.concurrency}, {args.seconds:g} s per scheme in {args.rounds} "
        f"rounds, {args.devices} phones, {os.cpu_count()} CPUs\n"
    )
    print("| scheme | fetches/s | x token | p50 ms | p99 ms | fetches | failures |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['scheme']} | {row['fetches_per_s']} | {row['vs_token']} | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['fetches']} | {row['failures']} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
