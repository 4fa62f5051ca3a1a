"""Webhook secrets at rest: encrypted like forge tokens, read back on every webhook.

A webhook is checked against the secret itself (an HMAC key; GitLab sends it as is), so
it is encrypted rather than hashed, with the key of ``ci.accounts.crypto``. A row says
whether its secret is encrypted (``Repo.webhook_secret_encrypted``): rows from before
that flag hold it in clear, still work, and are encrypted by the next ``slipway db
upgrade``, which has the key a schema migration lacks.
"""

from __future__ import annotations

from functools import lru_cache

from ci import store
from ci.accounts import crypto, repo_secrets
from ci.settings import Settings
from ci.store import Session, StoreError
from ci.store.models import Repo


def register(session: Session, settings: Settings, full_name: str, forge: str, clone_url: str,
             secret: str, default_branch: str = "main") -> Repo:
    """Register a repository with its webhook secret encrypted, and commit.

    Raises:
        StoreError: the secret is empty, or ``store.add_repo`` refuses the rest.
    """
    if not secret:
        raise StoreError("the webhook secret is empty; choose a long random string")
    return store.add_repo(session, full_name, forge, clone_url,
                          crypto.encrypt(repo_secrets.key(settings), secret), default_branch,
                          secret_encrypted=True)


def reveal(settings: Settings, repo: Repo) -> str:
    """The webhook secret of ``repo`` in clear, to check a webhook against.

    Raises:
        crypto.CryptoError: the encryption key changed since the secret was stored.
    """
    if not repo.webhook_secret_encrypted:
        return repo.webhook_secret
    return _decrypted(repo_secrets.key(settings), repo.webhook_secret)


@lru_cache(maxsize=4096)
def _decrypted(key: bytes, token: str) -> str:
    """Decrypted once per process: Fernet costs tens of µs, a webhook takes about 1 ms."""
    return crypto.decrypt(key, token)


def encrypt_clear(session: Session, settings: Settings) -> int:
    """Encrypt the webhook secrets still stored in clear, and commit; how many there were.

    The key is loaded only when there is one to encrypt.
    """
    return store.encrypt_clear_webhook_secrets(
        session, lambda secret: crypto.encrypt(repo_secrets.key(settings), secret))
