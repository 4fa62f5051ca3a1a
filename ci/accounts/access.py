"""Who may see and who may change a repository.

Anyone may read a public repository; a private one only its users with access.
Changing anything (triggering, canceling, settings, secrets) needs ``write``.
Admins may do everything everywhere. Shared by the views and the CLI.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable, TypeVar

from ci import store
from ci.store import Session, StoreError
from ci.store.models import Repo, User

Row = TypeVar("Row", bound=tuple)


class Permission(StrEnum):
    """What a user granted access to a repository may do with it."""

    READ = "read"
    WRITE = "write"


def grant(session: Session, repo: Repo, user: User, permission: str) -> None:
    """Give ``user`` ``permission`` on ``repo``, replacing what they had, and commit."""
    if permission not in tuple(Permission):
        raise StoreError(f"{permission!r} is not a permission; choose read or write")
    store.set_access(session, repo, user, Permission(permission))


def revoke(session: Session, repo: Repo, user: User) -> bool:
    """Take ``user``'s access to ``repo`` away and commit; False when they had none."""
    return store.remove_access(session, repo, user)


def permission(session: Session, user: User | None, repo: Repo) -> Permission | None:
    """What ``user`` (None: someone not signed in) was granted on ``repo``."""
    if user is None:
        return None
    if user.admin:
        return Permission.WRITE
    granted = store.access_of(session, repo, user)
    return Permission(granted) if granted else None


def can_read(session: Session, user: User | None, repo: Repo) -> bool:
    return not repo.private or permission(session, user, repo) is not None


def can_write(session: Session, user: User | None, repo: Repo) -> bool:
    return permission(session, user, repo) == Permission.WRITE


def visible(session: Session, user: User | None, rows: Iterable[Row]) -> list[Row]:
    """The rows (each starting with a repo) whose repository ``user`` may read."""
    if user is not None and user.admin:
        return list(rows)
    granted = store.granted_repo_ids(session, user) if user is not None else set()
    return [row for row in rows if not row[0].private or row[0].id in granted]
