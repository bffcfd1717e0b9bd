"""Which files a device has, and rendering one of them: shared by the phone endpoint and the CLI,
so `provisioning render` prints exactly what the phone gets."""

from __future__ import annotations

import hashlib
import logging
import re
from urllib.parse import quote
from xml.sax.saxutils import escape

from provisioning.devices.catalog import Catalog, Family, FileSpec, Model
from provisioning.devices.identify import FileMatch
from provisioning.render.cache import Rendered
from provisioning.render.context import DeviceData, build_context
from provisioning.render.environment import Renderer, RenderError, RenderRefused, RenderUnsafe
from provisioning.render.overrides import apply_overrides
from provisioning.settings import Settings

log = logging.getLogger(__name__)


def device_files(catalog: Catalog, model_id: str, mac: str) -> list[tuple[str, FileSpec]]:
    family = catalog.family_of(model_id)
    model = family.models[model_id]
    return [
        (name, spec)
        for spec in family.files
        if (name := spec.name_for(mac, model.code, family.mac_case)) is not None
    ]


def spec_for(catalog: Catalog, model_id: str, matches: list[FileMatch]) -> FileSpec | None:
    """Among the family specs a requested name fits, the one of the device's own family."""
    family = catalog.family_of(model_id)
    for match in matches:
        if match.family is family:
            return match.spec
    return None


def firmware_url(settings: Settings, family: Family, model: Model) -> str:
    """URL of the newest image matching the model's `firmware` glob in `firmware/<family>/`."""
    if model.firmware is None:
        return ""
    folder = settings.firmware_dir / family.name
    images = sorted(
        (p for p in folder.glob(model.firmware) if p.is_file() and not p.name.startswith(".")),
        key=lambda p: _natural(p.name),
    )
    if not images:
        return ""
    return f"{settings.base_url}/firmware/{family.name}/{quote(images[-1].name)}"


def _natural(name: str) -> list[tuple[int, int | str]]:
    # "…-108.86.0.9.rom" < "…-108.86.0.20.rom": compare digit runs as numbers.
    return [
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part)
        for part in re.split(r"([0-9]+)", name)
    ]


MASK = "********"


def masked(body: bytes, data: DeviceData) -> str:
    """The file as text with every secret replaced, in raw and XML-escaped spellings."""
    text = body.decode("utf-8")
    secrets = {data.token} | {line.password for line in data.lines.values()}
    secrets |= {data.http_password} - {""}
    for secret in sorted(secrets, key=len, reverse=True):
        for spelling in {secret, escape(secret), escape(secret, {'"': "&#34;", "'": "&#39;"})}:
            text = text.replace(spelling, MASK)
    return text


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def render_file(
    renderer: Renderer, settings: Settings, data: DeviceData, spec: FileSpec
) -> Rendered:
    family = renderer.catalog.family_of(data.model_id)
    model = family.models[data.model_id]
    context = build_context(
        data,
        family,
        model,
        base_url=settings.base_url,
        poll_interval=settings.poll_interval,
        firmware_url=firmware_url(settings, family, model),
    )
    body = renderer.render(family, spec, context)
    if spec.secret and data.overrides:
        # Per-device files only: common files are shared by every phone of the model.
        body = apply_overrides(spec.format, body, data.overrides)
    return Rendered(body=body, etag=etag_of(body), content_type=spec.content_type)


def refusal_of(
    renderer: Renderer, settings: Settings, data: DeviceData, before: DeviceData | None = None
) -> str | None:
    """Why the device's files cannot be written (the first file a template `refuse(...)`s, e.g.
    a double quote in a Gigaset N510 credential, or whose format cannot carry a value), or None.
    For the domain functions that assign a line or change one (render.refusals): called before
    anything is written, it turns what a phone's format cannot carry into a clear refusal at that
    moment instead of a render error at the phone's next fetch.

    Any other render error (a template bug: a misspelt variable, a syntax error in an
    operator's override) refuses only when the change causes it: `before` (the device's data
    without the change) renders that file. A file that fails without the change is logged and
    skipped, and the other files are still checked: refusing would block every change of the
    phone's lines, including the one that repairs it, for a fault only the template's fix
    cures, and the phone's fetch reports that error itself (logged, 503, the phone retries)."""
    for name, spec in device_files(renderer.catalog, data.model_id, data.mac):
        try:
            render_file(renderer, settings, data, spec)
        except (RenderRefused, RenderUnsafe) as exc:
            return f"{name}: {exc}"
        except RenderError as exc:
            if before is not None and _renders(renderer, settings, before, spec):
                return f"{name}: {exc}"
            log.error("files check of device %s: %s not checked: %s", data.mac, name, exc)
    return None


def _renders(renderer: Renderer, settings: Settings, data: DeviceData, spec: FileSpec) -> bool:
    try:
        render_file(renderer, settings, data, spec)
    except RenderError:
        return False
    return True
