"""Secrets at rest: SIP passwords and device tokens encrypted with Fernet (MultiFernet, so the key
can be rotated: the first key encrypts, every key decrypts), URL tokens looked up by hash."""

from __future__ import annotations

import hashlib
import secrets as _random

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

TOKEN_BYTES = 24  # 192 bits: unguessable, and 32 URL-safe characters


class SecretKeyError(RuntimeError):
    """Stored secrets cannot be decrypted with the configured keys."""


class Cipher:
    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise SecretKeyError(
                "PROVISIONING_SECRET_KEY is not set; create one with `provisioning secret generate`"
            )
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def rotate(self, token: str) -> str:
        """Re-encrypt with the first key (the stored plaintext never leaves this call)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted: PROVISIONING_SECRET_KEY does not hold "
                "the key it was encrypted with"
            ) from None

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted: PROVISIONING_SECRET_KEY does not hold "
                "the key it was encrypted with"
            ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def new_device_token() -> str:
    return _random.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    # Tokens carry 192 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
