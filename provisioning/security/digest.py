"""HTTP digest (RFC 7616), MD5 and SHA-256, `qop=auth`, for phones that send a username (the MAC)
and a per-device password.

Nonces are issued by the server and signed (HMAC with a key derived from the secret key), so any
instance can check any instance's nonce without shared state; they expire. A nonce-count may be
used once: each (nonce, nc) pair is recorded in the database until the nonce expires (see
`record_use`), so a captured Authorization header is refused by every instance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import DigestNonceUse, utcnow

ALGORITHMS = {
    "MD5": hashlib.md5,
    "MD5-SESS": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-SESS": hashlib.sha256,
}
# Offered in this order: clients take the first they support (RFC 7616, section 3.7).
OFFERED = ("SHA-256", "MD5")
MAX_HEADER = 4096
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)')


@dataclass(frozen=True)
class DigestAnswer:
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str
    nc: str
    cnonce: str


def parse_authorization(header: str) -> DigestAnswer | None:
    """The fields of an `Authorization: Digest ...` header, or None when it is not one we can
    check (another scheme, a missing field, `userhash`, no `qop=auth`)."""
    if len(header) > MAX_HEADER:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    fields: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            return None
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in fields:
            return None
        fields[name] = value
        position = match.end()
    algorithm = fields.get("algorithm", "MD5").upper()
    wanted = ("username", "realm", "nonce", "uri", "response", "nc", "cnonce")
    if algorithm not in ALGORITHMS or fields.get("qop", "").lower() != "auth":
        return None
    if any(not fields.get(name) for name in wanted) or fields.get("userhash", "false") != "false":
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{8}", fields["nc"]) or len(fields["cnonce"]) > 256:
        return None
    return DigestAnswer(
        username=fields["username"],
        realm=fields["realm"],
        nonce=fields["nonce"],
        uri=fields["uri"],
        response=fields["response"].lower(),
        algorithm=algorithm,
        qop="auth",
        nc=fields["nc"].lower(),
        cnonce=fields["cnonce"],
    )


def expected_response(answer: DigestAnswer, password: str, method: str) -> str:
    """The `response` a client knowing `password` computes (RFC 7616, section 3.4.1)."""
    h = ALGORITHMS[answer.algorithm]

    def hex_of(text: str) -> str:
        return h(text.encode("utf-8")).hexdigest()

    ha1 = hex_of(f"{answer.username}:{answer.realm}:{password}")
    if answer.algorithm.endswith("-SESS"):
        ha1 = hex_of(f"{ha1}:{answer.nonce}:{answer.cnonce}")
    ha2 = hex_of(f"{method}:{answer.uri}")
    return hex_of(f"{ha1}:{answer.nonce}:{answer.nc}:{answer.cnonce}:{answer.qop}:{ha2}")


def verify_response(answer: DigestAnswer, password: str, method: str) -> bool:
    return hmac.compare_digest(expected_response(answer, password, method), answer.response)


def uri_matches(answer: DigestAnswer, raw_path: str) -> bool:
    """The answer was computed for this very request target (a header captured for one file
    never opens another). Absolute-form URIs are compared by path and query."""
    if answer.uri == raw_path:
        return True
    parts = urlsplit(answer.uri)
    if not parts.scheme:
        return False
    return (parts.path + (f"?{parts.query}" if parts.query else "")) == raw_path


class NonceState:
    FRESH = "fresh"
    STALE = "stale"  # ours, but expired: the client may retry with a new nonce (stale=true)
    INVALID = "invalid"  # not ours


class Nonces:
    """Signed nonces: 8 bytes of issue time, 12 random bytes, 16 bytes of HMAC-SHA256 over
    both, base64url. Every instance holding the secret key issues and checks them alike."""

    def __init__(self, secret_keys: tuple[str, ...], lifetime: int) -> None:
        # One derived key per secret key: nonces survive a key rotation like stored secrets do.
        self._keys = [
            hmac.new(key.encode("ascii"), b"provisioning digest nonce", hashlib.sha256).digest()
            for key in secret_keys
        ]
        self.lifetime = lifetime

    def issue(self, *, now: float | None = None) -> str:
        stamp = struct.pack(">Q", int(time.time() if now is None else now))
        body = stamp + secrets.token_bytes(12)
        mac = hmac.new(self._keys[0], body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")

    def check(self, nonce: str, *, now: float | None = None) -> str:
        if len(nonce) != 48:
            return NonceState.INVALID
        try:
            raw = base64.urlsafe_b64decode(nonce + "==")
        except (ValueError, TypeError):
            return NonceState.INVALID
        body, mac = raw[:20], raw[20:]
        if not any(
            hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest()[:16], mac)
            for key in self._keys
        ):
            return NonceState.INVALID
        (issued,) = struct.unpack(">Q", body[:8])
        age = (time.time() if now is None else now) - issued
        if age < -5 or age > self.lifetime:  # a few seconds of clock skew between instances
            return NonceState.STALE
        return NonceState.FRESH

    def expiry(self, nonce: str) -> datetime:
        raw = base64.urlsafe_b64decode(nonce + "==")
        (issued,) = struct.unpack(">Q", raw[:8])
        return datetime.fromtimestamp(issued, UTC) + timedelta(seconds=self.lifetime + 5)


def challenges(realm: str, nonce: str, *, stale: bool = False) -> list[str]:
    """`WWW-Authenticate` values, one per algorithm, strongest first."""
    extra = ", stale=true" if stale else ""
    return [
        f'Digest realm="{realm}", qop="auth", algorithm={algorithm}, nonce="{nonce}"{extra}'
        for algorithm in OFFERED
    ]


async def record_use(session: AsyncSession, nonce: str, nc: str, expires_at: datetime) -> bool:
    """Record that (nonce, nc) was used; False when it already was (a replay). The primary key
    decides, on every instance alike."""
    session.add(DigestNonceUse(nonce=nonce, nc=int(nc, 16), expires_at=expires_at))
    try:
        await session.flush()
    except IntegrityError:
        return False
    return True


async def forget_expired(session: AsyncSession) -> None:
    await session.execute(delete(DigestNonceUse).where(DigestNonceUse.expires_at <= utcnow()))
