"""Digest authentication, client side (RFC 2617 / RFC 7616 / RFC 3261 §22): answering a 401 or
407 challenge with a line's credentials."""

from __future__ import annotations

import hashlib
import re
import secrets

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(header: str) -> dict[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(rest)}


def _h(algorithm: str, text: str) -> str:
    return HASHES[algorithm](text.encode("utf-8")).hexdigest()


def authorization(
    challenge: dict[str, str],
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str | None:
    """The Authorization header value, or None if the challenge asks for what we cannot do."""
    algorithm = challenge.get("algorithm", "MD5").upper()
    if algorithm not in HASHES or "nonce" not in challenge:
        return None
    realm, nonce = challenge.get("realm", ""), challenge["nonce"]
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
    ]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        count = f"{nc:08x}"
        response = _h(algorithm, f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    elif qops:
        return None  # auth-int only: not for bodiless requests we send
    else:
        response = _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)
