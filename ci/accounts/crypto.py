"""Encryption at rest for what Slipway must be able to read back: build secrets and
forge tokens. Fernet (AES-128-CBC with an HMAC), keyed from the settings.

The key comes from ``SLIPWAY_ENCRYPTION_KEY`` (a Fernet key) or is generated once
into the data folder; losing it makes stored secrets unreadable, so back it up
with the database.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ci.settings import kept_secret


class CryptoError(ValueError):
    """A stored value cannot be decrypted (the key changed); the message says what to do."""


def load_key(configured: str, data_dir: Path) -> bytes:
    """The configured key, or the one kept in ``data_dir`` (made on first use)."""
    if configured:
        try:
            Fernet(configured.encode())
        except ValueError:
            raise CryptoError("SLIPWAY_ENCRYPTION_KEY is not a Fernet key; make one with "
                              "`python3 -c 'from cryptography.fernet import Fernet; "
                              "print(Fernet.generate_key().decode())'`") from None
        return configured.encode()
    return kept_secret(data_dir, "encryption_key", lambda: Fernet.generate_key().decode()).encode()


def encrypt(key: bytes, value: str) -> str:
    return Fernet(key).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(key: bytes, token: str) -> str:
    try:
        return Fernet(key).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise CryptoError("a stored secret cannot be decrypted with the current key; was "
                          "SLIPWAY_ENCRYPTION_KEY or the data folder's encryption_key "
                          "changed?") from None
