"""Build secrets: set, list and remove them, and decide which builds may have them.

Values are encrypted at rest (``ci.accounts.crypto``) and leave the server only inside the
job payload of a trusted build (a push, a tag, a manual run or a schedule's); the runner gives
each step only the secrets it names and masks their values in the log.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from ci import store
from ci.accounts import crypto
from ci.pipeline.events import TRUSTED_EVENTS
from ci.settings import Settings
from ci.store import Session, StoreError
from ci.store.models import Build, Repo

NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
MAX_VALUE_BYTES = 64 * 1024


@lru_cache(maxsize=8)
def _key(configured: str, data_dir: Path) -> bytes:
    return crypto.load_key(configured, data_dir)


def key(settings: Settings) -> bytes:
    return _key(settings.encryption_key, settings.data_dir)


def set_secret(session: Session, settings: Settings, repo: Repo, name: str, value: str) -> None:
    """Create or replace a secret and commit."""
    if not NAME.fullmatch(name):
        raise StoreError(f"{name!r} is not a secret name; use upper-case letters, digits and "
                         "`_`, not starting with a digit, e.g. DEPLOY_TOKEN")
    if not value:
        raise StoreError(f"the value of {name} is empty; give it on standard input")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise StoreError(f"the value of {name} is larger than {MAX_VALUE_BYTES // 1024} KiB")
    store.set_secret(session, repo, name, crypto.encrypt(key(settings), value))


def remove_secret(session: Session, repo: Repo, name: str) -> bool:
    """Delete a secret and commit; False when ``repo`` has none of that name."""
    return store.remove_secret(session, repo, name)


def names(repo: Repo) -> list[str]:
    return [secret.name for secret in repo.secrets]


def withheld_reason(build: Build) -> str | None:
    """Why ``build`` gets no secrets, or None when it may have them."""
    if build.fork:
        return "secrets are never given to pull requests from forks"
    if build.event not in TRUSTED_EVENTS:
        return f"secrets are only given to {', '.join(TRUSTED_EVENTS)} builds, not {build.event}"
    return None


def seal(settings: Settings, values: dict[str, str]) -> str:
    """``values`` as one encrypted token for the job payload ("" when there are none)."""
    return crypto.encrypt(key(settings), json.dumps(values)) if values else ""


def for_build(settings: Settings, repo: Repo, build: Build) -> dict[str, str]:
    """The decrypted secrets a trusted build's jobs carry; empty for any other build."""
    if withheld_reason(build) or not repo.secrets:
        return {}
    return {secret.name: crypto.decrypt(key(settings), secret.value) for secret in repo.secrets}
