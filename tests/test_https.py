"""HTTPS served by the server itself, with certificates made by `provisioning certs`: real TLS
handshakes on loopback (1.2 and 1.3 accepted, older refused), plain HTTP limited to files
without secrets or turned off, and `provisioning serve` listening as the settings say."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from provisioning.security import lab
from provisioning.security.tls import server_context
from provisioning.settings import Settings, SettingsError
from tests.conftest import World
from tests.peers.require import free_port
from tests.security_kit import client_context, running
from tests.test_cli import Cli

pytestmark = pytest.mark.usefixtures("world")


def certs_cli(settings: Settings, folder: Path) -> Cli:
    cli = Cli(settings, folder)
    cli.env.pop("PROVISIONING_DATABASE_URL")  # the certs commands need no database...
    cli.env.pop("PROVISIONING_SECRET_KEY")  # ...and no key
    return cli


@pytest.fixture
def pki(settings: Settings, tmp_path: Path) -> Path:
    """A lab CA and a server certificate for 127.0.0.1 and localhost, made by the CLI."""
    cli = certs_cli(settings, tmp_path)
    cli.run("certs", "ca", "pki/ca")
    cli.run("certs", "server", "pki/ca", "pki/server", "--host", "127.0.0.1", "--host", "localhost")
    return tmp_path / "pki"


@pytest.fixture
def tls_settings(settings: Settings, pki: Path) -> Settings:
    return replace(
        settings, tls_cert=pki / "server" / "server.pem", tls_key=pki / "server" / "server.key"
    )


def test_certs_commands_write_keys_privately_and_never_overwrite(
    pki: Path, settings: Settings, tmp_path: Path
) -> None:
    assert (pki / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (pki / "server" / "server.key").stat().st_mode & 0o777 == 0o600
    # server.pem holds the chain: the server certificate, then the CA's.
    assert (pki / "server" / "server.pem").read_text().count("BEGIN CERTIFICATE") == 2
    cli = certs_cli(settings, tmp_path)
    again = cli.run("certs", "ca", "pki/ca", ok=False)
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "exists" in again.stderr
    assert again.stderr.count("\n") == 1
    missing = cli.run("certs", "server", "nowhere", "out", "--host", "x", ok=False)
    assert missing.returncode == 1 and "no lab CA" in missing.stderr


async def test_tls_1_2_and_1_3_are_served_older_is_refused(
    tls_settings: Settings, world: World, pki: Path
) -> None:
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    async with running(tls_settings, ssl_context=server_context(tls_settings)) as server:
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = client_context(pki / "ca" / "ca.pem", maximum=version)
            context.minimum_version = version
            async with (
                aiohttp.ClientSession() as client,
                client.get(server.url(path), ssl=context) as resp,
            ):
                assert resp.status == 200
                assert "account.1.password = secret-1" in await resp.text()
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
                old.minimum_version = ssl.TLSVersion.TLSv1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")

        def handshake() -> None:
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
                old.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                pass

        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(handshake)  # the server runs on this event loop
    # Control: this very client does speak TLS 1.1 with a server that allows it, so the refusal
    # above is our server's minimum version at work.
    assert await asyncio.to_thread(_tls_1_1_control, old, pki) == "TLSv1.1"


def _tls_1_1_control(client: ssl.SSLContext, pki: Path) -> str | None:
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.load_cert_chain(pki / "server" / "server.pem", pki / "server" / "server.key")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError), permissive.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=accept)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            version = tls.version()
        thread.join(timeout=10)
    return version


async def test_an_untrusted_server_certificate_is_refused_by_clients(
    tls_settings: Settings, world: World, tmp_path: Path
) -> None:
    other = lab.create_ca(tmp_path / "other")
    async with running(tls_settings, ssl_context=server_context(tls_settings)) as server:
        context = client_context(other.certificate)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with aiohttp.ClientSession() as client:
                await client.get(server.url("/"), ssl=context)


async def test_http_limited_to_public_files(
    tls_settings: Settings, world: World, pki: Path, sessions: SessionFactory
) -> None:
    public = replace(tls_settings, http="public")
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
    token, mac = world.yealink_token, world.yealink_mac
    headers = {"Authorization": f"Bearer {operator}"}
    async with (
        running(public) as plain,
        running(public, ssl_context=server_context(public)) as secure,
        aiohttp.ClientSession() as client,
    ):
        # The common file has no secret: served over HTTP; the MAC file only over HTTPS.
        async with client.get(plain.url(f"/{token}/y000000000108.cfg")) as resp:
            assert resp.status == 200
        async with client.get(plain.url(f"/{token}/{mac}.cfg")) as resp:
            assert (resp.status, await resp.read()) == (404, b"")
        context = client_context(pki / "ca" / "ca.pem")
        async with client.get(secure.url(f"/{token}/{mac}.cfg"), ssl=context) as resp:
            assert resp.status == 200
        async with client.get(plain.url("/api/v1/devices"), headers=headers) as resp:
            assert resp.status == 403
            assert (await resp.json())["type"].endswith("/https-required")
        async with client.get(secure.url("/api/v1/devices"), headers=headers, ssl=context) as resp:
            assert resp.status == 200


def test_the_base_url_is_https_when_tls_is_on(tls_settings: Settings) -> None:
    assert replace(tls_settings, public_url="").base_url == "https://127.0.0.1:8443"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"http": "off"}, "PROVISIONING_HTTP: off needs PROVISIONING_TLS_CERT"),
        ({"http": "maybe"}, "PROVISIONING_HTTP: expected on or off or public"),
        ({"tls_cert": "/nonexistent.pem"}, "PROVISIONING_TLS_CERT: /nonexistent.pem is not a file"),
        ({"tls_cert": __file__}, "set both"),
        ({"client_cas": "polycom"}, "PROVISIONING_CLIENT_CAS: expected NAME=PEM-FILE"),
        ({"digest_realm": 'a"b'}, "PROVISIONING_DIGEST_REALM"),
        ({"auth_proofs": "token+password"}, "PROVISIONING_AUTH_PROOFS: expected token, digest"),
        ({"ban_threshold": "0"}, "PROVISIONING_BAN_THRESHOLD: must be between 1"),
        ({"first_contact_binding": "city"}, "PROVISIONING_FIRST_CONTACT_BINDING"),
    ],
)
def test_bad_security_settings_name_their_key(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping(values)
    assert message in str(caught.value)


def test_a_key_that_does_not_fit_the_certificate_stops_the_server(
    tls_settings: Settings, tmp_path: Path
) -> None:
    other = lab.create_ca(tmp_path / "other")
    with pytest.raises(SettingsError, match="PROVISIONING_TLS_CERT, PROVISIONING_TLS_KEY"):
        server_context(replace(tls_settings, tls_key=other.key))


def _wait(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def test_serve_with_http_off_listens_on_https_only(
    tls_settings: Settings, world: World, pki: Path, tmp_path: Path
) -> None:
    http_port, https_port = free_port("tcp"), free_port("tcp")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
        "PROVISIONING_DATABASE_URL": tls_settings.database_url,
        "PROVISIONING_SECRET_KEY": tls_settings.secret_key[0],
        "PROVISIONING_TLS_CERT": str(pki / "server" / "server.pem"),
        "PROVISIONING_TLS_KEY": str(pki / "server" / "server.key"),
        "PROVISIONING_TLS_PORT": str(https_port),
        "PROVISIONING_HTTP": "off",
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "serve", "--port", str(http_port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait(https_port, server)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
        context = ssl.create_default_context(cafile=str(pki / "ca" / "ca.pem"))
        path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
        with (
            socket.create_connection(("127.0.0.1", https_port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"account.1.password = secret-1" in answer
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert f"Running on https://127.0.0.1:{https_port}" in output
    assert "Traceback" not in output
    assert world.yealink_token not in output
