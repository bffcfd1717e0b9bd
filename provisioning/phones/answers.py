"""Answers the phone lane gives again to the very same request head.

A phone asks for its files with the same request head every time: the same path, User-Agent,
Host and, once it holds a copy, the same If-None-Match. In a boot storm most of a fetch's time
goes into working out, again, the answer it got last time (parsing the head, identifying and
authorising, looking up the file), while nothing that answer depends on has changed. So the
lane keeps, per head, the last answer the whole fetch path gave it, when that answer was decided
from the head, the device row and the account's policy alone (`Found.replay_from`): a plain
token fetch, served, with no digest answer, certificate, binding or first-contact window. It is
given again only while

- the device rows' `row_generation` is still the one the answer was decided at (lookup.py: it
  moves in the same transaction as any change to a device, its token, revision, model, account
  or orders, whoever commits it), read after each request arrived (on PostgreSQL one read
  serves every request that arrived before it was sent);
- the account's policy is still the same;

and after the same steps a fetch takes around it: ban check and shedding first (`Lane`), the
sighting recorded after (`files.fetch_again`), metrics and access log. Anything else, or
any doubt (the generation moved, the database does not answer), goes the whole fetch path,
which answers and may keep its new answer. A different byte in the head is another head.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

from provisioning.phones.request import Reply

MAX_HEAD = 1024  # phones' heads are a few hundred bytes; a larger one is not worth the memory


class Kept:
    """An answer and the request head facts the lane parsed when it was first given."""

    __slots__ = (
        "file_name", "headers", "keep_alive", "method", "raw_path", "reply", "token", "version",
        "wire",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        raw_path: str,
        headers: CIMultiDictProxy[str],
        keep_alive: bool,
        version: str,
        file_name: str,
        token: str | None,
        reply: Reply,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.headers = headers  # read-only: shared by every request given this answer
        self.keep_alive = keep_alive
        self.version = version
        self.file_name = file_name  # what the whole path needs when the answer no longer holds
        self.token = token
        self.reply = reply
        # The answer's bytes around its Date and request id, and its body (made by the lane).
        self.wire: tuple[bytes, bytes, bytes] | None = None


class Answers:
    """At most `size` answers by head, the oldest forgotten first (a forgotten one only costs
    its next fetch the whole path)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[bytes, Kept] = {}
        self.given = 0  # answers given again
        self.stale = 0  # kept answers found no longer true

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, head: bytes) -> Kept | None:
        return self._kept.get(head)

    def put(self, head: bytes, kept: Kept) -> None:
        if self.size <= 0 or len(head) > MAX_HEAD or kept.reply.replay is None:
            return
        if head not in self._kept and len(self._kept) >= self.size:
            del self._kept[next(iter(self._kept))]
        self._kept[head] = kept

    def forget(self, head: bytes) -> None:
        self._kept.pop(head, None)

    def clear(self) -> None:
        self._kept.clear()
