"""`provisioning templates check`: render every file of every model of every family with sample
data, validate the output for its format, and make sure no file meant to be public carries a
secret. Sample values are hostile on purpose (quotes, markup, non-ASCII), so escaping is checked
too."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from provisioning.devices.catalog import Catalog
from provisioning.render.context import DeviceData, LineData
from provisioning.render.environment import Renderer, RenderError, RenderRefused
from provisioning.render.files import device_files, render_file
from provisioning.render.validate import validate
from provisioning.settings import Settings

SAMPLE_MAC = "0015654aa937"
SAMPLE_TOKEN = "SampleToken-0123456789abcdefABCDEF"
SAMPLE_PASSWORD = "s3cr\u00e9t<&>\"'pw"


@dataclass
class CheckResult:
    family: str
    model: str
    file: str
    problems: list[str] = field(default_factory=list)


def sample_device(model_id: str, slots: int, used: int, *, tame: bool = False) -> DeviceData:
    """Sample data, hostile on purpose. `tame`: passwords without the double quote, for the
    formats whose templates refuse one (`refuse`, e.g. the Gigaset N510's quoted strings)."""
    password = SAMPLE_PASSWORD.replace('"', "") if tame else SAMPLE_PASSWORD
    lines = {
        slot: LineData(
            number=f"+3312345678{slot:02d}",
            user=f"user{slot}",
            auth_user=f"auth{slot}",
            password=f"{password}{slot}",
            display_name=f'Zo\u00e9 "L\'<Admin>" & Co {slot}',
            registrar_host="sip.example.net",
            registrar_port=5060,
            transport=("udp", "tcp", "tls")[slot % 3],
        )
        for slot in range(1, min(used, slots) + 1)
    }
    return DeviceData(
        id=1,
        mac=SAMPLE_MAC,
        model_id=model_id,
        revision=1,
        token=SAMPLE_TOKEN,
        account_name="Sample & <Account>",
        timezone="Europe/Paris",
        language="fr",
        lines=lines,
    )


def _stray_overrides(catalog: Catalog, override_dir: Path | None) -> list[CheckResult]:
    """An override file that replaces no shipped template is most likely a typo."""
    if override_dir is None:
        return []
    stray = []
    for path in sorted(override_dir.glob("*/*")):
        family = catalog.families.get(path.parent.name)
        if family is None or not (family.path / path.name).is_file():
            result = CheckResult(path.parent.name, "-", path.name)
            result.problems.append(f"override {path} replaces no shipped template")
            stray.append(result)
    return stray


def _with_digest(data: DeviceData, *, tame: bool = False) -> DeviceData:
    """With an HTTP digest credential: it must be escaped and stay out of public files."""
    password = SAMPLE_PASSWORD.replace('"', "") if tame else SAMPLE_PASSWORD
    return replace(data, http_username=SAMPLE_MAC, http_password=password + "http")


def check_templates(catalog: Catalog, settings: Settings) -> list[CheckResult]:
    renderer = Renderer(catalog, settings.templates_override_dir)
    results = _stray_overrides(catalog, settings.templates_override_dir)
    for family in catalog:
        for model in family.models.values():
            # Full phone, and one line only (the other slots must be written disabled).
            for used in sorted({model.slots, 1}):
                data = _with_digest(sample_device(model.id, model.slots, used))
                tame_lines = sample_device(model.id, model.slots, used, tame=True)
                tame = _with_digest(tame_lines, tame=True)
                for name, spec in device_files(catalog, model.id, data.mac):
                    result = CheckResult(family.name, model.id, f"{name} ({used} line(s))")
                    try:
                        try:
                            body = render_file(renderer, settings, data, spec).body
                        except RenderRefused:
                            # A deliberate refusal of the hostile sample (a clear error for
                            # the operator): what the template writes is checked on the tame one.
                            body = render_file(renderer, settings, tame, spec).body
                    except RenderError as exc:
                        result.problems.append(str(exc))
                        results.append(result)
                        continue
                    result.problems.extend(validate(spec.format, body))
                    if not spec.secret:
                        text = body.decode("utf-8", "replace")
                        if SAMPLE_TOKEN in text or "s3cr" in text:
                            result.problems.append(
                                "file is marked secret = false but carries a secret"
                            )
                    results.append(result)
    return results
