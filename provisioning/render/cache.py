"""Per-instance cache of rendered files, keyed by device, config revision and file name.

A change anywhere bumps the device's revision in the database, so an instance can never serve a
file another instance has changed: the key it looks up no longer exists."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str
    content_type: str


CacheKey = tuple[int, int, str]


class RenderCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, Rendered] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> Rendered | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: CacheKey, value: Rendered) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
