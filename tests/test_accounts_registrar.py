"""A line's registrar takes the forms its setting takes (`provisioning.sip.address`, one parser
for both): host, host:port, udp:/tcp:/tls: prefixes, sip: URIs with ;transport=, [IPv6]:port.
The transport it names is stored and rendered; a form refused changes nothing. Through the API
and the CLI."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Line
from provisioning.sip.address import SipAddressError, parse_sip_address
from tests.test_api import Api, api  # noqa: F401  (the fixture)
from tests.test_cli import Cli, cli  # noqa: F401  (the fixture)


async def _line_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Line)) or 0)


async def _stored(sessions: SessionFactory, line_id: int) -> tuple[str, int, str]:
    async with sessions() as session:
        line = await session.get(Line, line_id)
        assert line is not None
        return line.registrar_host, line.registrar_port, line.transport


@pytest.mark.parametrize(
    ("registrar", "transport", "stored"),
    [
        ("pbx.example.net", None, ("pbx.example.net", 5060, "udp")),
        ("pbx.example.net:5070", None, ("pbx.example.net", 5070, "udp")),
        ("pbx.example.net", "tcp", ("pbx.example.net", 5060, "tcp")),
        # No port named: the transport's own, even when it is chosen apart from the registrar.
        ("pbx.example.net", "tls", ("pbx.example.net", 5061, "tls")),
        ("pbx.example.net:5060", "tls", ("pbx.example.net", 5060, "tls")),
        ("tcp:pbx.example.net:5070", None, ("pbx.example.net", 5070, "tcp")),
        ("TLS:pbx.example.net", None, ("pbx.example.net", 5061, "tls")),
        ("udp:10.0.0.1", None, ("10.0.0.1", 5060, "udp")),
        ("sip:pbx.example.net;transport=tcp", None, ("pbx.example.net", 5060, "tcp")),
        ("sip:pbx.example.net:5080;transport=tls", "tls", ("pbx.example.net", 5080, "tls")),
        ("[2001:DB8:0::1]:5080", None, ("2001:db8::1", 5080, "udp")),
        ("tcp:[::1]", None, ("::1", 5060, "tcp")),
        ("sip:[2001:db8::2];transport=tls", None, ("2001:db8::2", 5061, "tls")),
    ],
)
async def test_a_line_takes_the_forms_of_the_registrar_setting(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
    registrar: str,
    transport: str | None,
    stored: tuple[str, int, str],
) -> None:
    body = {
        "account_id": api.world.account_id,
        "number": "+33400000077",
        "password": "pw-line",
        "registrar": registrar,
        **({"transport": transport} if transport else {}),
    }
    status, line = await api.call("POST", "/lines", api.operator, body)
    assert status == 201, line
    assert await _stored(sessions, line["id"]) == stored
    assert line["transport"] == stored[2]
    # The same reading as the setting's: one parser.
    assert parse_sip_address(registrar).host == stored[0]


@pytest.mark.parametrize(
    ("registrar", "transport", "field", "why"),
    [
        ("2001:db8::1", None, "registrar", "brackets"),
        ("sctp:pbx.example.net", None, "registrar", "'sctp' a known prefix"),
        ("sip:pbx.example.net;lr", None, "registrar", "unknown URI parameter"),
        ("sip:alice@pbx.example.net", None, "registrar", "neither a host name"),
        ("pbx.example.net:0", None, "registrar", "1 to 65535"),
        ("pbx.example.net:\u0665\u0660\u0666\u0660", None, "registrar", "not a port"),
        ("10.0.0.256", None, "registrar", "neither a host name"),
        ("[fe80::1%eth0]:5060", None, "registrar", "IPv6 address in brackets"),
        ("pbx\u00e9.example.net", None, "registrar", "neither a host name"),
        ("tcp:pbx.example.net", "udp", "transport", "registrar says tcp"),
        ("sip:pbx.example.net;transport=tls", "tcp", "transport", "registrar says tls"),
        ("pbx.example.net", "sctp", "transport", "udp, tcp or tls"),
    ],
)
async def test_a_registrar_refused_names_its_field_and_changes_nothing(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
    registrar: str,
    transport: str | None,
    field: str,
    why: str,
) -> None:
    before = await _line_count(sessions)
    body = {
        "account_id": api.world.account_id,
        "number": "+33400000078",
        "password": "pw-line",
        "registrar": registrar,
        **({"transport": transport} if transport else {}),
    }
    status, problem = await api.call("POST", "/lines", api.operator, body)
    assert status == 422, problem
    assert problem["field"] == field and why in problem["detail"], problem
    assert await _line_count(sessions) == before


async def test_one_ipv6_registrar_is_one_key(api: Api) -> None:  # noqa: F811
    """Two spellings of one address are one registrar: the same SIP user twice is refused."""
    body = {"account_id": api.world.account_id, "number": "+33400000079", "password": "pw"}
    status, _ = await api.call(
        "POST", "/lines", api.operator, {**body, "registrar": "[2001:db8:0:0::1]"}
    )
    assert status == 201
    status, problem = await api.call(
        "POST", "/lines", api.operator, {**body, "registrar": "udp:[2001:DB8::1]:5060"}
    )
    assert status == 409, problem


def test_the_setting_and_the_line_read_alike() -> None:
    from provisioning.settings import Registrar, SettingsError

    for text in ("tcp:pbx:5070", "sip:pbx;transport=tls", "[::1]:5060", "pbx"):
        setting = Registrar.parse("PROVISIONING_DEFAULT_REGISTRAR", text)
        line = parse_sip_address(text)
        assert (setting.host, setting.port, setting.transport) == (
            line.host,
            line.port,
            line.transport,
        )
    for text in ("udp:sip:pbx", "pbx:99999", "::1"):
        with pytest.raises(SipAddressError) as line_error:
            parse_sip_address(text)
        with pytest.raises(SettingsError) as setting_error:
            Registrar.parse("PROVISIONING_DEFAULT_REGISTRAR", text)
        assert str(setting_error.value) == f"PROVISIONING_DEFAULT_REGISTRAR: {line_error.value}"


def test_the_cli_stores_and_renders_the_registrars_transport(cli: Cli) -> None:  # noqa: F811
    account = cli.run("account", "add", "Carol").stdout.strip()
    line = cli.json(
        "line", "add", account, "+33400000080", "--password", "pw-carol",
        "--registrar", "sip:pbx.example.net:5070;transport=tcp",
    )  # fmt: skip
    assert (line["registrar"], line["transport"]) == ("pbx.example.net:5070", "tcp")
    cli.json("device", "add", "00:15:65:4A:A9:38", "yealink-t46u", account)
    cli.json("device", "assign", "0015654aa938", str(line["id"]))
    rendered = cli.run("render", "0015654aa938", "0015654aa938.cfg").stdout
    assert "account.1.sip_server.1.address = pbx.example.net\n" in rendered
    assert "account.1.sip_server.1.port = 5070\n" in rendered
    assert "account.1.sip_server.1.transport_type = 1\n" in rendered  # Yealink: 1 is TCP

    refused = cli.run(
        "line", "add", account, "+33400000081", "--password", "pw",
        "--registrar", "tls:pbx.example.net", "--transport", "udp", ok=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "transport: udp, but the registrar says tls" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [each["id"] for each in cli.json("line", "list", "--account", account)] == [line["id"]]
