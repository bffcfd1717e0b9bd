"""The JSON API through the real app: roles, tenancy, problem details, concurrency, secrets."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from provisioning import tokens
from provisioning.api.openapi import openapi_document
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.conftest import World

OTHER_MAC = "001565bbbbbb"


@dataclass
class Api:
    client: TestClient
    world: World
    operator: str
    customer: str
    other_customer: str

    async def call(
        self, method: str, path: str, token: str | None, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await self.client.request(
            method, "/api/v1" + path, headers=headers, json=body, params=params
        )
        text = await resp.text()
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json", (resp.status, text)
        return resp.status, json.loads(text) if text else None


@pytest.fixture
async def api(
    client: TestClient, world: World, sessions: SessionFactory, catalog: Catalog, cipher: Cipher
) -> Api:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
        _, customer = await tokens.create_token(
            session, "customer", account_id=world.account_id, name="alice"
        )
        _, other = await tokens.create_token(
            session, "customer", account_id=world.other_account_id, name="bob"
        )
        await inventory.add_device(
            session, catalog, cipher, OTHER_MAC, "yealink-t46u", world.other_account_id
        )
        await inventory.assign_line(session, OTHER_MAC, world.other_line_id)
    return Api(client, world, operator, customer, other)


def test_openapi_document_is_valid() -> None:
    validate(openapi_document())


async def test_openapi_served_without_token(api: Api) -> None:
    status, doc = await api.call("GET", "/openapi.json", None)
    assert status == 200 and doc["openapi"] == "3.1.0"


@pytest.mark.parametrize("token", [None, "nonsense", "pp_" + "x" * 43])
async def test_unauthenticated(api: Api, token: str | None) -> None:
    status, problem = await api.call("GET", "/accounts", token)
    assert status == 401
    assert problem["type"].endswith("/unauthenticated")


async def test_revoked_and_expired_tokens(api: Api, sessions: SessionFactory, world: World) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from provisioning.db.models import ApiToken, utcnow

    async with sessions() as session, session.begin():
        row, secret = await tokens.create_token(session, "operator")
        _, expiring = await tokens.create_token(session, "operator", expires_days=1)
    assert (await api.call("GET", "/accounts", secret))[0] == 200
    async with sessions() as session, session.begin():
        await tokens.revoke_token(session, row.id)
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id != row.id, ApiToken.expires_at.is_not(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await api.call("GET", "/accounts", secret))[0] == 401
    assert (await api.call("GET", "/accounts", expiring))[0] == 401


async def test_operator_flow(api: Api) -> None:
    status, account = await api.call(
        "POST", "/accounts", api.operator,
        {"name": "Carol", "address": "3 rue Y, 69001 Lyon"},
    )  # fmt: skip
    assert status == 201 and account["address"]["town"] == "Lyon"
    status, line = await api.call(
        "POST", "/lines", api.operator,
        {"account_id": account["id"], "number": "+33400000001", "password": "pw-carol"},
    )  # fmt: skip
    assert status == 201 and "password" not in line and line["device"] is None
    status, device = await api.call(
        "POST", "/devices", api.operator,
        {"mac": "00:15:65:CC:CC:CC", "model": "yealink-t54w", "account_id": account["id"]},
    )  # fmt: skip
    assert status == 201 and device["url"].startswith("http://phones.test:8080/")
    assert device["mac"] == "001565cccccc" and device["state"] == "assigned"
    status, slot = await api.call(
        "POST", "/devices/0015.65cc.cccc/lines", api.operator, {"line_id": line["id"]}
    )
    assert (status, slot["slot"]) == (201, 1)
    status, shown = await api.call("GET", "/devices/00-15-65-cc-cc-cc", api.operator)
    assert shown["slots"] == [{"slot": 1, "line_id": line["id"], "number": "+33400000001"}]
    assert "url" not in shown
    status, page = await api.call("GET", "/devices", api.operator, account=str(account["id"]))
    assert page["total"] == 1 and page["items"][0]["mac"] == "001565cccccc"
    status, _ = await api.call("DELETE", f"/devices/001565cccccc/lines/{line['id']}", api.operator)
    assert status == 204
    status, line_after = await api.call("GET", f"/lines/{line['id']}", api.operator)
    assert line_after["device"] is None


async def test_customer_sees_only_their_account(api: Api) -> None:
    status, page = await api.call("GET", "/accounts", api.customer)
    assert [a["id"] for a in page["items"]] == [api.world.account_id]
    status, page = await api.call("GET", "/devices", api.customer)
    assert {d["mac"] for d in page["items"]} == {api.world.yealink_mac, api.world.linphone_mac}
    status, page = await api.call("GET", "/lines", api.customer)
    assert {line["id"] for line in page["items"]} == set(api.world.line_ids)
    status, changed = await api.call(
        "PATCH", f"/lines/{api.world.line_ids[0]}", api.customer, {"display_name": "Bureau"}
    )
    assert (status, changed["display_name"]) == (200, "Bureau")


async def test_every_route_as_the_wrong_customer(api: Api) -> None:
    """Bob's token against Alice's objects: the same 404 as for objects that do not exist."""
    w = api.world
    alice_line, mac = w.line_ids[0], w.yealink_mac
    cases = [
        ("GET", f"/accounts/{w.account_id}", None, {}),
        ("GET", f"/lines/{alice_line}", None, {}),
        ("PATCH", f"/lines/{alice_line}", {"display_name": "pwned"}, {}),
        ("PATCH", f"/lines/{alice_line}", {"password": "pwned"}, {}),
        ("GET", "/lines", None, {"account": str(w.account_id)}),
        ("GET", f"/devices/{mac}", None, {}),
        ("GET", "/devices", None, {"account": str(w.account_id)}),
        ("GET", f"/devices/{mac}/config", None, {}),
        ("GET", f"/devices/{mac}/config", None, {"reveal": "true", "reason": "curious"}),
        ("POST", f"/devices/{mac}/lines", {"line_id": w.line_ids[2]}, {}),
        ("POST", f"/devices/{OTHER_MAC}/lines", {"line_id": w.line_ids[2]}, {}),
        ("DELETE", f"/devices/{mac}/lines/{alice_line}", None, {}),
        ("GET", "/audit", None, {"account": str(w.account_id)}),
    ]
    for method, path, body, params in cases:
        status, problem = await api.call(method, path, api.other_customer, body, **params)
        assert status == 404, (method, path, status, problem)
        assert problem["type"].endswith("/not-found")
        # Identical to a missing object of the same kind, but for the identifier.
        missing = path.replace(f"/lines/{alice_line}", "/lines/999999")
        missing = missing.replace(mac, "0015659fffff")
        missing = missing.replace(f"/accounts/{w.account_id}", "/accounts/999999")
        if missing != path:
            status2, problem2 = await api.call(method, missing, api.other_customer, body, **params)
            assert status2 == 404 and problem2["title"] == problem["title"]
    for method, path, body in [
        ("POST", "/accounts", {"name": "x"}),
        ("POST", "/lines", {"account_id": w.other_account_id, "number": "+331", "password": "p"}),
        ("POST", "/devices", {"mac": "001565000009", "model": "yealink-t46u"}),
        ("GET", "/devices/unknown", None),
    ]:
        status, problem = await api.call(method, path, api.other_customer, body)
        assert status == 403 and problem["type"].endswith("/operator-only"), path
    # Nothing of Alice's changed.
    status, line = await api.call("GET", f"/lines/{alice_line}", api.operator)
    assert line["display_name"] == "Alice 1"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("POST", "/devices", {"mac": "zz", "model": "yealink-t46u"}, 422, "invalid-mac", "mac"),
        ("POST", "/devices", {"mac": "00156500000a", "model": "x-y"}, 422, "unknown-model", "model"),
        ("POST", "/devices", {"mac": "00:15:65:4a:a9:37", "model": "yealink-t46u"}, 409, "device-exists", "mac"),
        ("POST", "/devices", {"mac": 12, "model": "yealink-t46u"}, 422, "invalid-input", "mac"),
        ("POST", "/devices", {"model": "yealink-t46u"}, 422, "invalid-input", "mac"),
        ("POST", "/devices", {"mac": "00156500000a", "model": "yealink-t46u", "evil": 1}, 422, "invalid-input", "evil"),
        ("POST", "/devices", [1, 2], 422, "invalid-input", "body"),
        ("POST", "/devices/0015654aa937/lines", {"line_id": "{line0}"}, 409, "line-has-phone", None),
        ("POST", "/devices/0015654aa937/lines", {"line_id": "{line2}", "slot": 1}, 409, "slot-taken", None),
        ("POST", "/devices/0015654aa937/lines", {"line_id": "{line2}", "slot": 99}, 422, "invalid-input", "slot"),
        ("POST", "/devices/0015654aa937/lines", {"line_id": True}, 422, "invalid-input", "line_id"),
        ("POST", "/lines", {"account_id": "{account}", "number": "abc", "password": "p"}, 422, "invalid-input", "number"),
        ("PATCH", "/lines/{line0}", {"display_name": "a\nb"}, 422, "invalid-input", "display_name"),
        ("GET", "/devices/not-a-mac", None, 422, "invalid-mac", "mac"),
        ("GET", "/devices?limit=0", None, 422, "invalid-input", "limit"),
        ("GET", "/devices?state=lost", None, 422, "invalid-input", "state"),
        ("GET", "/devices?seen_since=yesterday", None, 422, "invalid-input", "seen_since"),
        ("GET", "/devices/0015654aa937/config?reveal=true", None, 422, "invalid-input", "reason"),
        ("GET", "/accounts/0", None, 422, "invalid-input", "account_id"),
        ("GET", "/nothing/here", None, 404, "not-found", None),
    ],
)  # fmt: skip
async def test_problem_details(
    api: Api, method: str, path: str, body: Any, status: int, code: str, field: str | None
) -> None:
    lines = {f"{{line{i}}}": n for i, n in enumerate(api.world.line_ids)}
    lines["{account}"] = api.world.account_id
    if isinstance(body, dict):
        body = {k: lines.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
        body = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in body.items()}
    for placeholder, line_id in lines.items():
        path = path.replace(placeholder, str(line_id))
    path, _, query = path.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    got, problem = await api.call(method, path, api.operator, body, **params)
    assert got == status, problem
    assert problem["type"].endswith("/" + code)
    assert problem["status"] == status
    assert problem.get("field") == field


async def test_config_preview_masks_secrets_unless_revealed_with_a_reason(api: Api) -> None:
    mac = api.world.yealink_mac
    status, preview = await api.call("GET", f"/devices/{mac}/config", api.customer)
    text = json.dumps(preview)
    assert status == 200 and preview["masked"] is True
    assert "secret-1" not in text and api.world.yealink_token not in text
    assert "account.1.password = ********" in preview["files"]["0015654aa937.cfg"]
    status, revealed = await api.call(
        "GET", f"/devices/{mac}/config", api.operator, reveal="true", reason="ticket 42"
    )
    assert "account.1.password = secret-1" in revealed["files"]["0015654aa937.cfg"]
    status, trail = await api.call("GET", "/audit", api.operator, device=mac)
    reveal = [e for e in trail["items"] if e["action"] == "config.reveal"]
    assert reveal and reveal[0]["after"] == {"reason": "ticket 42"}
    assert reveal[0]["actor"] == "operator:ops" and reveal[0]["ip"] == "127.0.0.1"


async def test_no_secret_in_any_response_or_the_audit_trail(api: Api) -> None:
    await api.call("PATCH", f"/lines/{api.world.line_ids[0]}", api.operator, {"password": "n3w-pw"})
    seen = []
    for path in ["/accounts", "/lines", "/devices", "/audit", f"/lines/{api.world.line_ids[0]}",
                 f"/devices/{api.world.yealink_mac}", f"/devices/{api.world.yealink_mac}/config"]:  # fmt: skip
        status, body = await api.call("GET", path, api.operator, limit="500")
        assert status == 200, path
        seen.append(json.dumps(body))
    everything = "".join(seen)
    for secret in ["secret-1", "secret-2", "secret-3", "bob-secret", "n3w-pw",
                   api.world.yealink_token, api.world.linphone_token]:  # fmt: skip
        assert secret not in everything


async def test_audit_per_account_and_device(api: Api) -> None:
    await api.call(
        "POST", f"/devices/{api.world.yealink_mac}/lines", api.customer,
        {"line_id": api.world.line_ids[2]},
    )  # fmt: skip
    status, trail = await api.call("GET", "/audit", api.customer)
    assert status == 200
    assert {e["account_id"] for e in trail["items"]} == {api.world.account_id}
    latest = trail["items"][0]
    assert latest["action"] == "device.assign" and latest["actor"] == "customer:alice"
    assert latest["after"] == {"line_id": api.world.line_ids[2], "slot": 3}
    status, trail = await api.call("GET", "/audit", api.operator, device=api.world.yealink_mac)
    assert {e["device"] for e in trail["items"]} == {api.world.yealink_mac}


async def test_race_for_the_last_free_slot(
    api: Api, sessions: SessionFactory, catalog: Catalog, cipher: Cipher
) -> None:
    from provisioning import accounts
    from provisioning.settings import Settings

    async with sessions() as session, session.begin():
        await inventory.add_device(
            session, catalog, cipher, "001565000002", "yealink-t21p_e2", api.world.account_id
        )
        await inventory.assign_line(session, "001565000002", api.world.line_ids[2])
        extra = []
        for n in range(2):
            line = await accounts.create_line(
                session, Settings(), cipher, api.world.account_id, f"+3350000000{n}", password="p"
            )
            extra.append(line.id)
    results = await asyncio.gather(
        *(
            api.call("POST", "/devices/001565000002/lines", api.customer, {"line_id": line_id})
            for line_id in extra
        )
    )
    assert sorted(status for status, _ in results) == [201, 409]
    problem = next(body for status, body in results if status == 409)
    assert problem["type"].endswith(("/no-free-slot", "/slot-taken"))


async def test_race_for_the_same_line_on_two_devices(
    api: Api, sessions: SessionFactory, catalog: Catalog, cipher: Cipher
) -> None:
    async with sessions() as session, session.begin():
        await inventory.add_device(
            session, catalog, cipher, "001565000003", "yealink-t46u", api.world.account_id
        )
    line = api.world.line_ids[2]
    results = await asyncio.gather(
        api.call(
            "POST", f"/devices/{api.world.yealink_mac}/lines", api.customer, {"line_id": line}
        ),
        api.call("POST", "/devices/001565000003/lines", api.customer, {"line_id": line}),
    )
    assert sorted(status for status, _ in results) == [201, 409]
    _status, shown = await api.call("GET", f"/lines/{line}", api.operator)
    assert shown["device"] in {api.world.yealink_mac, "001565000003"}


async def test_cli_and_api_give_the_same_result(
    api: Api, settings: Settings, sessions: SessionFactory, tmp_path: Path
) -> None:
    """Both paths call the same domain functions: the same device view comes out of each."""
    from tests.test_cli import Cli

    cli = Cli(settings, tmp_path)
    w = api.world
    await asyncio.to_thread(cli.run, "device", "assign", w.yealink_mac, str(w.line_ids[2]))
    _, after_cli = await api.call("GET", f"/devices/{w.yealink_mac}", api.operator)
    await api.call("DELETE", f"/devices/{w.yealink_mac}/lines/{w.line_ids[2]}", api.operator)
    status, _ = await api.call(
        "POST", f"/devices/{w.yealink_mac}/lines", api.operator, {"line_id": w.line_ids[2]}
    )
    assert status == 201
    _, after_api = await api.call("GET", f"/devices/{w.yealink_mac}", api.operator)
    shown = json.loads(
        (await asyncio.to_thread(cli.run, "device", "show", w.yealink_mac, "--json")).stdout
    )
    assert after_cli["slots"] == after_api["slots"] == shown["slots"]
    assert after_api["config_revision"] == after_cli["config_revision"] + 2
    assert {k: v for k, v in shown.items() if k not in ("url", "current_revision")} == {
        k: v for k, v in after_api.items() if k != "current_revision"
    }
    status, trail = await api.call("GET", "/audit", api.operator, device=w.yealink_mac)
    actors = [e["actor"] for e in trail["items"] if e["action"] == "device.assign"][:2]
    assert actors[0] == "operator:ops" and actors[1].startswith("cli:")
