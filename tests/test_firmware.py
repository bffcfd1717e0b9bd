"""Firmware files: served from the firmware folder with HTTP ranges, nothing outside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from provisioning.phones.firmware import safe_path

IMAGE = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def image(firmware_dir: Path) -> Path:
    folder = firmware_dir / "yealink"
    folder.mkdir()
    path = folder / "T46U-108.86.0.20.rom"
    path.write_bytes(IMAGE)
    (firmware_dir / ".hidden").write_bytes(b"secret")
    return path


async def test_whole_file(client: TestClient, image: Path) -> None:
    resp = await client.get("/firmware/yealink/T46U-108.86.0.20.rom")
    assert resp.status == 200
    assert await resp.read() == IMAGE
    assert resp.headers.get("Accept-Ranges") == "bytes"


async def test_range_resumes_a_download(client: TestClient, image: Path) -> None:
    resp = await client.get(
        "/firmware/yealink/T46U-108.86.0.20.rom", headers={"Range": "bytes=1000-1999"}
    )
    assert resp.status == 206
    assert await resp.read() == IMAGE[1000:2000]
    assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(IMAGE)}"
    tail = await client.get(
        "/firmware/yealink/T46U-108.86.0.20.rom", headers={"Range": "bytes=-10"}
    )
    assert await tail.read() == IMAGE[-10:]


async def test_unsatisfiable_range(client: TestClient, image: Path) -> None:
    resp = await client.get(
        "/firmware/yealink/T46U-108.86.0.20.rom", headers={"Range": "bytes=999999-"}
    )
    assert resp.status == 416


@pytest.mark.parametrize(
    "path",
    ["/firmware/.hidden", "/firmware/yealink", "/firmware/missing.rom", "/firmware/yealink/"],
)
async def test_hidden_missing_and_folders_are_404(
    client: TestClient, image: Path, path: str
) -> None:
    resp = await client.get(path)
    assert resp.status == 404
    assert await resp.read() == b""


def test_safe_path_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "fw"
    root.mkdir()
    (root / "ok.rom").write_bytes(b"x")
    (tmp_path / "outside").write_bytes(b"x")
    (root / "link").symlink_to(tmp_path / "outside")
    assert safe_path(root, "ok.rom") == (root / "ok.rom").resolve()
    for bad in ["../outside", "link", "/etc/passwd", "a/../../outside", "ok.rom\x00", "", "a\\b"]:
        assert safe_path(root, bad) is None, bad
