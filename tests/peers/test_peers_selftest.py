"""Self-test of the real-peer harness: kamailio + an HTTP-provisioned linphone-daemon."""

from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.peers.kamailio import Kamailio
from tests.peers.linphone import REGISTRATION_FAILED
from tests.peers.plugin import LinphoneFactory

LPCONFIG_NS = "http://www.linphone.org/xsds/lpconfig.xsd"


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


@dataclass
class ProvisioningStub:
    """A static "xml2lpc" file on a loopback HTTP server, recording every request."""

    port: int
    body: bytes = b""
    requests: list[SeenRequest] = field(default_factory=list)

    def url(self, path: str = "/lp/config.xml?mac=00:11:22:33:44:55") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def lpconfig_xml(kamailio: Kamailio, accounts: list[Account]) -> bytes:
    root = ET.Element("config", xmlns=LPCONFIG_NS)

    def section(name: str, entries: dict[str, str]) -> None:
        element = ET.SubElement(root, "section", name=name)
        for key, value in entries.items():
            ET.SubElement(element, "entry", name=key).text = value

    for index, account in enumerate(accounts):
        section(
            f"proxy_{index}",
            {
                "reg_proxy": kamailio.proxy_uri("udp"),
                "reg_identity": kamailio.aor(account.username),
                "reg_expires": "60",
                "reg_sendregister": "1",
            },
        )
        section(
            f"auth_info_{index}",
            {
                "username": account.username,
                "passwd": account.password,
                "domain": kamailio.domain,
            },
        )
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


@pytest.fixture
def provisioning_stub() -> Iterator[ProvisioningStub]:
    stub = ProvisioningStub(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.requests.append(SeenRequest(self.path, dict(self.headers.items())))
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(stub.body)))
            self.end_headers()
            self.wfile.write(stub.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="provisioning-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send_notify(kamailio: Kamailio, username: str, timeout: float = 5.0) -> int:
    """Send an out-of-dialog NOTIFY check-sync through the proxy; return the final status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        local_port = sock.getsockname()[1]
        token = uuid.uuid4().hex
        message = (
            f"NOTIFY {kamailio.aor(username)} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{token};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:provisioning@127.0.0.1>;tag={token[:8]}\r\n"
            f"To: <{kamailio.aor(username)}>\r\n"
            f"Call-ID: {token}@127.0.0.1\r\n"
            "CSeq: 1 NOTIFY\r\n"
            f"Contact: <sip:provisioning@127.0.0.1:{local_port}>\r\n"
            "Event: check-sync\r\n"
            "Subscription-State: terminated\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while time.monotonic() < deadline:
            # UDP: retransmit like a SIP client would until a final answer arrives.
            if time.monotonic() >= next_send:
                sock.sendto(message, ("127.0.0.1", kamailio.sip_port))
                next_send = time.monotonic() + 0.5
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            status = int(data.split(b" ", 2)[1])
            if status >= 200:
                return status
    raise AssertionError(f"no final answer to NOTIFY for {username} within {timeout} s")


ALICE = Account("alice", "alice-secret")
BOB = Account("bob", "bob-secret")


def test_provisioned_linphone_registers_both_accounts(
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
    provisioning_stub: ProvisioningStub,
) -> None:
    for account in (ALICE, BOB):
        kamailio.add_user(account.username, account.password)
    provisioning_stub.body = lpconfig_xml(kamailio, [ALICE, BOB])

    phone = linphone_factory(provisioning_stub.url(), user_agent="PeersSelftest/1.0")
    phone.wait_registrations(2, timeout=8)

    assert kamailio.registered_users() == ["alice", "bob"]
    for account in (ALICE, BOB):
        contacts = kamailio.registered_contacts(account.username)
        assert len(contacts) == 1, contacts
        assert contacts[0].startswith(f"sip:{account.username}@127.0.0.1:")
    # The harness's user_agent and URL reach the provisioning server; linphone
    # percent-encodes the colons of the query (":" -> "%3a"), so compare decoded.
    assert len(provisioning_stub.requests) == 1
    url = urllib.parse.urlsplit(provisioning_stub.requests[0].path)
    assert url.path == "/lp/config.xml"
    assert urllib.parse.parse_qs(url.query) == {"mac": ["00:11:22:33:44:55"]}
    assert provisioning_stub.requests[0].headers.get("User-Agent") == "PeersSelftest/1.0"

    # The proxy relays a NOTIFY to the registered phone, which answers it itself.
    assert send_notify(kamailio, "alice") == 200

    # stop() sends quit, which unregisters: no stale binding is left for the next test.
    phone.stop()
    assert kamailio.registered_contacts("alice") == []
    assert kamailio.registered_contacts("bob") == []


def test_wrong_password_does_not_register(
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
    provisioning_stub: ProvisioningStub,
) -> None:
    kamailio.add_user(ALICE.username, ALICE.password)
    provisioning_stub.body = lpconfig_xml(kamailio, [Account(ALICE.username, "not-the-password")])

    phone = linphone_factory(provisioning_stub.url())
    phone.wait_log(REGISTRATION_FAILED, timeout=5)

    assert kamailio.registered_contacts(ALICE.username) == []
    assert phone.registered_identities() == []
    assert "auth failed for alice" in kamailio.log_text()


def test_unknown_user_gets_404_and_clear_registrations(
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
    provisioning_stub: ProvisioningStub,
) -> None:
    kamailio.add_user(BOB.username, BOB.password)
    provisioning_stub.body = lpconfig_xml(kamailio, [BOB])
    phone = linphone_factory(provisioning_stub.url())
    phone.wait_registrations(1, timeout=8)

    # Nobody registered as alice: the proxy answers for the missing phone.
    assert send_notify(kamailio, "alice") == 404

    kamailio.clear_registrations()
    assert kamailio.registered_users() == []
    assert send_notify(kamailio, "bob") == 404
