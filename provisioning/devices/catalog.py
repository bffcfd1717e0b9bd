"""Families and models, read from `templates/devices/<family>/family.toml`.

Vendor knowledge lives in those files: adding a model is a TOML entry, adding a family a folder.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

# Each format has its escaping (render.escaping), its validator (render.validate) and a strict
# parser in tests/families/strict.py. A family names its usual format (`[family] format`); a file
# in another one says so (`[[files]] format`): Panasonic's factory file is text `KEY="value"`
# beside its XML device file. keyvalue: Yealink `key = value`; xml; colon: Aastra
# `key: value` (keys with spaces); spaced: Avaya `KEY value`; ini: `[section]` + `key=value`
# (Technicolor); quoted: Panasonic `KEY="value"`; cli: Patton SmartNode commands, indented;
# ini_indented: Zenitel's INI, ` key=value` indented one space under `[section]`.
FORMATS = ("keyvalue", "xml", "colon", "spaced", "ini", "quoted", "cli", "ini_indented")
_PLACEHOLDERS = {
    # Phones differ in MAC case; matching is case-insensitive, generated names use `mac_case`.
    "mac": r"(?P<mac>[0-9A-Fa-f]{12})",
    # Zenitel's `ipst_config_00_13_cb_01_02_03.cfg`: the MAC's bytes joined by underscores.
    "mac_underscore": r"(?P<mac>[0-9A-Fa-f]{2}(?:_[0-9A-Fa-f]{2}){5})",
    # Yealink's common file: the model id zero-padded to 12 digits (`y000000000028.cfg`).
    "code12": r"(?P<code12>[0-9]{12})",
    # The model's own name in file names (`snomD785.htm`, `spa508G.cfg`).
    "code": r"(?P<code>[A-Za-z0-9_]{1,24})",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# The fields of a line a template writes; a model's `unwritten` names those its format has no
# key for (the Gigaset N510's transport), so the generic tests know it is deliberate.
LINE_FIELDS = ("user", "auth_user", "password", "registrar_host", "registrar_port", "transport")


class CatalogError(ValueError):
    """A family.toml is missing something or says something impossible; names file and key."""


@dataclass(frozen=True)
class FileSpec:
    """A file name a family's phones ask for, and the template that renders it."""

    pattern: str
    template: str
    content_type: str
    regex: re.Pattern[str]
    secret: bool
    # Carries the SIP lines (the account slots): a fetch of it proves a revision applied.
    lines: bool
    # The file's format (one of FORMATS): its escaping, validator, overrides and strict parser.
    format: str
    # The pattern's literal text before its first placeholder and after its last: a name
    # that does not start and end so cannot match (devices.identify skips the regex).
    prefix: str = ""
    suffix: str = ""
    # Also served over TFTP (provisioning.tftp), from TFTP_NETWORKS, to a MAC without a token:
    # only for phones that can fetch no other way (Zenitel).
    tftp: bool = False

    def match(self, file_name: str) -> re.Match[str] | None:
        return self.regex.fullmatch(file_name)

    def name_for(self, mac: str, code: str | None, mac_case: str) -> str | None:
        if ("{code12}" in self.pattern or "{code}" in self.pattern) and code is None:
            return None
        cased = mac.upper() if mac_case == "upper" else mac
        # A MAC's bytes; for a stand-in (the models table's `<mac>`), what they look like.
        pairs = "_".join(cased[i : i + 2] for i in range(0, 12, 2)) if len(mac) == 12 else ""
        if not pairs:
            pairs = "<AA_BB_CC_DD_EE_FF>" if mac_case == "upper" else "<aa_bb_cc_dd_ee_ff>"
        return self.pattern.format(
            mac=cased,
            mac_underscore=pairs,
            code12=(code or "").zfill(12),
            code=code or "",
        )


