"""Which files a device has, and rendering one of them: shared by the phone endpoint and the CLI,
so `provisioning render` prints exactly what the phone gets."""

from __future__ import annotations

import hashlib

from provisioning.devices.catalog import Catalog, FileSpec
from provisioning.devices.identify import FileMatch
from provisioning.render.cache import Rendered
from provisioning.render.context import DeviceData, build_context
from provisioning.render.environment import Renderer
from provisioning.settings import Settings


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


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def render_file(
    renderer: Renderer, settings: Settings, data: DeviceData, spec: FileSpec
) -> Rendered:
    family = renderer.catalog.family_of(data.model_id)
    model = family.models[data.model_id]
    context = build_context(
        data, family, model, base_url=settings.base_url, poll_interval=settings.poll_interval
    )
    body = renderer.render(family, spec, context)
    return Rendered(body=body, etag=etag_of(body), content_type=spec.content_type)
