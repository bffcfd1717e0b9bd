"""Sandboxed Jinja environments, one per family, and the function that renders one file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from provisioning.devices.catalog import Catalog, Family, FileSpec
from provisioning.render.escaping import AUTOESCAPE, FINALIZERS, NEWLINES, UnsafeValue


class RenderError(Exception):
    """A template could not be rendered; the message names the template, never a secret."""


class RenderRefused(RenderError):
    """A template refused the device's data on purpose (`refuse(...)`): a value its vendor's
    format cannot carry. The message says which slot and why, never the value."""


class RenderUnsafe(RenderError):
    """A value the file's format cannot carry safely (render.escaping refused it: a line break,
    a `"` in Panasonic's `KEY="value"`); a template that knows the case says so with `refuse`."""


class TemplateRefusal(Exception):
    """Raised by `refuse(message)` inside a template."""


def refuse(message: str) -> None:
    """Templates call `{{ refuse("slot 2: ...") }}` when the data cannot be written faithfully:
    a clear error beats a file that silently drops or cuts a setting."""
    raise TemplateRefusal(str(message))


class Renderer:
    """Renders family templates. Templates may be edited by operators, so they run sandboxed,
    and a typo in a variable name fails loudly (StrictUndefined) instead of writing an empty
    setting to a phone."""

    def __init__(self, catalog: Catalog, override_dir: Path | None = None) -> None:
        self.catalog = catalog
        self.override_dir = override_dir
        # One environment per family and format: escaping follows the file, not the family
        # (Panasonic's text factory file beside its XML device file).
        self._envs = {
            (family.name, fmt): _environment(family, fmt, override_dir)
            for family in catalog
            for fmt in family.formats
        }

    def render(self, family: Family, spec: FileSpec, context: Mapping[str, Any]) -> bytes:
        env = self._envs[(family.name, spec.format)]
        try:
            template = env.get_template(spec.template)
            text = template.render(context)
        except TemplateRefusal as exc:
            raise RenderRefused(f"{family.name}/{spec.template}: {exc}") from None
        except UnsafeValue as exc:
            raise RenderUnsafe(f"{family.name}/{spec.template}: {exc}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"{family.name}/{spec.template}: {exc}") from None
        return text.encode("utf-8")


def sip_quoted(value: str) -> str:
    """Escape a display name for a SIP quoted-string (RFC 3261 quoted-pair)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _environment(family: Family, fmt: str, override_dir: Path | None = None) -> jinja2.Environment:
    # An operator's file of the same name wins over the shipped one; includes resolve the same
    # way, so overriding one partial is enough.
    folders = [family.path]
    if override_dir is not None:
        folders.insert(0, override_dir / family.name)
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folders),
        undefined=jinja2.StrictUndefined,
        autoescape=AUTOESCAPE[fmt],
        finalize=FINALIZERS[fmt],
        newline_sequence=NEWLINES[fmt],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["sip_quoted"] = sip_quoted
    env.globals["refuse"] = refuse
    return env
