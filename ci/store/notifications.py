"""Notifications' SQL: each repository's mailed addresses and outgoing webhooks, and the
build a finished build is compared with to tell "fixed" from "passed".

Values arrive checked (``ci.notifications.config``) and hook secrets encrypted. Functions
commit only where their docstring says so.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ci.pipeline.events import BRANCH_EVENTS, PULL_REQUEST
from ci.pipeline.status import Status
from ci.store.models import Build, NotificationEmail, NotificationHook, Repo

#: Ids are 32-bit in the database.
_MAX_ID = 2**31 - 1
#: The states that say how a branch is doing; a canceled build says nothing about it.
_VERDICTS = (Status.PASSED, Status.FAILED, Status.ERRORED)

__all__ = [
    "notification_emails",
    "set_notification_emails",
    "notification_hooks",
    "get_notification_hook",
    "add_notification_hook",
    "remove_notification_hook",
    "replace_notification_hooks",
    "notified_repos",
    "previous_verdict",
]


def notification_emails(session: Session, repo: Repo) -> list[str]:
    """The addresses mailed about ``repo``'s builds, in the order they were added."""
    return list(session.scalars(select(NotificationEmail.address)
                                .where(NotificationEmail.repo_id == repo.id)
                                .order_by(NotificationEmail.id)))


def set_notification_emails(session: Session, repo: Repo, addresses: list[str]) -> None:
    """Make ``addresses`` (distinct) the ones mailed about ``repo`` and commit; the rows of
    addresses kept stay as they were."""
    current = {row.address: row for row in session.scalars(
        select(NotificationEmail).where(NotificationEmail.repo_id == repo.id))}
    for address, row in current.items():
        if address not in addresses:
            session.delete(row)
    session.add_all(NotificationEmail(repo_id=repo.id, address=address)
                    for address in addresses if address not in current)
    session.commit()


def notification_hooks(session: Session, repo: Repo) -> list[NotificationHook]:
    """``repo``'s outgoing webhooks, oldest first."""
    return list(session.scalars(select(NotificationHook)
                                .where(NotificationHook.repo_id == repo.id)
                                .order_by(NotificationHook.id)))


def get_notification_hook(session: Session, hook_id: int,
                          repo: Repo | None = None) -> NotificationHook | None:
    """Hook ``hook_id`` (only if it is ``repo``'s, when given: an id never reaches another's)."""
    if not 0 < hook_id <= _MAX_ID:
        return None
    found = session.get(NotificationHook, hook_id)
    if found is None or (repo is not None and found.repo_id != repo.id):
        return None
    return found


def add_notification_hook(session: Session, repo: Repo, url: str, encrypted_secret: str,
                          events: str) -> NotificationHook:
    """Store a hook and commit."""
    hook = NotificationHook(repo_id=repo.id, url=url, secret=encrypted_secret, events=events)
    session.add(hook)
    session.commit()
    return hook


def remove_notification_hook(session: Session, repo: Repo, hook_id: int) -> bool:
    """Delete one of ``repo``'s hooks and commit; False when it has no such one."""
    found = get_notification_hook(session, hook_id, repo)
    if found is None:
        return False
    session.delete(found)
    session.commit()
    return True


def replace_notification_hooks(session: Session, repo: Repo, kept: dict[int, str],
                               added: list[tuple[str, str, str]]) -> None:
    """Keep the hooks of ``kept`` (id: events) with those events, add ``added`` (URL,
    encrypted secret, events), delete every other hook of ``repo``; no commit, so that the
    caller changes the addresses in the same transaction."""
    session.execute(delete(NotificationHook).where(NotificationHook.repo_id == repo.id,
                                                   NotificationHook.id.not_in(list(kept))))
    for hook in notification_hooks(session, repo):
        hook.events = kept[hook.id]
    session.add_all(NotificationHook(repo_id=repo.id, url=url, secret=secret, events=events)
                    for url, secret, events in added)


def notified_repos(session: Session) -> list[tuple[Repo, list[str], list[NotificationHook]]]:
    """Every repository with an address or a hook: (repository, addresses, hooks), by name."""
    emails: dict[int, list[str]] = {}
    for row in session.scalars(select(NotificationEmail).order_by(NotificationEmail.id)):
        emails.setdefault(row.repo_id, []).append(row.address)
    hooks: dict[int, list[NotificationHook]] = {}
    for hook in session.scalars(select(NotificationHook).order_by(NotificationHook.id)):
        hooks.setdefault(hook.repo_id, []).append(hook)
    ids = set(emails) | set(hooks)
    if not ids:
        return []
    repos = session.scalars(select(Repo).where(Repo.id.in_(ids)).order_by(Repo.full_name))
    return [(repo, emails.get(repo.id, []), hooks.get(repo.id, [])) for repo in repos]


def previous_verdict(session: Session, build: Build) -> Status | None:
    """How the last build before ``build`` that passed, failed or errored ended: of the
    same branch (pushes, manual and scheduled builds) or of the same pull request. None
    for a tag, or when there was none."""
    query = select(Build.status).where(Build.repo_id == build.repo_id,
                                       Build.number < build.number, Build.status.in_(_VERDICTS))
    if build.event == PULL_REQUEST and build.pr_number is not None:
        query = query.where(Build.event == PULL_REQUEST, Build.pr_number == build.pr_number)
    elif build.event in BRANCH_EVENTS and build.branch is not None:
        query = query.where(Build.event.in_(BRANCH_EVENTS), Build.branch == build.branch)
    else:
        return None
    found = session.scalar(query.order_by(Build.number.desc()).limit(1))
    return Status(found) if found is not None else None