@dataclass(frozen=True)
class Model:
    id: str
    family: str
    vendor: str
    label: str
    slots: int
    # Names the phone puts in its User-Agent for this model (`T46U` in `Yealink SIP-T46U ...`).
    ua_models: tuple[str, ...]
    code: str | None
    # Glob of this model's firmware images inside `firmware/<family>/` (newest name wins).
    firmware: str | None
    orderable: bool
    price_cents: int | None
    confirmed: bool
    # Line fields no key of this model's files carries (family.toml `unwritten`, with why).
    unwritten: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    name: str
    vendor: str
    # The usual format of the family's files; each FileSpec carries its own (the one to use).
    format: str
    path: Path
    mac_case: str
    notify_event: str | None
    files: tuple[FileSpec, ...]
    ua_patterns: tuple[re.Pattern[str], ...]
    languages: dict[str, str]
    timezones: dict[str, str]
    models: dict[str, Model] = field(default_factory=dict)

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats of the family's files, each once, in file order."""
        return tuple(dict.fromkeys(spec.format for spec in self.files))

    def file_names(self, mac: str, model: Model) -> list[str]:
        names = (spec.name_for(mac, model.code, self.mac_case) for spec in self.files)
        return [name for name in names if name is not None]

    def model_for_ua(self, ua_model: str) -> Model | None:
        return self._by_ua_model.get(ua_model.upper())

    @cached_property
    def _by_ua_model(self) -> dict[str, Model]:
        # Looked up at every fetch that is not given a kept answer (a boot storm's): a walk
        # through a family's hundred models cost a quarter of such a fetch. The first model
        # naming a User-Agent model wins, as the walk did.
        index: dict[str, Model] = {}
        for model in self.models.values():
            for name in model.ua_models:
                index.setdefault(name, model)
        return index


@dataclass(frozen=True)
class NamePattern:
    """One file-name pattern (a regex) and every family file spec using it, in catalog order:
    families share patterns (`{mac}.cfg` in seven)."""

    spec: FileSpec  # the first of `uses`: all match alike (prefix, suffix, regex)
    uses: tuple[tuple[int, Family, FileSpec], ...]  # (catalog order, family, spec)


@dataclass(frozen=True)
class Catalog:
    families: dict[str, Family]
    # What a file name or a User-Agent was found to mean (devices.identify): the same few
    # thousand strings come back with every fetch of a boot storm.
    memo: dict[tuple[str, str], Any] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def models(self) -> dict[str, Model]:
        return {m.id: m for f in self.families.values() for m in f.models.values()}

    def model(self, model_id: str) -> Model | None:
        family_name = model_id.split("-", 1)[0]
        family = self.families.get(family_name)
        return family.models.get(model_id) if family else None

    def family_of(self, model_id: str) -> Family:
        return self.families[model_id.split("-", 1)[0]]

    def __iter__(self) -> Iterator[Family]:
        return iter(self.families.values())

    def name_patterns(self, file_name: str) -> tuple[NamePattern, ...]:
        """The patterns `file_name` may match, judged by its extension: a boot storm's names
        are all new, and trying each of the catalog's specs was a tenth of a first fetch."""
        by_extension, anywhere = self._name_patterns
        return by_extension.get(file_name.rpartition(".")[2], anywhere)

    @cached_property
    def _name_patterns(
        self,
    ) -> tuple[dict[str, tuple[NamePattern, ...]], tuple[NamePattern, ...]]:
        uses: dict[str, list[tuple[int, Family, FileSpec]]] = {}
        specs = [(family, spec) for family in self for spec in family.files]
        for order, (family, spec) in enumerate(specs):
            uses.setdefault(spec.regex.pattern, []).append((order, family, spec))
        patterns = [NamePattern(found[0][2], tuple(found)) for found in uses.values()]
        # A literal tail with a dot fixes the name's extension; one without (a name ending in
        # a placeholder) may end any way, so it is tried on every name.
        anywhere = tuple(p for p in patterns if "." not in p.spec.suffix)
        by_extension: dict[str, list[NamePattern]] = {}
        for pattern in patterns:
            if "." in pattern.spec.suffix:
                extension = pattern.spec.suffix.rpartition(".")[2]
                by_extension.setdefault(extension, []).append(pattern)
        return {
            extension: tuple(found) + anywhere for extension, found in by_extension.items()
        }, anywhere


def load_catalog(templates_dir: Path) -> Catalog:
    families: dict[str, Family] = {}
    for toml_path in sorted(templates_dir.glob("*/family.toml")):
        family = _load_family(toml_path)
        families[family.name] = family
    if not families:
        raise CatalogError(f"{templates_dir}: no family folder with a family.toml")
    return Catalog(families)


