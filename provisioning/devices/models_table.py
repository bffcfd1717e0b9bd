"""The README's table of supported phones, generated from the catalog (`family.toml` files), so
the README cannot claim a model, a slot count or a confirmation the catalog does not hold.

    python -m provisioning.devices.models_table                  # print the table
    python -m provisioning.devices.models_table --update-readme  # rewrite it in README.md

Only the text between the two markers is rewritten; tests/test_families.py fails when it differs.
"""

from __future__ import annotations

import sys

from provisioning.devices.catalog import Catalog, Family, Model, load_catalog
from provisioning.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
TABLE_START = "<!-- models-table:start -->"
TABLE_END = "<!-- models-table:end -->"

# How each catalog format is named for a reader.
FORMAT_NAMES = {
    "keyvalue": "`key = value` text",
    "xml": "XML",
    "colon": "`key: value` text",
    "spaced": "`KEY value` text",
    "ini": "INI text",
    "quoted": '`KEY="value"` text',
    "ini_indented": "INI text, settings indented",
    "cli": "SmartNode CLI text",
}


def _cell(text: str) -> str:
    # A `|` would open a column of its own.
    return text.replace("|", "\\|")


def file_names(family: Family, model: Model) -> str:
    """The files the model asks for, `<mac>` (or `<MAC>`, in the family's case) for the MAC."""
    mac = "<mac>"
    names = family.file_names(mac, model)
    return ", ".join(f"`{name}`" for name in names)


def formats(family: Family, model: Model) -> str:
    """The formats of the files the model is served (a file's own, else the family's), once each."""
    specs = [spec for spec in family.files if spec.name_for("<mac>", model.code, family.mac_case)]
    names = dict.fromkeys(FORMAT_NAMES.get(spec.format, spec.format) for spec in specs)
    return ", ".join(names)


def models_table(catalog: Catalog) -> str:
    """Markdown: a summary line, then one row per model, by vendor, family, catalog order."""
    families = sorted(catalog, key=lambda f: (f.vendor.lower(), f.name))
    models = [m for f in families for m in f.models.values()]
    confirmed = sum(m.confirmed for m in models)
    vendors = {f.vendor for f in families}
    rows = [
        f"{len(models)} models of {len(vendors)} vendors ({len(families)} families); "
        f"{confirmed} confirmed by a reference, {len(models) - confirmed} not.",
        "",
        "| vendor | model | catalog id | slots | format | files served | confirmed |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in families:
        for model in family.models.values():
            fmt = formats(family, model)
            rows.append(
                f"| {_cell(family.vendor)} | {_cell(model.label)} | `{model.id}` "
                f"| {model.slots} | {fmt} | {file_names(family, model)} "
                f"| {'yes' if model.confirmed else 'no'} |"
            )
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str, catalog: Catalog) -> str:
    """`readme` with the text between the markers replaced by `models_table(catalog)`."""
    start = readme.index(TABLE_START) + len(TABLE_START)
    end = readme.index(TABLE_END, start)
    return readme[:start] + "\n" + models_table(catalog) + readme[end:]


def main(argv: list[str]) -> int:
    catalog = load_catalog(PROJECT_ROOT / "templates" / "devices")
    if argv == ["--update-readme"]:
        README.write_text(readme_with_table(README.read_text(), catalog))
    elif not argv:
        sys.stdout.write(models_table(catalog))
    else:
        sys.stderr.write("usage: python -m provisioning.devices.models_table [--update-readme]\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
