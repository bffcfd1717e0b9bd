"""Operator overrides: settings per model, account and device merged in that order, and template
files from an override folder — shipped templates stay untouched."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from provisioning import overrides
from provisioning.app import create_app
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.errors import InvalidInput, NotFound, UnknownModel
from provisioning.render.check import check_templates
from provisioning.render.overrides import apply_overrides
from provisioning.settings import Settings
from tests.conftest import World


def test_key_value_replace_and_append() -> None:
    body = b"#!version:1.0.0.1\na.b = 1\nc.d = 2\n"
    out = apply_overrides("keyvalue", body, {"c.d": "20", "e.f": "new value"})
    assert out == b"#!version:1.0.0.1\na.b = 1\nc.d = 20\ne.f = new value\n"


def test_xml_text_and_attributes_in_a_default_namespace() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<config xmlns="http://www.linphone.org/xsds/lpconfig.xsd">'
        b'<section name="sip"><entry name="x">1</entry></section></config>\n'
    )
    out = apply_overrides(
        "xml",
        body,
        {
            "section[@name='sip']/entry[@name='x']": "<2 & 3>",
            "section[@name='sip']@extra": 'say "hi"',
            "section[@name='nowhere']/entry": "skipped",
        },
    )
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<config xmlns="http')
    root = ET.fromstring(out)
    ns = "{http://www.linphone.org/xsds/lpconfig.xsd}"
    section = root.find(f"{ns}section")
    assert section is not None and section.get("extra") == 'say "hi"'
    entry = section.find(f"{ns}entry")
    assert entry is not None and entry.text == "<2 & 3>"
    assert len(list(root)) == 1


async def fetch(client: TestClient, world: World, name: str = "0015654aa937.cfg") -> str:
    resp = await client.get(f"/{world.yealink_token}/{name}")
    assert resp.status == 200
    return await resp.text()


async def test_model_account_device_merged_in_order(
    client: TestClient, world: World, sessions: SessionFactory, catalog: Catalog
) -> None:
    before = await fetch(client, world)
    assert "lang.gui = French" in before
    steps = [
        ("model", "yealink-t46u", "lang.gui", "English"),
        ("model", "yealink-t46u", "features.dnd.enable", "1"),
        ("account", str(world.account_id), "lang.gui", "Spanish"),
        ("device", "00:15:65:4A:A9:37", "lang.gui", "German"),
    ]
    expected = ["English", "English", "Spanish", "German"]
    for (scope, target, key, value), language in zip(steps, expected, strict=True):
        async with sessions() as session, session.begin():
            await overrides.set_override(session, catalog, scope, target, key, value)
        body = await fetch(client, world)
        assert f"lang.gui = {language}" in body
        assert body.count("lang.gui =") == 1
    assert "features.dnd.enable = 1" in body
    # Common files are shared by every phone of the model: overrides stay in per-device files.
    assert "German" not in await fetch(client, world, "y000000000108.cfg")
    async with sessions() as session, session.begin():
        await overrides.unset_override(session, catalog, "device", "0015654aa937", "lang.gui")
    assert "lang.gui = Spanish" in await fetch(client, world)


async def test_linphone_override(
    client: TestClient, world: World, sessions: SessionFactory, catalog: Catalog
) -> None:
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, world.linphone_mac, world.line_ids[2])
        await overrides.set_override(
            session, catalog, "device", world.linphone_mac,
            "section[@name='proxy_0']/entry[@name='reg_expires']", "600",
        )  # fmt: skip
    resp = await client.get(f"/{world.linphone_token}/linphone.xml")
    body = await resp.text()
    assert '<entry name="reg_expires" overwrite="true">600</entry>' in body
    ET.fromstring(body)


@pytest.mark.parametrize(
    ("scope", "target", "key", "value", "error"),
    [
        ("model", "yealink-t999", "a.b", "1", UnknownModel),
        ("account", "424242", "a.b", "1", NotFound),
        ("account", "abc", "a.b", "1", InvalidInput),
        ("device", "001565999999", "a.b", "1", NotFound),
        ("model", "yealink-t46u", "a.b\nc.d", "1", InvalidInput),
        ("model", "yealink-t46u", "a b", "1", InvalidInput),
        ("model", "yealink-t46u", "a.b", "1\naccount.1.password = x", InvalidInput),
        ("model", "linphone-softphone", "section[@name='x'", "1", InvalidInput),
        ("planet", "x", "a.b", "1", InvalidInput),
    ],
)
async def test_bad_overrides_are_refused(
    sessions: SessionFactory, world: World, catalog: Catalog,
    scope: str, target: str, key: str, value: str, error: type,
) -> None:  # fmt: skip
    with pytest.raises(error):
        async with sessions() as session, session.begin():
            await overrides.set_override(session, catalog, scope, target, key, value)
    async with sessions() as session:
        assert await overrides.list_overrides(session) == []


async def test_template_override_folder(
    aiohttp_client, settings: Settings, world: World, tmp_path: Path, catalog: Catalog
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "overrides" / "yealink"
    folder.mkdir(parents=True)
    shipped = (catalog.families["yealink"].path / "mac.boot.j2").read_text()
    (folder / "mac.boot.j2").write_text(shipped + "## operator boot file\n")
    custom = replace(settings, templates_override_dir=tmp_path / "overrides")
    client = await aiohttp_client(create_app(custom))
    resp = await client.get(f"/{world.yealink_token}/0015654aa937.boot")
    assert (await resp.text()).endswith("## operator boot file\n")
    # The shipped file is untouched, and `templates check` renders the override too.
    assert "operator" not in shipped
    assert [r for r in check_templates(catalog, custom) if r.problems] == []
    (folder / "typo.j2").write_text("x")
    (folder / "mac.cfg.j2").write_text("#!version:1.0.0.1\nbroken line\n")
    problems = [p for r in check_templates(catalog, custom) for p in r.problems]
    assert any("replaces no shipped template" in p for p in problems)
    assert any("not 'key = value'" in p for p in problems)
