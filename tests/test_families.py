"""Checks every family gets without writing a test of its own: golden files for a one-line and a
full-slot device, output that parses (and round-trips for key = value), and hostile display names
that never change the shape of the output. A new family folder is covered as soon as it exists."""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from provisioning.devices import models_table as models_table_module
from provisioning.devices.catalog import Catalog, Family, Model, load_catalog
from provisioning.render.check import sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer, RenderError, RenderRefused
from provisioning.render.escaping import check_text
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings

GOLDEN = Path(__file__).parent / "golden"
CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILIES = sorted(CATALOG.families)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9_.]+) = (?P<value>.*)")


GOLDEN_MAX_SLOTS = 16


def golden_model(family: Family) -> Model:
    """The family's model with the most slots up to 16 (a 250-handset DECT base would make a
    golden file nobody reads); the full-slot golden file shows every slot of it."""
    readable = [m for m in family.models.values() if m.slots <= GOLDEN_MAX_SLOTS]
    pool = readable or list(family.models.values())
    return sorted(pool, key=lambda m: (-m.slots if readable else m.slots, m.id))[0]


def render_all(catalog: Catalog, data: DeviceData) -> dict[str, bytes]:
    renderer = Renderer(catalog)
    return {
        name: render_file(renderer, SETTINGS, data, spec).body
        for name, spec in device_files(catalog, data.model_id, data.mac)
    }


@functools.cache
def sample(model: Model, used: int) -> DeviceData:
    """The hostile sample, or the tame one (no double quote in passwords) for a template that
    refuses the hostile one on purpose (`refuse`: a clear error instead of a cut setting)."""
    data = sample_device(model.id, model.slots, used)
    try:
        render_all(CATALOG, data)
    except RenderRefused:
        return sample_device(model.id, model.slots, used, tame=True)
    return data


def parse_key_value(text: str) -> list[tuple[str, str]]:
    """A parser of the `key = value` format, independent of the validator in the package."""
    pairs = []
    for line in text.split("\n"):
        if not line or line.startswith("#") or line.startswith("include:"):
            continue
        match = KEY_VALUE.fullmatch(line)
        assert match is not None, f"not key = value: {line!r}"
        pairs.append((match["key"], match["value"]))
    return pairs


def shape(fmt: str, body: bytes) -> list[object]:
    """What a phone would see as settings: keys in order, or XML elements and attribute names."""
    text = body.decode("utf-8")
    if fmt == "keyvalue":
        return [key for key, _ in parse_key_value(text)]
    root = ET.fromstring(text)
    return [(el.tag, sorted(el.attrib)) for el in root.iter()]


@pytest.mark.parametrize("lines", ["1-line", "full"])
@pytest.mark.parametrize("family_name", FAMILIES)
def test_golden_files(family_name: str, lines: str) -> None:
    """Reviewed like code: a template change shows up here as a diff (UPDATE_GOLDEN=1 accepts)."""
    family = CATALOG.families[family_name]
    model = golden_model(family)
    data = sample(model, 1 if lines == "1-line" else model.slots)
    folder = GOLDEN / family_name
    for name, body in render_all(CATALOG, data).items():
        golden = folder / f"{model.id}-{lines}--{name}"
        if os.environ.get("UPDATE_GOLDEN"):
            folder.mkdir(exist_ok=True)
            golden.write_bytes(body)
        assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
        assert body == golden.read_bytes(), f"{golden.name} differs (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("family_name", FAMILIES)
def test_every_model_parses_and_round_trips(family_name: str) -> None:
    family = CATALOG.families[family_name]
    for model in family.models.values():
        data = sample(model, model.slots)
        for name, body in render_all(CATALOG, data).items():
            text = body.decode("utf-8")
            if family.format == "xml":
                ET.fromstring(text)
                continue
            pairs = parse_key_value(text)
            rebuilt = "\n".join(f"{k} = {v}" for k, v in pairs)
            kept = "\n".join(line for line in text.split("\n") if KEY_VALUE.fullmatch(line))
            assert rebuilt == kept, f"{model.id} {name}"
            keys = [k for k, _ in pairs]
            assert len(keys) == len(set(keys)), f"{model.id} {name}: a key is set twice"


@pytest.mark.parametrize("family_name", FAMILIES)
@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=40))
def test_hostile_display_names_never_change_the_settings(family_name: str, name: str) -> None:
    family = CATALOG.families[family_name]
    model = golden_model(family)
    plain = sample(model, 2)
    baseline = render_all(CATALOG, plain)
    evil_lines = {slot: replace(line, display_name=name) for slot, line in plain.lines.items()}
    evil = replace(plain, lines=evil_lines)
    if not check_text(name, family.format) or not check_text(name, "keyvalue"):
        with pytest.raises(RenderError):
            render_all(CATALOG, evil)
        return
    for file_name, body in render_all(CATALOG, evil).items():
        assert shape(family.format, body) == shape(family.format, baseline[file_name]), file_name


# -- One source of truth: the README's table of supported phones. --------------------------------


def test_the_readme_models_table_is_generated_from_the_catalog() -> None:
    readme = models_table_module.README.read_text(encoding="utf-8")
    start, end = models_table_module.TABLE_START, models_table_module.TABLE_END
    assert readme.count(start) == 1 and readme.count(end) == 1
    written = readme.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    assert written == models_table_module.models_table(CATALOG), (
        "README.md's table of supported phones differs from the catalog: run "
        "`python -m provisioning.devices.models_table --update-readme` (it rewrites the table "
        "between the models-table markers only)"
    )


def test_the_models_table_has_one_row_per_model() -> None:
    lines = models_table_module.models_table(CATALOG).splitlines()
    rows = [line for line in lines[4:] if line.startswith("| ")]
    assert len(rows) == len(CATALOG.models)
    cells = [row.replace("\\|", "").split("|")[1:-1] for row in rows]
    assert all(len(c) == 7 for c in cells)
    by_id = {c[2].strip().strip("`"): c for c in cells}
    assert set(by_id) == set(CATALOG.models)
    for model_id, model in CATALOG.models.items():
        family = CATALOG.family_of(model_id)
        vendor, label, _, slots, _, files, confirmed = (c.strip() for c in by_id[model_id])
        assert (vendor, label, slots) == (family.vendor, model.label, str(model.slots))
        assert confirmed == ("yes" if model.confirmed else "no")
        for name in family.file_names("<mac>", model):
            assert f"`{name}`" in files
    confirmed_count = sum(m.confirmed for m in CATALOG.models.values())
    assert f"{confirmed_count} confirmed by a reference" in lines[0]
