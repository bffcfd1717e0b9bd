"""Firmware files from the `firmware/` folder: safe paths only, HTTP ranges (aiohttp's
FileResponse) so phones can resume large images."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from provisioning.phones.files import not_found
from provisioning.state import SERVICES


def safe_path(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root`, or None if it would leave it, is hidden, or is
    not a regular file."""
    if not relative or len(relative) > 255 or "\x00" in relative or "\\" in relative:
        return None
    parts = relative.split("/")
    if any(part in {"", ".", ".."} or part.startswith(".") for part in parts):
        return None
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


async def fetch_firmware(request: web.Request) -> web.StreamResponse:
    root = request.app[SERVICES].settings.firmware_dir
    path = safe_path(root, request.match_info.get("path", ""))
    if path is None:
        return not_found()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
