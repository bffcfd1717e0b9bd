"""Rendering: escaping per format (property-based), sandbox, strictness, golden files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jinja2
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from provisioning.devices.catalog import Catalog
from provisioning.render.check import check_templates, sample_device
from provisioning.render.environment import Renderer, RenderError, _environment
from provisioning.render.escaping import UnsafeValue, check_text
from provisioning.render.files import render_file
from provisioning.settings import Settings

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"]


def xml_env(catalog: Catalog) -> jinja2.Environment:
    return _environment(catalog.families["linphone"], "xml")


def kv_env(catalog: Catalog) -> jinja2.Environment:
    return _environment(catalog.families["yealink"], "keyvalue")


@hyp_settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_xml_values_round_trip_or_are_refused(catalog: Catalog, value: str) -> None:
    template = xml_env(catalog).from_string('<a b="{{ v }}">{{ v }}</a>')
    if not check_text(value, "xml"):
        with pytest.raises(UnsafeValue):
            template.render(v=value)
        return
    element = ET.fromstring(template.render(v=value))
    # Whatever the value holds (markup, quotes, entities), it stays one value.
    assert element.text == (value or None)
    assert element.get("b") == value
    assert list(element) == []


@hyp_settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_key_value_never_gains_a_line(catalog: Catalog, value: str) -> None:
    template = kv_env(catalog).from_string("a.b = {{ v }}\nc.d = 1\n")
    if any(ch in value for ch in CONTROL) or not check_text(value):
        with pytest.raises(UnsafeValue):
            template.render(v=value)
        return
    out = template.render(v=value)
    assert out.splitlines() == [f"a.b = {value}", "c.d = 1"]


@pytest.mark.parametrize("bad", ["x\ny", "x\rb", "tab\there", "nul\x00", "\u2028sep", "esc\x1b[0m"])
def test_key_value_refuses_injection(catalog: Catalog, bad: str) -> None:
    with pytest.raises(UnsafeValue) as info:
        kv_env(catalog).from_string("k = {{ v }}").render(v=bad)
    assert bad not in str(info.value)  # the message never carries the value


def test_sandbox_blocks_python_internals(catalog: Catalog) -> None:
    env = kv_env(catalog)
    with pytest.raises(jinja2.exceptions.SecurityError):
        env.from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()


def test_strict_undefined(catalog: Catalog) -> None:
    with pytest.raises(jinja2.exceptions.UndefinedError):
        kv_env(catalog).from_string("k = {{ lines[0].pasword }}").render(lines=[{}])


def test_render_error_names_template_not_secret(catalog: Catalog, settings: Settings) -> None:
    from dataclasses import replace

    from provisioning.render.context import LineData

    data = sample_device("yealink-t46u", 16, 1)
    evil = LineData("+331", "u", "u", "pw-SECRET\nx", "n", "h", 5060, "udp")
    data = replace(data, lines={1: evil})
    spec = catalog.families["yealink"].files[2]
    with pytest.raises(RenderError) as info:
        render_file(Renderer(catalog), settings, data, spec)
    assert "mac.cfg.j2" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_templates_check_passes(catalog: Catalog, settings: Settings) -> None:
    results = check_templates(catalog, settings)
    assert len({r.model for r in results}) == len(catalog.models)
    assert [r for r in results if r.problems] == []


def test_a_refusal_is_found_before_any_phone_asks(catalog: Catalog, settings: Settings) -> None:
    """refusal_of: what a domain function calls before committing a line to a device."""
    from dataclasses import replace

    from provisioning.render.files import refusal_of

    renderer = Renderer(catalog)
    data = sample_device("gigaset-n510", 6, 2, tame=True)
    assert refusal_of(renderer, settings, data) is None
    lines = dict(data.lines)
    lines[2] = replace(lines[2], password='pa"ss-SECRET')
    message = refusal_of(renderer, settings, replace(data, lines=lines))
    assert message is not None and "slot 2" in message and "double quote" in message
    assert "SECRET" not in message
    # Other families carry the same line: no refusal.
    other = replace(sample_device("yealink-t46u", 16, 2), lines=lines)
    assert refusal_of(renderer, settings, other) is None
