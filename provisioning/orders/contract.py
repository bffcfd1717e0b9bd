"""The contract a customer accepts when validating an order: the operator's own text (an HTML
file, `CONTRACT_FILE`) or page (`CONTRACT_URL`), else the model shipped in `data/`, which says
that it is one. Each order records the version accepted: `CONTRACT_VERSION` when the operator
names it, else a digest of the text (or of the URL), so an edited contract is a new version
without anyone remembering to say so."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from provisioning.settings import Settings

DEFAULT_FILE = Path(__file__).resolve().parent / "data" / "contract.html"


@dataclass(frozen=True)
class Contract:
    version: str
    # Where the customer reads it: the operator's page, or "" for the Manager's own page.
    url: str
    # The text the Manager shows (trusted HTML: the operator's file, like the templates).
    html: str


def current_contract(settings: Settings) -> Contract:
    if settings.contract_url:
        version = settings.contract_version or _digest(settings.contract_url.encode())
        return Contract(version, settings.contract_url, "")
    path = settings.contract_file or DEFAULT_FILE
    stat = path.stat()
    html = _read(path, stat.st_mtime_ns, stat.st_size)
    return Contract(settings.contract_version or _digest(html.encode()), "", html)


def _digest(data: bytes) -> str:
    return "sha256-" + hashlib.sha256(data).hexdigest()[:12]


@lru_cache(maxsize=4)
def _read(path: Path, mtime_ns: int, size: int) -> str:
    # Keyed by modification time and size: a contract replaced on disk is read again.
    return path.read_text(encoding="utf-8")
