"""Slipway's SQL: repositories, builds, jobs and steps, secrets, users and access.

Functions take the session as an argument and commit only where their docstring
says so; otherwise callers decide the transaction. With ``ci.store.intake`` (the
webhook's own few statements) this is all the SQL there is: the rest of Slipway
calls these functions through the ``ci.store`` package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ci import forges
from ci.forges.payload import MAX_REF_BYTES
from ci.pipeline.events import BRANCH_EVENTS
from ci.pipeline.matrix import cell_name
from ci.pipeline.status import Status, worst
from ci.store import history
from ci.store.models import (ApiToken, Base, Build, Job, Repo, RepoAccess, Secret, Step, User,
                             utcnow)

__all__ = [
    "FAILURES",
    "REPO_NAME",
    "RESERVED_OWNERS",
    "FORGES",
    "StoreError",
    "validate_repo_name",
    "add_repo",
    "encrypt_clear_webhook_secrets",
    "get_repo",
    "remove_repo",
    "list_repos",
    "get_build",
    "latest_branch_build",
    "get_build_by_id",
    "get_job",
    "log_archived",
    "job_of_build",
    "UnfinishedJob",
    "unfinished_jobs",
    "get_jobs",
    "start_job",
    "plan_steps",
    "plan_build",
    "step_of",
    "start_step",
    "finish_step",
    "mark_log_archived",
    "finish_job",
    "reset_failed_jobs",
    "superseded_builds",
    "BAD_BRANCH",
    "MAX_BRANCH_BYTES",
    "validate_branch",
    "update_repo",
    "set_forge_access",
    "set_repo_limits",
    "set_repo_max_jobs",
    "set_secret",
    "remove_secret",
    "search_builds",
    "add_user",
    "get_user",
    "get_user_by_id",
    "list_users",
    "remove_user",
    "add_token",
    "user_of_token",
    "list_tokens",
    "remove_token",
    "set_access",
    "remove_access",
    "access_of",
    "granted_repo_ids",
]

FAILURES = (Status.FAILED, Status.ERRORED)
REPO_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
#: Owners that would shadow Slipway's own URLs (``/api/…``, ``/hooks/…``, ``/static/…``).
RESERVED_OWNERS = {"admin", "api", "events", "hooks", "static"}
#: What a repo may register as; Forgejo and Gogs repos register as ``gitea``.
FORGES = tuple(forges.FORGES)


class StoreError(ValueError):
    """A request the data cannot satisfy; the message says what to do."""


# Repositories ---------------------------------------------------------------------------

def validate_repo_name(full_name: str) -> str:
    if not REPO_NAME.fullmatch(full_name or "") or ".." in full_name:
        raise StoreError(f"{full_name!r} is not a repository name; use OWNER/NAME, "
                         "e.g. octocat/hello-world")
    if full_name.split("/")[0].lower() in RESERVED_OWNERS:
        raise StoreError(f"{full_name!r}: the owner name {full_name.split('/')[0]!r} is "
                         "reserved for Slipway's own pages")
    return full_name


def add_repo(session: Session, full_name: str, forge: str, clone_url: str, secret: str,
             default_branch: str = "main", *, secret_encrypted: bool = False) -> Repo:
    """Register a repository and commit.

    ``secret`` is stored as given: encrypted by the caller when ``secret_encrypted``
    (``ci.accounts.webhook_secrets.register`` does that), else in clear.
    """
    validate_repo_name(full_name)
    if forge not in FORGES:
        raise StoreError(f"forge {forge!r} is not supported; choose one of {', '.join(FORGES)}")
    if not clone_url.strip() or clone_url.strip().startswith("-"):
        raise StoreError(f"{clone_url!r} is not a clone URL; give an https, ssh or file:// "
                         "URL or a local path")
    if not secret:
        raise StoreError("the webhook secret is empty; choose a long random string")
    if get_repo(session, full_name) is not None:
        raise StoreError(f"{full_name} is already registered; remove it first to change it")
    repo = Repo(full_name=full_name, forge=forge, clone_url=clone_url.strip(),
                webhook_secret=secret, webhook_secret_encrypted=secret_encrypted,
                default_branch=default_branch)
    session.add(repo)
    session.commit()
    return repo


def encrypt_clear_webhook_secrets(session: Session, encrypt: Callable[[str], str]) -> int:
    """Replace every webhook secret still kept in clear with ``encrypt(secret)`` and commit;
    how many there were. The store has no key: the caller brings the encryption."""
    clear = session.scalars(select(Repo).where(Repo.webhook_secret_encrypted.is_(False))).all()
    for repo in clear:
        repo.webhook_secret = encrypt(repo.webhook_secret)
        repo.webhook_secret_encrypted = True
    session.commit()
    return len(clear)


def get_repo(session: Session, full_name: str) -> Repo | None:
    """The registered repo."""
    return session.scalars(select(Repo).where(Repo.full_name == full_name)).first()


def remove_repo(session: Session, full_name: str) -> bool:
    """Delete a repository with all its builds and commit; False when unknown."""
    return _delete(session, get_repo(session, full_name))


def _delete(session: Session, row: Base | None) -> bool:
    """Delete ``row`` (and what cascades from it) and commit; False when there is none."""
    if row is None:
        return False
    session.delete(row)
    session.commit()
    return True


def list_repos(session: Session) -> list[tuple[Repo, Build | None]]:
    """All repositories by name, each with its latest build."""
    latest = (select(Build.repo_id, func.max(Build.number).label("number"))
              .group_by(Build.repo_id).subquery())
    rows = session.execute(
        select(Repo, Build)
        .outerjoin(latest, latest.c.repo_id == Repo.id)
        .outerjoin(Build, (Build.repo_id == Repo.id) & (Build.number == latest.c.number))
        .order_by(Repo.full_name)
    )
    return [(repo, build) for repo, build in rows]


# Builds ----------------------------------------------------------------------------------

def get_build(session: Session, repo: Repo, number: int) -> Build | None:
    return session.scalar(
        select(Build).where(Build.repo_id == repo.id, Build.number == number)
        .options(selectinload(Build.jobs).selectinload(Job.steps))
    )


def latest_branch_build(session: Session, repo: Repo, branch: str) -> Build | None:
    """The newest push or manual build of ``branch`` (pull requests and skips do not count)."""
    return session.scalar(
        select(Build).where(Build.repo_id == repo.id, Build.branch == branch,
                            Build.event.in_(BRANCH_EVENTS), Build.status != Status.SKIPPED)
        .order_by(Build.number.desc()).limit(1)
    )


def get_build_by_id(session: Session, build_id: int) -> Build | None:
    return session.get(Build, build_id)


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id, options=[selectinload(Job.steps)])


def log_archived(session: Session, job_id: int) -> bool:
    """Whether the recorder archived the job's log (its archive file is this job's)."""
    return bool(session.scalar(select(Job.log_archived).where(Job.id == job_id)))


def job_of_build(build: Build, number: int) -> Job | None:
    return next((job for job in build.jobs if job.number == number), None)


# Job state -------------------------------------------------------------------------------

class UnfinishedJob(NamedTuple):
    """What the reconciler needs to know of a queued or running job."""

    id: int
    status: Status
    attempt: int
    #: When it was last enqueued (else created).
    since: datetime


def unfinished_jobs(session: Session) -> list[UnfinishedJob]:
    """``id``, ``status``, ``attempt`` and ``since`` (enqueued, else created) of the jobs
    the database says are queued or running, oldest first.

    Columns, not ORM objects: the reconciler reads them every few seconds, and a backlog
    of thousands of queued jobs is normal when the runners are busy.
    """
    return [UnfinishedJob(*row) for row in session.execute(
        select(Job.id, Job.status, Job.attempt,
               func.coalesce(Job.enqueued_at, Job.created_at).label("since"))
        .where(Job.status.in_((Status.QUEUED, Status.RUNNING))).order_by(Job.id)
    )]


def get_jobs(session: Session, ids: list[int]) -> list[Job]:
    """The jobs with ``ids``, in that order, with their builds and repos."""
    found = {job.id: job for job in session.scalars(
        select(Job).where(Job.id.in_(ids))
        .options(selectinload(Job.build).selectinload(Build.repo)))}
    return [found[job_id] for job_id in ids if job_id in found]


def start_job(session: Session, job: Job, at: datetime, runner: str) -> None:
    job.status = Status.RUNNING
    job.started_at = job.started_at or at
    job.runner = runner
    build = job.build
    if build.status == Status.QUEUED:
        build.status = Status.RUNNING
        build.started_at = build.started_at or at


def plan_steps(session: Session, job: Job, names: list[str], image: str | None) -> None:
    """Record the steps a runner found in the pipeline (idempotent)."""
    job.image = image
    existing = {step.number for step in job.steps}
    for number, name in enumerate(names, start=1):
        if number not in existing:
            job.steps.append(Step(number=number, name=name[:255], status=Status.QUEUED))


def plan_build(session: Session, job: Job, cells: list[dict[str, str]],
               allow_failures: list[bool]) -> list[Job]:
    """Give the planning job the first matrix cell and add a job per other cell.

    Returns the jobs added (to be enqueued); none when the build was planned before.
    """
    build = job.build
    if len(build.jobs) > 1 or not cells:
        return []
    job.cell, job.name = json.dumps(cells[0]), _job_name(cells[0])
    job.allow_failure = bool(allow_failures[0]) if allow_failures else False
    added = []
    for number, (cell, allowed) in enumerate(zip(cells[1:], allow_failures[1:]), start=2):
        added.append(Job(number=number, name=_job_name(cell), cell=json.dumps(cell),
                         allow_failure=bool(allowed), status=Status.QUEUED, attempt=1,
                         enqueued_at=utcnow()))
    build.jobs.extend(added)
    return added


def _job_name(cell: dict[str, str]) -> str:
    """A job is named after its matrix cell (``PYTHON=3.12``), else ``default``."""
    return cell_name(cell)[:255] or "default"


def step_of(job: Job, index: int) -> Step | None:
    return next((step for step in job.steps if step.number == index + 1), None)


def start_step(session: Session, step: Step, at: datetime) -> None:
    step.status, step.started_at = Status.RUNNING, at


def finish_step(session: Session, step: Step, status: Status, exit_code: int | None,
                at: datetime) -> None:
    step.status = status
    step.exit_code = exit_code
    step.finished_at = at
    step.started_at = step.started_at or at


def mark_log_archived(session: Session, job_id: int) -> None:
    """Record that the job's log is in its archive file (the page reads it from there)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.log_archived = True


