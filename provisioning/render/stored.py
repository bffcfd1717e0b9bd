"""Rendered files kept durably (`rendered_files`): each device's files rendered once per config
revision, in the background after a change (render.prerender) or at the first fetch that asks,
so that a phone's first fetch after a restart (a power cut) is one indexed read, not a render.

Measured (`benchmarks/phone_lane.py --cold`): rendering is two thirds of a first fetch's CPU
time, decrypting the lines' passwords another tenth.

A stored row is used only when three things hold, so it can never serve bytes older than what
the database says now:
- its `revision` is the device's `config_revision` read by this fetch (any change to what a
  device's files say moves that number in the same transaction: push.changes);
- its `fingerprint` is this server's: the templates, the settings rendering reads, the
  firmware images offered, the code that renders and the key (a new template set, a new
  public URL or a new firmware makes every stored row stale at the next start);
- its seal opens: AES-GCM with a key derived from the first secret key, the device, file name
  and revision bound to it, so a row copied onto another device's does not open.

The bodies hold SIP passwords: they are compressed, then sealed; nothing in clear at rest.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from provisioning.settings import Settings

# Bump when stored rows must not be read any more (their layout, not their content, changed).
LAYOUT = b"rendered-files 1"
_RENDER_CODE = Path(__file__).resolve().parent  # render/*.py: what turns rows into bytes


class Sealer:
    """Seals and opens stored bodies with a key derived from the first secret key."""

    def __init__(self, secret_key: str) -> None:
        material = base64.urlsafe_b64decode(secret_key.encode("ascii"))
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"provisioning rendered files"
        ).derive(material)
        self._aead = AESGCM(key)
        # Which key sealed a row, without saying anything about the key (a hash of a hash).
        self.key_id = hashlib.sha256(b"key id " + key).hexdigest()[:16]

    @staticmethod
    def _bound(device_id: int, file_name: str, revision: int) -> bytes:
        return f"{device_id}/{file_name}/{revision}".encode()

    def seal(self, body: bytes, device_id: int, file_name: str, revision: int) -> bytes:
        nonce = os.urandom(12)
        packed = zlib.compress(body, 6)
        return nonce + self._aead.encrypt(
            nonce, packed, self._bound(device_id, file_name, revision)
        )

    def open(self, sealed: bytes, device_id: int, file_name: str, revision: int) -> bytes | None:
        """The body, or None when this row cannot be trusted (another key, another device's
        row, damaged): the caller renders instead."""
        try:
            packed = self._aead.decrypt(
                sealed[:12], sealed[12:], self._bound(device_id, file_name, revision)
            )
            return zlib.decompress(packed)
        except (InvalidTag, ValueError, zlib.error):
            return None


@dataclass(frozen=True)
class StoredFiles:
    """What a process needs to read and write kept files: its sealer and fingerprint."""

    sealer: Sealer
    fingerprint: str

    @classmethod
    def for_settings(cls, settings: Settings) -> StoredFiles:
        sealer = Sealer(settings.secret_key[0])
        return cls(sealer, fingerprint(settings, sealer))


def _files(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def fingerprint(settings: Settings, sealer: Sealer) -> str:
    """What a stored body was made from besides the database rows (module docstring)."""
    digest = hashlib.sha256(LAYOUT)
    for label, folder, contents in (
        (b"templates", settings.templates_dir, True),
        (b"overrides", settings.templates_override_dir, True),
        (b"code", _RENDER_CODE, True),
        # Only the images' names: the newest matching one is named in the files.
        (b"firmware", settings.firmware_dir, False),
    ):
        digest.update(b"\0" + label)
        for path in _files(folder):
            assert folder is not None
            digest.update(b"\0" + str(path.relative_to(folder)).encode("utf-8", "surrogateescape"))
            if contents:
                digest.update(b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for value in (
        settings.base_url,
        str(settings.poll_interval),
        settings.default_timezone,
        settings.default_language,
        sealer.key_id,
    ):
        digest.update(b"\0" + value.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]
