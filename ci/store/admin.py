"""The SQL of the admin pages: who is an admin, who was granted what, forgetting a forge
token, and the jobs waiting for a runner.

Apart from ``queries`` because only the admin pages ask for these; the CLI and the pages
share everything else there.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ci.pipeline.status import Status
from ci.store.models import Build, Job, Repo, RepoAccess, User

__all__ = [
    "set_admin",
    "grants_by_user",
    "forget_forge_token",
    "forget_api_url",
    "WaitingJob",
    "waiting_jobs",
    "running_jobs_by_repo",
]


def set_admin(session: Session, user: User, admin: bool) -> None:
    """Make ``user`` an admin or take that away, and commit."""
    user.admin = admin
    session.commit()


def grants_by_user(session: Session) -> dict[int, list[tuple[Repo, str]]]:
    """Each user's id with the repositories they were granted and the permission, by name."""
    rows = session.execute(select(RepoAccess.user_id, Repo, RepoAccess.permission)
                           .join(Repo, Repo.id == RepoAccess.repo_id)
                           .order_by(Repo.full_name))
    granted: dict[int, list[tuple[Repo, str]]] = {}
    for user_id, repo, permission in rows:
        granted.setdefault(user_id, []).append((repo, permission))
    return granted


def forget_forge_token(session: Session, repo: Repo) -> None:
    """Remove ``repo``'s forge token (its statuses are then no longer reported) and commit."""
    repo.forge_token = None
    session.commit()


def forget_api_url(session: Session, repo: Repo) -> None:
    """Go back to the forge's default API URL for ``repo`` and commit."""
    repo.api_url = None
    session.commit()


class WaitingJob(NamedTuple):
    """A job the database says is queued, with where it belongs and since when it waits."""

    job_id: int
    attempt: int
    repo_id: int
    build_number: int
    job_number: int
    job_name: str
    #: When it was last enqueued (else created).
    since: datetime


def waiting_jobs(session: Session) -> list[WaitingJob]:
    """Every queued job, oldest first, as columns: a backlog of thousands is normal when
    the runners are busy, and the queue page reads them all."""
    since = func.coalesce(Job.enqueued_at, Job.created_at)
    return [WaitingJob(*row) for row in session.execute(
        select(Job.id, Job.attempt, Build.repo_id, Build.number, Job.number, Job.name,
               since.label("since"))
        .join(Build, Build.id == Job.build_id)
        .where(Job.status == Status.QUEUED).order_by(since, Job.id)
    )]


def running_jobs_by_repo(session: Session) -> dict[int, int]:
    """How many jobs run now, by repository id (those with none are left out)."""
    return dict(session.execute(
        select(Build.repo_id, func.count(Job.id)).join(Build, Build.id == Job.build_id)
        .where(Job.status == Status.RUNNING).group_by(Build.repo_id)).all())