def finish_job(session: Session, job: Job, status: Status, at: datetime,
               error: str | None) -> None:
    """Close a job (its unfinished steps become skipped) and, when it was the last, its build."""
    job.status = status
    job.error = error
    job.finished_at = at
    job.started_at = job.started_at or at
    for step in job.steps:
        if step.status == Status.RUNNING:
            step.status = status
            step.finished_at = at
        elif step.status == Status.QUEUED:
            step.status = Status.SKIPPED
    build = job.build
    statuses = [Status(j.status) for j in build.jobs]
    if all(s.finished for s in statuses):
        # A cell allowed to fail counts as passed for the build.
        build.status = worst([Status.PASSED if j.allow_failure and s in FAILURES else s
                              for j, s in zip(build.jobs, statuses)])
        build.finished_at = at
        build.started_at = build.started_at or at
        build.error = next((j.error for j in build.jobs if j.error), None)


def reset_failed_jobs(session: Session, build: Build) -> list[Job]:
    """Put a finished build's failed, errored and canceled jobs back in the queue, each as
    its next attempt; the attempt each ends is kept (``ci.store.history``).

    The build's timing starts again too, from the rerun's first job to start: its
    duration is the rerun's, not the time since the first attempt began.
    """
    rerun = [job for job in build.jobs
             if job.status in (Status.FAILED, Status.ERRORED, Status.CANCELED)]
    for job in rerun:
        history.keep_attempt(job)
        job.attempt += 1
        job.event_seq = job.runner_losses = 0
        job.status = Status.QUEUED
        job.error = job.started_at = job.finished_at = job.runner = None
        job.log_archived = False
        job.pruned_at = None  # the next attempt's log is its own, kept afresh
        job.enqueued_at = utcnow()
        job.steps.clear()
    if rerun:
        build.status = Status.QUEUED
        build.started_at = build.finished_at = build.error = None
    return rerun


