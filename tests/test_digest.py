"""HTTP digest (RFC 7616) on the phone endpoint, answered as a phone answers: a real challenge,
responses computed with MD5 and SHA-256 from the password the phone's own config carries, and
the attacks on it — replay (on the same and on another instance), another file, a forged or an
expired nonce, guessed passwords."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import SourceMisses
from provisioning.security.credentials import rotate_credential
from provisioning.security.digest import Nonces, parse_authorization
from provisioning.settings import Settings
from provisioning.state import SERVICES
from tests.conftest import YEALINK_UA, World
from tests.security_kit import client_from, digest_header, parse_challenge, running

pytestmark = pytest.mark.usefixtures("world")
MAC = "0015654aa937"
FILE = f"/{MAC}.cfg"


@pytest.fixture
def digest_settings(settings: Settings) -> Settings:
    # Digest alone is enough (`any`), and credential-less requests are challenged.
    return replace(settings, digest=True, auth_proofs="any", ban_window=86_400)


@pytest.fixture
async def password(sessions: SessionFactory, settings: Settings) -> str:
    """Issue the Yealink's digest credential and read it back from the config it is given."""
    async with sessions() as session, session.begin():
        await rotate_credential(session, Cipher(settings.secret_key), MAC, "digest", overlap=0)
    from provisioning.render.snapshot import find_device, load_device_data

    async with sessions() as session:
        device = await find_device(session, mac=MAC)
        assert device is not None
        data = await load_device_data(session, device, Cipher(settings.secret_key), settings)
    assert data.http_username == MAC and len(data.http_password) == 24
    return data.http_password


@pytest.fixture
async def client(
    aiohttp_client: Any, digest_settings: Settings, sessions: SessionFactory
) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_app(digest_settings))  # type: ignore[no-any-return]


async def challenge(client: TestClient, path: str = FILE) -> dict[str, str]:  # type: ignore[type-arg]
    resp = await client.get(path, headers={"User-Agent": YEALINK_UA})
    assert resp.status == 401
    assert await resp.read() == b""
    offered = resp.headers.getall("WWW-Authenticate")
    assert [parse_challenge(v)["algorithm"] for v in offered] == ["SHA-256", "MD5"]
    return parse_challenge(offered[0])


async def fetch(client: TestClient, path: str, authorization: str) -> tuple[int, str]:  # type: ignore[type-arg]
    resp = await client.get(
        path, headers={"User-Agent": YEALINK_UA, "Authorization": authorization}
    )
    return resp.status, await resp.text()


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
async def test_a_phone_answers_the_challenge_and_gets_its_config(
    client: TestClient,
    password: str,
    algorithm: str,  # type: ignore[type-arg]
) -> None:
    c = await challenge(client)
    assert c["realm"] == "provisioning" and c["qop"] == "auth"
    header = digest_header(
        username=MAC,
        password=password,
        realm=c["realm"],
        nonce=c["nonce"],
        uri=FILE,
        algorithm=algorithm,
    )
    status, body = await fetch(client, FILE, header)
    assert status == 200
    assert "account.1.password = secret-1" in body
    # The phone's config carries the credential it answers with.
    assert f"static.auto_provision.server.username = {MAC}" in body
    assert f"static.auto_provision.server.password = {password}" in body


async def test_a_phone_reuses_its_nonce_with_a_growing_count(
    client: TestClient, password: str
) -> None:  # type: ignore[type-arg]
    c = await challenge(client)
    for nc, path in enumerate([f"/{MAC}.boot", "/y000000000108.cfg", FILE], start=1):
        header = digest_header(
            username=MAC, password=password, realm=c["realm"], nonce=c["nonce"], uri=path, nc=nc
        )
        status, _ = await fetch(client, path, header)
        assert status == 200, path


async def test_a_replayed_authorization_header_is_refused(
    client: TestClient, password: str
) -> None:  # type: ignore[type-arg]
    c = await challenge(client)
    header = digest_header(
        username=MAC, password=password, realm=c["realm"], nonce=c["nonce"], uri=FILE
    )
    assert (await fetch(client, FILE, header))[0] == 200
    status, body = await fetch(client, FILE, header)
    assert status == 401 and body == ""


async def test_a_replay_on_another_instance_is_refused(
    digest_settings: Settings, password: str, world: World
) -> None:
    async with (
        running(digest_settings) as first,
        running(digest_settings) as second,
        client_from("127.0.0.1") as phone,
        client_from("127.0.6.6") as thief,
    ):
        async with phone.get(first.url(FILE)) as resp:
            c = parse_challenge(resp.headers.getall("WWW-Authenticate")[1])
        header = digest_header(
            username=MAC, password=password, realm=c["realm"], nonce=c["nonce"], uri=FILE
        )
        async with phone.get(first.url(FILE), headers={"Authorization": header}) as resp:
            assert resp.status == 200
        # Captured on the wire and sent to the other instance behind the load balancer.
        async with thief.get(second.url(FILE), headers={"Authorization": header}) as resp:
            assert (resp.status, await resp.read()) == (401, b"")