def _load_family(toml_path: Path) -> Family:
    where = str(toml_path)
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{where}: invalid TOML: {exc}") from None
    name = toml_path.parent.name
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise CatalogError(f"{where}: family folder name must be lowercase letters and digits")
    head = _table(data, "family", where)
    fmt = _str(head, "format", where)
    if fmt not in FORMATS:
        raise CatalogError(f"{where}: family.format must be one of {', '.join(FORMATS)}")
    mac_case = head.get("mac_case", "lower")
    if mac_case not in ("lower", "upper"):
        raise CatalogError(f"{where}: family.mac_case must be lower or upper")
    vendor = _str(head, "vendor", where)
    files = tuple(
        _file_spec(entry, where, toml_path.parent, fmt) for entry in data.get("files", [])
    )
    if not files:
        raise CatalogError(f"{where}: at least one [[files]] entry is required")
    if not any(spec.lines for spec in files):
        # Without one, no fetch could prove a change applied (the 5-minute promise).
        raise CatalogError(f"{where}: no [[files]] entry has lines = true (the lines' file)")
    patterns = []
    for raw in _table(data, "user_agent", where).get("patterns", []):
        try:
            patterns.append(re.compile(raw))
        except re.error as exc:
            raise CatalogError(f"{where}: bad user_agent pattern {raw!r}: {exc}") from None
    languages = {str(k): str(v) for k, v in _table(data, "languages", where).items()}
    timezones = {str(k): str(v) for k, v in _table(data, "timezones", where).items()}
    family = Family(
        name=name,
        vendor=vendor,
        format=fmt,
        path=toml_path.parent,
        mac_case=mac_case,
        notify_event=head.get("notify_event"),
        files=files,
        ua_patterns=tuple(patterns),
        languages=languages,
        timezones=timezones,
    )
    for key, entry in _table(data, "models", where).items():
        model = _model(family, key, entry, where)
        family.models[model.id] = model
    if not family.models:
        raise CatalogError(f"{where}: no [models.*] entry")
    return family


def _file_spec(entry: dict[str, Any], where: str, folder: Path, default_format: str) -> FileSpec:
    pattern = _str(entry, "name", where)
    template = _str(entry, "template", where)
    fmt = entry.get("format", default_format)
    if fmt not in FORMATS:
        known = ", ".join(FORMATS)
        raise CatalogError(f"{where}: files.format of {pattern} must be one of {known}")
    if not (folder / template).is_file():
        raise CatalogError(f"{where}: template {template} named by file {pattern} is missing")
    regex_parts: list[str] = []
    last = 0
    macs = [m for m in _PLACEHOLDER.findall(pattern) if m.startswith("mac")]
    if len(macs) > 1:
        raise CatalogError(f"{where}: {pattern} names the MAC more than once")
    for match in _PLACEHOLDER.finditer(pattern):
        regex_parts.append(re.escape(pattern[last : match.start()]))
        placeholder = match.group(1)
        if placeholder not in _PLACEHOLDERS:
            raise CatalogError(f"{where}: unknown placeholder {{{placeholder}}} in {pattern}")
        regex_parts.append(_PLACEHOLDERS[placeholder])
        last = match.end()
    regex_parts.append(re.escape(pattern[last:]))
    return FileSpec(
        pattern=pattern,
        template=template,
        content_type=str(entry.get("content_type", "text/plain; charset=utf-8")),
        regex=re.compile("".join(regex_parts)),
        secret=bool(entry.get("secret", True)),
        lines=_flag(entry, "lines", where),
        tftp=_flag(entry, "tftp", where),
        format=fmt,
        prefix=pattern.split("{", 1)[0],
        suffix=pattern.rsplit("}", 1)[-1],
    )


def _flag(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: files.{key} must be true or false")
    return value


def _model(family: Family, key: str, entry: dict[str, Any], where: str) -> Model:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", key):
        raise CatalogError(f"{where}: model key {key!r} must be lowercase letters, digits, _")
    slots = entry.get("slots")
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise CatalogError(f"{where}: models.{key}.slots must be a positive integer")
    price = entry.get("price_cents")
    if price is not None and (not isinstance(price, int) or price < 0):
        raise CatalogError(f"{where}: models.{key}.price_cents must be a whole number of cents")
    code = entry.get("code")
    unwritten = tuple(str(name) for name in _list(entry.get("unwritten", [])))
    unknown = [name for name in unwritten if name not in LINE_FIELDS]
    if unknown:
        known = ", ".join(LINE_FIELDS)
        raise CatalogError(f"{where}: models.{key}.unwritten: {', '.join(unknown)} not in {known}")
    return Model(
        id=f"{family.name}-{key}",
        family=family.name,
        vendor=family.vendor,
        label=_str(entry, "label", where),
        slots=slots,
        ua_models=tuple(str(u).upper() for u in _list(entry.get("ua_models", []))),
        code=str(code) if code is not None else None,
        firmware=_optional_str(entry, "firmware", where),
        orderable=bool(entry.get("orderable", False)),
        price_cents=price,
        confirmed=bool(entry.get("confirmed", False)),
        unwritten=unwritten,
    )


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: [{key}] must be a table")
    return value


def _str(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogError(f"{where}: {key} must be a non-empty string")
    return value


def _optional_str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or "/" in value or ".." in value:
        raise CatalogError(f"{where}: {key} must be a file name pattern without folders")
    return value


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else [value]