def superseded_builds(session: Session, build: Build) -> list[Build]:
    """Older unfinished builds of the same branch (pushes) or pull request as ``build``."""
    query = select(Build).where(Build.repo_id == build.repo_id, Build.number < build.number,
                                Build.status.in_((Status.QUEUED, Status.RUNNING)),
                                Build.event == build.event)
    if build.event == "pull_request":
        query = query.where(Build.pr_number == build.pr_number)
    elif build.event == "push":
        query = query.where(Build.branch == build.branch)
    else:
        return []
    return list(session.scalars(query.options(selectinload(Build.jobs))))


# Users, API tokens and repository access -------------------------------------------------

#: What git refuses in a branch name (``git check-ref-format``), plus whitespace.
BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|[/.]$|\.lock$")


#: A branch's ref (``refs/heads/`` and the name) must fit the bytes a build's ref has.
MAX_BRANCH_BYTES = MAX_REF_BYTES - len("refs/heads/")


def validate_branch(branch: str) -> str:
    """Refuse names git would refuse, and names whose ref the database could not hold,
    so they never reach ``git`` or the database."""
    if not branch or BAD_BRANCH.search(branch):
        raise StoreError(f"{branch!r} is not a branch name git accepts; e.g. main or "
                         "release/1.2")
    try:
        size = len(branch.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800"): no ref is named so
        raise StoreError(f"{branch!r} is not a branch name git accepts: it is not valid "
                         "UTF-8") from None
    if size > MAX_BRANCH_BYTES:
        raise StoreError(f"the branch name is {size} bytes long; Slipway builds branches of "
                         f"at most {MAX_BRANCH_BYTES} bytes (UTF-8)")
    return branch


def update_repo(session: Session, repo: Repo, default_branch: str | None = None,
                clone_url: str | None = None, private: bool | None = None) -> Repo:
    """Change a repository's settings (those given) and commit."""
    if clone_url is not None:
        if not clone_url.strip() or clone_url.strip().startswith("-"):
            raise StoreError(f"{clone_url!r} is not a clone URL; give an https, ssh or "
                             "file:// URL or a local path")
        repo.clone_url = clone_url.strip()
    if default_branch is not None:
        repo.default_branch = validate_branch(default_branch)
    if private is not None:
        repo.private = private
    session.commit()
    return repo


def set_forge_access(session: Session, repo: Repo, encrypted_token: str | None,
                     api_url: str | None) -> None:
    """Store the forge token (already encrypted) and API URL, those given, and commit."""
    if encrypted_token is not None:
        repo.forge_token = encrypted_token
    if api_url is not None:
        repo.api_url = api_url
    session.commit()


def set_repo_max_jobs(session: Session, repo: Repo, max_jobs: int | None) -> None:
    """Set how many of the repository's jobs may run at once (None: the administrator's
    maximum); the caller commits (``set_repo_limits`` does, with the other limits)."""
    repo.max_concurrent_jobs = max_jobs


def set_repo_limits(session: Session, repo: Repo, memory: str | None, cpus: float | None,
                    pids: int | None) -> None:
    """Store the repository's job limits, those given, and commit."""
    if memory is not None:
        repo.job_memory = memory
    if cpus is not None:
        repo.job_cpus = cpus
    if pids is not None:
        repo.job_pids = pids
    session.commit()


def set_secret(session: Session, repo: Repo, name: str, encrypted_value: str) -> None:
    """Create or replace a repository secret (already encrypted) and commit."""
    existing = next((secret for secret in repo.secrets if secret.name == name), None)
    if existing is None:
        repo.secrets.append(Secret(name=name, value=encrypted_value))
    else:
        existing.value, existing.updated_at = encrypted_value, utcnow()
    session.commit()


def remove_secret(session: Session, repo: Repo, name: str) -> bool:
    """Delete a repository secret and commit; False when it has none of that name."""
    existing = next((secret for secret in repo.secrets if secret.name == name), None)
    if existing is None:
        return False
    repo.secrets.remove(existing)
    session.commit()
    return True


def search_builds(session: Session, repo: Repo, page: int = 1, per_page: int = 25,
                  branch: str | None = None, status: Status | None = None,
                  event: str | None = None) -> tuple[list[Build], int]:
    """One page of a repo's builds, newest first, and the total count; only those of
    ``branch``, ``status`` and ``event`` when given."""
    where = [Build.repo_id == repo.id]
    if branch is not None:
        where.append(Build.branch == branch)
    if status is not None:
        where.append(Build.status == status)
    if event is not None:
        where.append(Build.event == event)
    total = session.scalar(select(func.count()).select_from(Build).where(*where)) or 0
    builds = session.scalars(
        select(Build).where(*where).order_by(Build.number.desc())
        .offset((max(page, 1) - 1) * per_page).limit(per_page)
    ).all()
    return list(builds), total


def add_user(session: Session, name: str, password_hash: str, admin: bool = False) -> User:
    """Create a user and commit."""
    if get_user(session, name) is not None:
        raise StoreError(f"user {name} exists already; remove it first to replace it")
    user = User(name=name, password_hash=password_hash, admin=admin)
    session.add(user)
    session.commit()
    return user


def get_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def get_user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def remove_user(session: Session, name: str) -> bool:
    """Delete a user with their tokens and access and commit; False when unknown."""
    return _delete(session, get_user(session, name))


def add_token(session: Session, user: User, name: str, prefix: str,
              token_hash: str) -> ApiToken:
    """Record a new API token (its hash) and commit."""
    token = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=token_hash)
    session.add(token)
    session.commit()
    return token