async def test_an_answer_for_one_file_does_not_open_another(
    client: TestClient, password: str
) -> None:  # type: ignore[type-arg]
    c = await challenge(client, "/y000000000108.cfg")
    header = digest_header(
        username=MAC,
        password=password,
        realm=c["realm"],
        nonce=c["nonce"],
        uri="/y000000000108.cfg",
    )
    status, body = await fetch(client, FILE, header)
    assert status == 401 and "password" not in body


@pytest.mark.parametrize(
    "change",
    [
        {"password": "guessed-password"},
        {"username": "001565000001"},  # a MAC that does not exist
        {"username": "0015654AA937"},  # the right MAC, another spelling than the credential's
        {"realm": "elsewhere"},
    ],
)
async def test_wrong_answers_get_the_same_challenge(
    client: TestClient,
    password: str,
    change: dict[str, str],  # type: ignore[type-arg]
) -> None:
    c = await challenge(client)
    fields = {"username": MAC, "password": password, "realm": c["realm"]} | change
    header = digest_header(nonce=c["nonce"], uri=FILE, **fields)
    resp = await client.get(FILE, headers={"Authorization": header})
    assert resp.status == 401 and await resp.read() == b""
    assert "stale" not in resp.headers["WWW-Authenticate"]
    # The request id differs per request and says nothing about the device.
    assert set(resp.headers) - {"Date", "Server", "X-Request-ID"} == {
        "WWW-Authenticate",
        "Content-Length",
    }


async def test_forged_and_expired_nonces(
    client: TestClient, password: str, digest_settings: Settings
) -> None:  # type: ignore[type-arg]
    nonces = Nonces(digest_settings.secret_key, digest_settings.digest_nonce_seconds)
    expired = nonces.issue(now=time.time() - digest_settings.digest_nonce_seconds - 60)
    header = digest_header(
        username=MAC, password=password, realm="provisioning", nonce=expired, uri=FILE
    )
    resp = await client.get(FILE, headers={"Authorization": header})
    assert resp.status == 401
    assert all("stale=true" in v for v in resp.headers.getall("WWW-Authenticate"))
    forged = Nonces(("x" * 43 + "=",), 300).issue()
    header = digest_header(
        username=MAC, password=password, realm="provisioning", nonce=forged, uri=FILE
    )
    resp = await client.get(FILE, headers={"Authorization": header})
    assert resp.status == 401 and "stale" not in resp.headers["WWW-Authenticate"]


async def test_guessing_passwords_ends_in_a_ban(
    client: TestClient,
    password: str,
    sessions: SessionFactory,  # type: ignore[type-arg]
) -> None:
    guesses = 0
    while (resp := await client.get(FILE)).status == 401:
        c = parse_challenge(resp.headers.getall("WWW-Authenticate")[1])
        header = digest_header(
            username=MAC, password=f"guess-{guesses}", realm=c["realm"], nonce=c["nonce"], uri=FILE
        )
        assert (await client.get(FILE, headers={"Authorization": header})).status == 401
        guesses += 1
        assert guesses < 100
    # Each guess: a challenge (a quarter of a miss) and a failed answer (a miss); 20 misses.
    assert (resp.status, guesses) == (403, 16)
    async with sessions() as session:
        assert await session.get(SourceMisses, "127.0.0.1") is not None


async def test_unanswered_challenges_weigh_a_quarter_of_a_miss(
    aiohttp_client: Any, digest_settings: Settings, sessions: SessionFactory
) -> None:
    client = await aiohttp_client(create_app(replace(digest_settings, ban_threshold=5)))
    statuses = [(await client.get(f"/0015650000{n:02x}.cfg")).status for n in range(21)]
    assert statuses[:20] == [401] * 20 and statuses[20] == 403


async def test_the_token_and_digest_policy_wants_both(
    aiohttp_client: Any, digest_settings: Settings, password: str, world: World
) -> None:
    client = await aiohttp_client(create_app(replace(digest_settings, auth_proofs="token+digest")))
    path = f"/{world.yealink_token}/{MAC}.cfg"
    resp = await client.get(path)
    assert resp.status == 401  # the token alone is not enough
    c = parse_challenge(resp.headers.getall("WWW-Authenticate")[0])
    header = digest_header(
        username=MAC,
        password=password,
        realm=c["realm"],
        nonce=c["nonce"],
        uri=path,
        algorithm="SHA-256",
    )
    status, body = await fetch(client, path, header)
    assert status == 200 and "secret-1" in body
    # The digest alone neither: a missing token cannot be asked for, so the usual 404.
    c = await challenge(client)
    header = digest_header(
        username=MAC, password=password, realm=c["realm"], nonce=c["nonce"], uri=FILE
    )
    assert (await fetch(client, FILE, header))[0] == 404


async def test_without_the_setting_nobody_is_challenged(
    aiohttp_client: Any, settings: Settings, world: World
) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get(FILE)
    assert (resp.status, await resp.read()) == (404, b"")
    assert "WWW-Authenticate" not in resp.headers


