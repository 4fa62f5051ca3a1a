"""Opening the secrets a job carries, sealed by the server with the installation's key."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken


class SecretsUnavailable(RuntimeError):
    """This runner cannot open the job's secrets; the message says what to configure."""


def open_secrets(key: bytes | None, sealed: str) -> dict[str, str]:
    """The secrets in ``sealed`` (empty when the job has none)."""
    if not sealed:
        return {}
    if key is None:
        raise SecretsUnavailable("this runner has no key to open the job's secrets; set "
                                 "SLIPWAY_ENCRYPTION_KEY to the server's key")
    try:
        return json.loads(Fernet(key).decrypt(sealed.encode("ascii")))
    except (InvalidToken, ValueError):
        raise SecretsUnavailable("this runner's SLIPWAY_ENCRYPTION_KEY is not the server's, "
                                 "so the job's secrets cannot be opened") from None
