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
from tests.families.strict import (
    FIELDS,
    LINE_1,
    LINE_2,
    OTHER,
    settings_of,
    two_lines,
    with_field,
)

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


def formats_of(catalog: Catalog, data: DeviceData) -> dict[str, str]:
    """Each file's format (its own, else its family's), by file name."""
    return {name: spec.format for name, spec in device_files(catalog, data.model_id, data.mac)}


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
    if fmt != "xml":
        # The other line formats: the keys in order, as their strict parser reads them.
        return list(settings_of(fmt, body))
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
        formats = formats_of(CATALOG, data)
        for name, body in render_all(CATALOG, data).items():
            text = body.decode("utf-8")
            # The strict parser of the file's format (tests/families/strict.py) takes every file.
            settings_of(formats[name], body)
            if formats[name] != "keyvalue":
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
    formats = formats_of(CATALOG, plain)
    unsafe = {fmt for fmt in formats.values() if not check_text(name, fmt)}
    if unsafe == set(formats.values()) or not check_text(name, "keyvalue"):
        with pytest.raises(RenderError):
            render_all(CATALOG, evil)
        return
    # Files in several formats (Panasonic: text and XML): a name one format cannot carry is
    # refused by a file that writes it, and never changes the settings of any file.
    renderer = Renderer(CATALOG)
    for file_name, spec in device_files(CATALOG, evil.model_id, evil.mac):
        try:
            body = render_file(renderer, SETTINGS, evil, spec).body
        except RenderError:
            assert spec.format in unsafe, file_name
            continue
        assert shape(spec.format, body) == shape(spec.format, baseline[file_name]), file_name


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


# -- Two lines, each in its own slot, through the strict parser of the format. -------------------

RENDERER = Renderer(CATALOG)
# Fields whose value a template writes as given (ports and transports are vendor-coded).
VERBATIM = ("user", "auth_user", "password", "registrar_host")
CREDENTIALS = ("auth_user", "password")


def read_settings(data: DeviceData) -> dict[str, str]:
    """Every setting of every file of the device, `file:path` -> value, parsed strictly."""
    found = {}
    for name, spec in device_files(CATALOG, data.model_id, data.mac):
        body = render_file(RENDERER, SETTINGS, data, spec).body
        for path, value in settings_of(spec.format, body).items():
            found[f"{name}:{path}"] = value
    return found


def moved(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


@pytest.mark.parametrize("family_name", FAMILIES)
def test_two_lines_each_in_its_own_slot(family_name: str) -> None:
    """Two lines with different users, auth ids, passwords, registrars, ports and transports, on
    every model with two slots or more. Changing one field of one line must move settings (the
    field is written: else the model declares it `unwritten`), only that line's (no setting
    moves with both lines), where that line's value was; credentials never in a public file.
    The per-family tests name the keys; this one holds for any family, declared or new."""
    family = CATALOG.families[family_name]
    models = [m for m in family.models.values() if m.slots >= 2]
    if not models:
        pytest.skip(f"{family_name}: no model with two slots")
    for model in models:
        data = two_lines(CATALOG, model.id)
        base = read_settings(data)
        public = {
            name for name, spec in device_files(CATALOG, model.id, data.mac) if not spec.secret
        }
        for field in FIELDS:
            changed = {}
            for slot, line in ((1, LINE_1), (2, LINE_2)):
                variant = read_settings(with_field(data, slot, field))
                keys = changed[slot] = moved(base, variant)
                where = f"{model.id}: slot {slot}'s {field}"
                if field in model.unwritten:
                    assert not keys, f"{where} is declared unwritten but moves {sorted(keys)[:3]}"
                    continue
                assert keys, f"{where} is written nowhere (declare it in `unwritten` if so)"
                if field in VERBATIM:
                    old, new = getattr(line, field), str(OTHER[field])
                    assert all(old in base[k] for k in keys if k in base), f"{where}: {keys}"
                    assert all(new in variant[k] for k in keys if k in variant), where
                if field in CREDENTIALS:
                    files = {key.split(":", 1)[0] for key in keys}
                    assert not files & public, f"{where} is in a public file"
            both = changed[1] & changed[2]
            assert not both, (
                f"{model.id}: settings move with both lines' {field}: {sorted(both)[:3]}"
            )
