"""Unknown devices claimed in bulk (`unknown.claim_unknown`): by a MAC list or a CSV file, from
the CLI and the API, all or nothing, with the single claim's rules (MAC, model, account, token,
audit, off the list)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from provisioning.audit import Actor
from provisioning.crypto import Cipher, token_hash
from provisioning.db.engine import SessionFactory
from provisioning.db.models import AuditEvent, Device, UnknownDevice
from provisioning.devices import unknown
from provisioning.devices.catalog import Catalog
from provisioning.devices.unknown import ClaimRequest, UnknownFacts, claim_unknown, record_unknown
from provisioning.settings import Settings
from tests.conftest import World
from tests.test_api import Api, api  # noqa: F401  (the fixture)
from tests.test_cli import Cli

T54W_UA = "Yealink SIP-T54W 96.86.0.45 24:9a:d8:01:02:03"
SEEN = ("249ad8010203", "249ad8010204", "249ad8010205")
BASE = "http://prov.example.net"


async def seen(sessions: SessionFactory, *macs: str, ua_model: str | None = "T54W") -> None:
    """Phones that asked for their files unregistered, recorded as the phone route does."""
    async with sessions() as session, session.begin():
        for mac in macs:
            await record_unknown(
                session,
                UnknownFacts(
                    mac=mac,
                    family="yealink",
                    ua_model=ua_model,
                    seen_at=datetime.now(UTC),
                    ip="192.0.2.10",
                    user_agent=T54W_UA,
                    file_name=f"{mac}.cfg",
                ),
            )


async def state(sessions: SessionFactory) -> dict[str, Any]:
    async with sessions() as session:
        devices = {
            mac: (model, account)
            for mac, model, account in (
                await session.execute(select(Device.mac, Device.model_id, Device.account_id))
            ).all()
        }
        listed = set((await session.scalars(select(UnknownDevice.mac))).all())
        audit = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "device.create")
        )
    return {"devices": devices, "unknown": listed, "audit": audit}


async def claim(
    sessions: SessionFactory,
    catalog: Catalog,
    settings: Settings,
    claims: list[ClaimRequest],
    *,
    dry_run: bool = False,
) -> unknown.ClaimReport:
    async with sessions() as session, session.begin():
        return await claim_unknown(
            session, catalog, Cipher(settings.secret_key), BASE, claims, dry_run=dry_run,
            actor=Actor("cli:tester"),
        )  # fmt: skip


def where(report: unknown.ClaimReport) -> list[tuple[int | None, str | None]]:
    return [(p.row, p.column) for p in report.problems]


# -- the domain function --------------------------------------------------------------------


async def test_a_claim_registers_each_phone_as_the_single_claim_does(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> None:
    await seen(sessions, *SEEN)
    claims = [
        ClaimRequest(1, "24:9A:D8:01:02:03", None, world.account_id),  # model from the UA
        ClaimRequest(2, "249ad8010204", "yealink-t46u", world.account_id),
        ClaimRequest(3, "249a.d801.0205"),  # stock
    ]
    dry = await claim(sessions, catalog, settings, claims, dry_run=True)
    assert dry.problems == [] and not dry.committed
    assert [c["mac"] for c in dry.claimed] == list(SEEN)
    assert all("url" not in c for c in dry.claimed)
    before = await state(sessions)
    assert before["unknown"] == set(SEEN)

    report = await claim(sessions, catalog, settings, claims)
    assert report.problems == [] and report.committed
    after = await state(sessions)
    assert {mac: after["devices"][mac] for mac in SEEN} == {
        SEEN[0]: ("yealink-t54w", world.account_id),
        SEEN[1]: ("yealink-t46u", world.account_id),
        SEEN[2]: ("yealink-t54w", None),
    }
    assert after["unknown"] == set() and after["audit"] == before["audit"] + 3
    # The URL is the device's: its token stored hashed (and encrypted), shown this once.
    async with sessions() as session:
        for view in report.claimed:
            token = view["url"].removeprefix(BASE + "/").rstrip("/")
            device = await session.scalar(select(Device).where(Device.mac == view["mac"]))
            assert device is not None and device.token_hash == token_hash(token)
            assert token not in device.token_enc
            assert device.state == ("stock" if view["account_id"] is None else "assigned")
        actors = set(
            (
                await session.scalars(
                    select(AuditEvent.actor).where(AuditEvent.action == "device.create")
                )
            ).all()
        )
        assert "cli:tester" in actors
    assert "claimed 3 phone(s)" in report.human()


async def test_one_problem_and_none_is_claimed(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> None:
    await seen(sessions, *SEEN)
    await seen(sessions, "249ad8010206", ua_model="T99X")  # a model the catalog does not have
    claims = [
        ClaimRequest(1, SEEN[0], None, world.account_id),  # good
        ClaimRequest(2, "not-a-mac"),
        ClaimRequest(3, "24-9A-D8-01-02-03"),  # row 1's phone again
        ClaimRequest(4, "0015654aa999"),  # never seen
        ClaimRequest(5, world.yealink_mac),  # registered already
        ClaimRequest(6, "249ad8010206"),  # no model given, none guessed
        ClaimRequest(7, SEEN[1], "yealink-t99"),  # unknown model
        ClaimRequest(8, SEEN[2], None, 999_999),  # no such account
    ]
    before = await state(sessions)
    for dry_run in (True, False):
        report = await claim(sessions, catalog, settings, claims, dry_run=dry_run)
        assert where(report) == [
            (2, "mac"),
            (3, "mac"),
            (4, "mac"),
            (5, "mac"),
            (6, "model"),
            (7, "model"),
            (8, "account_id"),
        ]
        assert report.claimed == [] and not report.committed
        assert await state(sessions) == before
    messages = [p.message for p in report.problems]
    assert "also on row 1" in messages[1] and "not among the unknown" in messages[2]
    assert "registered already" in messages[3] and "T99X" in messages[4]
    assert "unknown model" in messages[5] and "not found" in messages[6]
    assert report.human().splitlines()[-1].startswith("claim refused: 7 problem(s)")
    empty = await claim(sessions, catalog, settings, [])
    assert where(empty) == [(None, None)]


def test_claims_from_a_csv_file() -> None:
    problems: list[unknown.Problem] = []
    data = (
        "\ufeffMAC;Model;account_id\r\n249ad8010203;yealink-t54w;7\r\n;;\r\n249ad8010204;;\r\n"
    ).encode()
    claims = unknown.parse_claims_csv(data, problems)
    assert problems == []
    assert claims == [
        ClaimRequest(2, "249ad8010203", "yealink-t54w", 7),
        ClaimRequest(4, "249ad8010204", None, None),
    ]
    for bad, found in (
        (b"mac,colour\r\nx,y\r\n", [(1, "colour")]),
        (b"model\r\nyealink-t54w\r\n", [(1, None)]),
        (b"mac,account_id\r\n249ad8010203,first\r\n", [(2, "account_id")]),
        (b"mac\r\n249ad8010203,extra\r\n", [(2, None)]),
        (b"mac\r\n\xe9\r\n", [(2, None)]),
        (b"", [(None, None)]),
    ):
        problems = []
        unknown.parse_claims_csv(bad, problems)
        assert [(p.row, p.column) for p in problems] == found, bad


# -- the API --------------------------------------------------------------------------------


async def post(
    to: Api, token: str | None, body: bytes | io.BytesIO, content_type: str, **params: str
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = await to.client.post(
        "/api/v1/devices/unknown/claims", data=body, headers=headers, params=params
    )
    text = await resp.text()
    expected = "application/problem+json" if resp.status >= 400 else "application/json"
    assert resp.content_type == expected, (resp.status, text)
    return resp.status, json.loads(text)


async def test_the_api_claims_a_mac_list_or_a_csv_file(
    api: Api,  # noqa: F811
    client: TestClient,
    sessions: SessionFactory,
) -> None:
    await seen(sessions, *SEEN)
    macs = json.dumps({"macs": list(SEEN[:2]), "account_id": api.world.account_id}).encode()
    status, dry = await post(api, api.operator, macs, "application/json", dry_run="true")
    assert status == 200 and dry["dry_run"] and not dry["committed"]
    assert (await state(sessions))["unknown"] == set(SEEN)

    status, done = await post(api, api.operator, macs, "application/json")
    assert status == 201 and done["committed"]
    assert [(c["mac"], c["model"]) for c in done["claimed"]] == [
        (SEEN[0], "yealink-t54w"),
        (SEEN[1], "yealink-t54w"),
    ]
    # The phone, booting again, now gets its file at the URL the claim gave.
    path = done["claimed"][0]["url"].split("/", 3)[3]
    resp = await client.get(f"/{path}{SEEN[0]}.cfg", headers={"User-Agent": T54W_UA})
    assert resp.status == 200 and b"account.1" in await resp.read()
    async with sessions() as session:
        actors = (
            await session.scalars(select(AuditEvent.actor).where(AuditEvent.device_mac == SEEN[0]))
        ).all()
    assert actors == ["operator:ops"]

    csv = f"mac,model\r\n{SEEN[2]},yealink-t46u\r\n".encode()
    status, done = await post(api, api.operator, csv, "text/csv")
    assert status == 201 and done["claimed"][0]["model"] == "yealink-t46u"
    assert done["claimed"][0]["account_id"] is None
    assert (await state(sessions))["unknown"] == set()


async def test_the_api_refuses_with_problems(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await seen(sessions, *SEEN)
    before = await state(sessions)
    good = json.dumps({"macs": [SEEN[0]]}).encode()
    status, problem = await post(api, api.customer, good, "application/json")
    assert status == 403 and problem["type"].endswith("/operator-only")
    status, problem = await post(api, api.operator, good, "text/plain")
    assert status == 415
    status, problem = await post(api, api.operator, good, "application/json", dry_run="maybe")
    assert status == 422 and problem["field"] == "dry_run"
    for body, field in (
        (b"[]", "body"),
        (json.dumps({"macs": "249ad8010203"}).encode(), "macs"),
        (json.dumps({"macs": [1, 2]}).encode(), "macs"),
        (json.dumps({"macs": [SEEN[0]], "account_id": 0}).encode(), "account_id"),
        (json.dumps({"macs": [SEEN[0]], "colour": "red"}).encode(), "colour"),
        (json.dumps({"model": "yealink-t46u"}).encode(), "macs"),
    ):
        status, problem = await post(api, api.operator, body, "application/json")
        assert status == 422 and problem["field"] == field, body
    mixed = json.dumps({"macs": [SEEN[0], "0015654aa999", SEEN[1]]}).encode()
    status, problem = await post(api, api.operator, mixed, "application/json")
    assert status == 422 and problem["type"].endswith("/claim-refused")
    assert [(p["row"], p["column"]) for p in problem["report"]["problems"]] == [(2, "mac")]
    assert problem["report"]["claimed"] == []
    status, problem = await post(api, api.operator, b"mac,colour\r\n", "text/csv")
    assert status == 422 and problem["report"]["problems"][0]["column"] == "colour"
    big = json.dumps({"macs": ["249ad8010203"] * 80_000}).encode()
    status, problem = await post(api, api.operator, io.BytesIO(big), "application/json")
    assert status == 413
    assert await state(sessions) == before


# -- the command ----------------------------------------------------------------------------


async def test_the_claim_command(
    settings: Settings, sessions: SessionFactory, tmp_path: Path, world: World
) -> None:
    await seen(sessions, *SEEN)
    cli = Cli(settings, tmp_path)
    refused = cli.run("device", "claim", SEEN[0], "0015654aa999", "--json", ok=False)
    assert refused.returncode == 1
    problems = json.loads(refused.stdout)["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(2, "mac")]
    assert (await state(sessions))["unknown"] == set(SEEN)

    dry = cli.run("device", "claim", SEEN[0], SEEN[1], "--dry-run").stdout
    assert "would be claimed" in dry
    done = cli.json("device", "claim", SEEN[0], SEEN[1], "--model", "yealink-t46u")
    assert [c["model"] for c in done["claimed"]] == ["yealink-t46u"] * 2
    assert all(c["url"].startswith("http://prov.example.net/") for c in done["claimed"])

    listing = tmp_path / "claims.csv"
    listing.write_text(f"mac;account_id\n{SEEN[2]};999999\n", encoding="utf-8")
    wrong = cli.run("device", "claim", "--file", str(listing), "--model", "x", ok=False)
    assert wrong.returncode == 1 and "a file gives them" in wrong.stderr
    missing = cli.run("device", "claim", "--file", str(listing), ok=False)
    assert missing.returncode == 1
    assert missing.stdout.startswith("row 2, column account_id: account 999999 not found")
    listing.write_text(f"mac;account_id\n{SEEN[2]};{world.account_id}\n", encoding="utf-8")
    text = cli.run("device", "claim", "--file", str(listing)).stdout
    assert f"{SEEN[2]}\tyealink-t54w\taccount {world.account_id}\thttp://" in text
    assert text.splitlines()[-1] == "claimed 1 phone(s)"
    assert (await state(sessions))["unknown"] == set()
    neither = cli.run("device", "claim", ok=False)
    assert neither.returncode == 1 and "give MACs or --file" in neither.stderr
