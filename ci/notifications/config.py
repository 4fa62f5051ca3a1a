"""Who hears of a repository's builds: its addresses and hooks, checked before they are
stored, the same way for the CLI and the API.

A bad value is refused with a message that says what to give, and nothing is changed:
a request changes everything it asks for or nothing. Hook secrets are stored encrypted
(``ci.accounts.crypto``, like forge tokens) and never shown again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ci import store
from ci.accounts import crypto, repo_secrets
from ci.notifications.outcome import ALWAYS, HOOK_EVENTS
from ci.settings import Settings
from ci.store import Session, StoreError
from ci.store.models import NotificationHook, Repo

MAX_RECIPIENTS = 20
MAX_HOOKS = 20
MAX_ADDRESS_CHARS = 254
MAX_URL_CHARS = 2000
MAX_SECRET_CHARS = 1000
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A plain address, ``local@domain.example``: no display name, no comments, nothing a
#: mail header could be bent with.
ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


@dataclass(frozen=True)
class HookChange:
    """One hook of a new configuration: an existing one (``hook_id``, keeping its URL and
    secret) or a new one (``url`` and ``secret``)."""

    hook_id: int | None = None
    url: str | None = None
    secret: str | None = None
    events: str = ALWAYS


def check_address(address: str) -> str:
    """``address`` without surrounding blanks; a :class:`StoreError` if it is not one."""
    address = address.strip()
    if len(address) > MAX_ADDRESS_CHARS or not ADDRESS.fullmatch(address):
        raise StoreError(f"{address[:MAX_ADDRESS_CHARS]!r} is not an e-mail address; give "
                         "one like dev@example.com")
    return address


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL Slipway can POST to; a :class:`StoreError` otherwise."""
    parts = urlsplit(url.strip())
    if (len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname
            or any(ord(char) < 33 for char in url.strip())):
        raise StoreError(f"{url[:100]!r} is not a hook URL; give an http:// or https:// URL "
                         f"of at most {MAX_URL_CHARS} characters")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise StoreError(f"{url[:100]!r} has a port that is not a number") from None
    return url.strip()


def check_events(events: str) -> str:
    if events not in HOOK_EVENTS:
        raise StoreError(f"{events!r} is not a choice of builds; use one of "
                         f"{', '.join(HOOK_EVENTS)}")
    return events


def check_secret(secret: str) -> str:
    if not secret.strip() or len(secret) > MAX_SECRET_CHARS:
        raise StoreError(f"the hook's secret must be 1 to {MAX_SECRET_CHARS} characters; "
                         "the receiver checks the signature with it")
    return secret


def _distinct(addresses: list[str]) -> list[str]:
    """``addresses`` checked, each once (whatever its case), at most :data:`MAX_RECIPIENTS`."""
    seen: dict[str, str] = {}
    for address in addresses:
        seen.setdefault(check_address(address).lower(), address.strip())
    if len(seen) > MAX_RECIPIENTS:
        raise StoreError(f"at most {MAX_RECIPIENTS} addresses per repository; "
                         f"this would make {len(seen)}")
    return list(seen.values())


def change_emails(session: Session, repo: Repo, add: list[str], remove: list[str]) -> list[str]:
    """Add and remove addresses mailed about ``repo``, commit, and return them all."""
    current = store.notification_emails(session, repo)
    known = {address.lower() for address in current}
    gone = {check_address(address).lower() for address in remove}
    missing = sorted(gone - known)
    if missing:
        raise StoreError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                         f"mailed about {repo.full_name}; nothing was changed")
    wanted = _distinct([address for address in current if address.lower() not in gone] + add)
    store.set_notification_emails(session, repo, wanted)
    return wanted


def add_hook(session: Session, settings: Settings, repo: Repo, url: str, secret: str,
             events: str = ALWAYS) -> NotificationHook:
    """Store a hook of ``repo`` with its secret encrypted, and commit."""
    url, secret, events = check_url(url), check_secret(secret), check_events(events)
    if len(store.notification_hooks(session, repo)) >= MAX_HOOKS:
        raise StoreError(f"{repo.full_name} has {MAX_HOOKS} hooks, the most it may have; "
                         "remove one first")
    return store.add_notification_hook(session, repo, url,
                                       crypto.encrypt(repo_secrets.key(settings), secret), events)


def replace(session: Session, settings: Settings, repo: Repo, emails: list[str] | None,
            hooks: list[HookChange] | None) -> None:
    """Make ``emails`` and ``hooks`` ``repo``'s (None: leave them as they are), and commit.

    Hooks not named are removed; a hook named by id keeps its URL and secret.
    """
    if emails is not None:
        emails = _distinct(emails)
    kept: dict[int, str] = {}
    added: list[tuple[str, str, str]] = []
    if hooks is not None:
        if len(hooks) > MAX_HOOKS:
            raise StoreError(f"at most {MAX_HOOKS} hooks per repository")
        existing = {hook.id for hook in store.notification_hooks(session, repo)}
        for change in hooks:
            events = check_events(change.events)
            if change.hook_id is not None:
                if change.hook_id not in existing or change.hook_id in kept:
                    raise StoreError(f"{repo.full_name} has no hook {change.hook_id} (or it "
                                     "is named twice); nothing was changed")
                kept[change.hook_id] = events
            elif change.url is None or change.secret is None:
                raise StoreError("a new hook needs a url and a secret; an existing one is "
                                 "named by its id")
            else:
                added.append((check_url(change.url), crypto.encrypt(
                    repo_secrets.key(settings), check_secret(change.secret)), events))
        store.replace_notification_hooks(session, repo, kept, added)
    if emails is not None:
        store.set_notification_emails(session, repo, emails)
    session.commit()