def user_of_token(session: Session, token_hash: str) -> User | None:
    return session.scalar(select(User).join(ApiToken, ApiToken.user_id == User.id)
                          .where(ApiToken.token_hash == token_hash))


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).options(selectinload(ApiToken.user))
                                .order_by(ApiToken.id)))


def remove_token(session: Session, token_id: int) -> bool:
    """Delete an API token and commit; False when unknown."""
    return _delete(session, session.get(ApiToken, token_id))


def set_access(session: Session, repo: Repo, user: User, permission: str) -> None:
    """Give ``user`` ``permission`` on ``repo`` (replacing what they had) and commit."""
    session.merge(RepoAccess(repo_id=repo.id, user_id=user.id, permission=permission))
    session.commit()


def remove_access(session: Session, repo: Repo, user: User) -> bool:
    """Take away ``user``'s access to ``repo`` and commit; False when they had none."""
    return _delete(session, session.get(RepoAccess, (repo.id, user.id)))


def access_of(session: Session, repo: Repo, user: User) -> str | None:
    """The permission ``user`` was granted on ``repo``, or None."""
    return session.scalar(select(RepoAccess.permission)
                          .where(RepoAccess.repo_id == repo.id, RepoAccess.user_id == user.id))


def granted_repo_ids(session: Session, user: User) -> set[int]:
    """The repositories ``user`` was given any access to."""
    return set(session.scalars(select(RepoAccess.repo_id).where(RepoAccess.user_id == user.id)))