@pytest.mark.parametrize(
    "header",
    [
        "Digest",
        'Digest username="a"',
        'Digest username="0015654aa937", realm="provisioning", nonce="x", uri="/", response="y", qop=auth, nc=1, cnonce="z"',
        'Digest username="0015654aa937", username="b", realm="r", nonce="n", uri="/u", response="r", qop=auth, nc=00000001, cnonce="c"',
        'Digest username="0015654aa937", realm="r", nonce="n", uri="/u", response="r", qop=auth-int, nc=00000001, cnonce="c"',
        'Digest username="\\"; drop", realm="r", nonce="n", uri="/u", response="r", qop=auth, nc=00000001, cnonce="c", userhash=true',
        "Digest " + "a=b, " * 2000,
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_malformed_answers_never_fail_the_server(client: TestClient, header: str) -> None:  # type: ignore[type-arg]
    if header.startswith("Digest ") and len(header) < 4096:
        assert parse_authorization(header) is None
    resp = await client.get(FILE, headers={"Authorization": header})
    assert resp.status in (400, 401)
    assert b"password" not in await resp.read()


def test_answers_are_parsed_with_quoted_commas_and_escapes() -> None:
    header = (
        'Digest username="0015654aa937",realm="a, b",nonce="n",uri="/f?x=1,2",'
        'response="ABC",qop=auth,nc=0000000A,cnonce="c\\"q",algorithm=sha-256'
    )
    answer = parse_authorization(header)
    assert answer is not None
    assert (answer.realm, answer.uri, answer.response, answer.nc, answer.cnonce, answer.algorithm) == (
        "a, b", "/f?x=1,2", "abc", "0000000a", 'c"q', "SHA-256",
    )  # fmt: skip


async def test_the_challenge_names_no_device(client: TestClient) -> None:  # type: ignore[type-arg]
    """Known MAC, unknown MAC, common file: the same challenge, so it tells nothing."""
    shapes = set()
    for path in (FILE, "/001565000001.cfg", "/y000000000108.cfg"):
        resp = await client.get(path)
        assert resp.status == 401
        shapes.add(re.sub(r'nonce="[^"]+"', "", resp.headers["WWW-Authenticate"]))
    assert len(shapes) == 1


async def test_credentials_stay_out_of_logs(
    client: TestClient,
    password: str,
    caplog: pytest.LogCaptureFixture,  # type: ignore[type-arg]
) -> None:
    with caplog.at_level("DEBUG"):
        c = await challenge(client)
        header = digest_header(
            username=MAC, password=password, realm=c["realm"], nonce=c["nonce"], uri=FILE
        )
        await fetch(client, FILE, header)
        await fetch(client, FILE, header)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert password not in text


async def test_services_hold_the_nonce_key_derived_from_the_secret_key(client: TestClient) -> None:  # type: ignore[type-arg]
    nonces = client.app[SERVICES].guard.nonces  # type: ignore[union-attr]
    assert nonces.check(nonces.issue()) == "fresh"


async def test_a_wrong_password_for_a_real_mac_looks_like_an_unknown_mac(
    aiohttp_client: Any, digest_settings: Settings, password: str
) -> None:
    """Whatever the device's policy (here one digest alone cannot meet), an answer that does not
    verify gets what an unknown username gets."""
    client = await aiohttp_client(create_app(replace(digest_settings, auth_proofs="token+digest")))
    answers = []
    for username in (MAC, "001565000001"):
        c = await challenge(client)
        header = digest_header(
            username=username, password="wrong", realm=c["realm"], nonce=c["nonce"], uri=FILE
        )
        resp = await client.get(FILE, headers={"Authorization": header})
        answers.append((resp.status, await resp.read(), sorted(resp.headers)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


async def test_the_username_shape_is_a_setting(
    aiohttp_client: Any, digest_settings: Settings, sessions: SessionFactory, world: World
) -> None:
    colon = "00:15:65:4a:a9:37"
    async with sessions() as session, session.begin():
        rotation = await rotate_credential(
            session, Cipher(digest_settings.secret_key), MAC, "digest",
            overlap=0, username_shape="mac_colon",
        )  # fmt: skip
    assert rotation.username == colon
    client = await aiohttp_client(create_app(replace(digest_settings, digest_username="mac_colon")))
    body = await (await client.get(f"/{world.yealink_token}/{MAC}.cfg")).text()
    assert f"static.auto_provision.server.username = {colon}" in body
    found = re.search(r"^static\.auto_provision\.server\.password = (\S+)$", body, re.M)
    assert found is not None
    for username, status in ((colon, 200), (MAC, 401)):  # the credential's own spelling only
        c = await challenge(client)
        header = digest_header(
            username=username, password=found.group(1), realm=c["realm"], nonce=c["nonce"], uri=FILE
        )
        assert (await fetch(client, FILE, header))[0] == status, username
