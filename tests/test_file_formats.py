"""A file's format is its own (`[[files]] format`), the family's `format` only its default:
escaping, validation and `templates check` follow the file. A family made up in a temporary
folder, one XML file and one Panasonic-style text file, shows each path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.devices.catalog import CatalogError, load_catalog
from provisioning.render.check import check_templates, sample_device
from provisioning.render.environment import Renderer, RenderError
from provisioning.render.files import device_files, render_file
from provisioning.render.validate import validate
from provisioning.settings import Settings
from tests.families.strict import parse_quoted, parse_xml

SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())

FAMILY_TOML = """
[family]
vendor = "Acme"
format = "xml"

[[files]]
name = "{mac}.xml"
template = "mac.xml.j2"
lines = true

[[files]]
name = "ACME.cfg"
template = "factory.cfg.j2"
format = "quoted"
"""
XML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<conf>{% for line in lines %}<line name="{{ line.user }}"/>{% endfor %}</conf>
"""
TEXT_TEMPLATE = """# Panasonic SIP Phone Standard Format File #
{% for line in lines %}
PHONE_NUMBER_{{ line.slot }}="{{ line.user }}"
{% endfor %}
"""


def make_family(root: Path, toml: str = FAMILY_TOML, text: str = TEXT_TEMPLATE) -> Path:
    folder = root / "acme"
    folder.mkdir(parents=True)
    (folder / "family.toml").write_text(
        toml + '\n[models.one]\nlabel = "Acme One"\nslots = 2\n', encoding="utf-8"
    )
    (folder / "mac.xml.j2").write_text(XML_TEMPLATE, encoding="utf-8")
    (folder / "factory.cfg.j2").write_text(text, encoding="utf-8")
    return root


def test_a_file_format_overrides_the_family_default(tmp_path: Path) -> None:
    family = load_catalog(make_family(tmp_path)).families["acme"]
    assert family.format == "xml"
    assert [(spec.pattern, spec.format) for spec in family.files] == [
        ("{mac}.xml", "xml"),
        ("ACME.cfg", "quoted"),
    ]
    assert family.formats == ("xml", "quoted")


def test_an_unknown_file_format_is_refused_naming_the_file(tmp_path: Path) -> None:
    toml = FAMILY_TOML.replace('format = "quoted"', 'format = "yaml"')
    with pytest.raises(CatalogError, match=r"files\.format of ACME\.cfg must be one of"):
        load_catalog(make_family(tmp_path, toml))


def test_each_file_is_escaped_for_its_own_format(tmp_path: Path) -> None:
    catalog = load_catalog(make_family(tmp_path))
    renderer = Renderer(catalog)
    data = sample_device("acme-one", 2, 2, tame=True)
    lines = {slot: replace(line, user=f"Bob <{slot}>") for slot, line in data.lines.items()}
    data = replace(data, lines=lines)
    bodies = {
        name: render_file(renderer, SETTINGS, data, spec).body
        for name, spec in device_files(catalog, data.model_id, data.mac)
    }
    # XML: autoescaped, read back whole by a strict parser.
    root = parse_xml(bodies[f"{data.mac}.xml"])
    assert [el.attrib["name"] for el in root] == ["Bob <1>", "Bob <2>"]
    # Text: lines end with CR LF (Panasonic's manuals), the XML file's with LF alone.
    text = bodies["ACME.cfg"]
    assert text.startswith(b"# Panasonic SIP Phone Standard Format File #\r\n")
    assert text.count(b"\n") == text.count(b"\r\n") > 1
    assert b"\r" not in bodies[f"{data.mac}.xml"]
    # Values written as is (no XML entity in a Panasonic value), read by its strict parser.
    assert parse_quoted(bodies["ACME.cfg"]) == {
        "PHONE_NUMBER_1": "Bob <1>",
        "PHONE_NUMBER_2": "Bob <2>",
    }
    # A double quote: escaped in the XML file, refused by the text file (it would end the value).
    quoted = replace(data, lines={1: replace(data.lines[1], user='Bo"b')})
    ((_, xml_spec), (_, text_spec)) = device_files(catalog, data.model_id, data.mac)
    assert b"Bo&#34;b" in render_file(renderer, SETTINGS, quoted, xml_spec).body
    with pytest.raises(RenderError, match=r"factory\.cfg\.j2"):
        render_file(renderer, SETTINGS, quoted, text_spec)


def test_templates_check_validates_each_file_in_its_own_format(tmp_path: Path) -> None:
    catalog = load_catalog(make_family(tmp_path / "good"))
    results = check_templates(catalog, SETTINGS)
    assert {r.file.split(" ")[0] for r in results} == {"0015654aa937.xml", "ACME.cfg"}
    assert [r.problems for r in results if r.problems] == []
    # The same text read as the family's XML would be refused: the file's format was used.
    body = b'# Panasonic SIP Phone Standard Format File #\r\nPHONE_NUMBER_1="x"\r\n'
    assert validate("quoted", body) == [] and validate("xml", body) != []
    # A text file that breaks its own format is caught by the check.
    broken = make_family(tmp_path / "bad", text='PHONE_NUMBER_1 = "x"\n')
    problems = [p for r in check_templates(load_catalog(broken), SETTINGS) for p in r.problems]
    assert any(
        "line 1: must be # Panasonic SIP Phone Standard Format File #" in p for p in problems
    )
