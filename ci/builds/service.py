"""The build service: what happens when a forge or a person asks for a build.

Shared by the webhook view, the API and the CLI so they all behave the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from git.cmd import Git
from git.exc import GitCommandError
from redis import Redis
from redis.exceptions import RedisError

from ci import store
from ci.builds import changes, dispatch
from ci.forges import statuses
from ci.forges.types import Trigger
from ci.logs import storage
from ci.pipeline.redact import without_credentials
from ci.pipeline.status import Status
from ci.settings import Settings
from ci.store import Session, intake
from ci.store.models import Build, Job, Repo, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """The outcome of a trigger: the build, and whether this call created it."""

    build: Build
    created: bool
    enqueued: bool
    skipped: bool = False


#: A commit message containing one of these records a skipped build and runs nothing.
SKIP_MARKERS = ("[skip ci]", "[ci skip]")


def accept(session: Session, redis: Redis, settings: Settings, repo: Repo,
           trigger: Trigger) -> Accepted:
    """Record a build for ``trigger`` (committed first), then enqueue its jobs.

    A repeated delivery returns the build it made the first time, unchanged.
    """
    marker = next((m for m in SKIP_MARKERS if m in trigger.message.lower()), None)
    skip_reason = f"skipped: the commit message says {marker}" if marker else None
    try:
        build = intake.create_build(session, repo, trigger, skip_reason)
    except intake.DuplicateDelivery as duplicate:
        return Accepted(build=duplicate.build, created=False, enqueued=False)
    if skip_reason:
        changes.announce(redis, [(repo.id, build.id)])
        return Accepted(build=build, created=True, enqueued=False, skipped=True)
    # The page's notice goes with the first job's enqueue: one round trip to Redis for both.
    enqueued = dispatch.enqueue_build(redis, settings, build, announce=True)
    if enqueued:  # else Redis is down: the runner's first event reports the build instead
        statuses.report_build(redis, build)
    if enqueued and _auto_cancels(settings, build):
        try:
            for older in store.superseded_builds(session, build):
                cancel(session, redis, older, f"auto-cancel: superseded by build #{build.number}")
        except (RedisError, store.StoreError) as exc:  # StoreError: it finished meanwhile
            log.warning("auto-cancel for build %s skipped: %s", build.id, exc)
    return Accepted(build=build, created=True, enqueued=enqueued)


def _auto_cancels(settings: Settings, build: Build) -> bool:
    if build.event == "pull_request":
        return settings.auto_cancel_pull_requests
    return build.event == "push" and settings.auto_cancel_push


#: How long ``git ls-remote`` may take to name a branch's head before a trigger gives up.
LS_REMOTE_TIMEOUT_SECONDS = 20
#: Why a trigger could not read the remote. Never what git or the remote said: that would
#: make the web host a probe of whatever the clone URL points at, answering whoever asks.
LS_REMOTE_FAILED = ("cannot read the repository's clone URL (git ls-remote failed); check "
                    "the URL and its credentials")


def manual_trigger(session: Session, repo: Repo, branch: str | None = None,
                   sha: str | None = None, *, who: str) -> Trigger:
    """A ``manual`` trigger for a branch's head (resolved with ``git ls-remote``) or a sha.

    ``who`` asked for it (a user's name, or who ran the CLI): a manual build has no pusher,
    so it is recorded as the build's author, and its message says so.

    Ends ``session``'s transaction before asking the remote: a write transaction holds
    the database's writer lock, which no webhook should wait on while a remote answers.

    Raises:
        store.StoreError: the branch does not exist or the remote cannot be read.
    """
    branch = branch or (None if sha else repo.default_branch)
    if branch:
        store.validate_branch(branch)
    if sha:
        sha = sha.strip().lower()
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            raise store.StoreError(f"{sha!r} is not a full commit sha (40 hex digits)")
        ref = f"refs/heads/{branch}" if branch else sha
        return Trigger(repo=repo.full_name, event="manual", ref=ref, sha=sha, branch=branch,
                       message=f"manual build by {who}", author=who)
    ref = f"refs/heads/{branch}"
    session.commit()
    output = _ls_remote(repo, ref)
    line = next((row for row in output.splitlines() if row.endswith("\t" + ref)), None)
    if line is None:
        # Not naming the clone URL, which may carry credentials and is not shown elsewhere.
        raise store.StoreError(f"branch {branch!r} does not exist in the repository")
    return Trigger(repo=repo.full_name, event="manual", ref=ref, sha=line.split("\t")[0],
                   branch=branch, message=f"manual build by {who}", author=who)


def _ls_remote(repo: Repo, ref: str) -> str:
    """What ``git ls-remote`` says of ``ref``, within :data:`LS_REMOTE_TIMEOUT_SECONDS`."""
    try:
        return Git().ls_remote(repo.clone_url, ref, kill_after_timeout=LS_REMOTE_TIMEOUT_SECONDS,
                               env={"GIT_TERMINAL_PROMPT": "0"})
    except GitCommandError as exc:
        # For the admin, in the server's log; git may quote the URL with its credentials.
        log.warning("git ls-remote for a manual build of %s failed: %s", repo.full_name,
                    without_credentials((exc.stderr or "").strip()))
        raise store.StoreError(LS_REMOTE_FAILED) from None


def cancel(session: Session, redis: Redis, build: Build, who: str,
           only: Job | None = None) -> int:
    """Stop a build's unfinished jobs (or just ``only``); returns how many were asked to stop.

    A queued job is canceled in the database at once and taken off the queue; a
    running one is told to stop through Redis and reports ``canceled`` itself (its
    runner kills the container within moments), so its log ends properly. The
    build ends when its last job does.

    Raises:
        store.StoreError: nothing is unfinished: the build (or ``only``) has finished.
    """
    unfinished = [job for job in (build.jobs if only is None else [only])
                  if not Status(job.status).finished]
    if not unfinished:
        what = (f"build #{build.number}" if only is None
                else f"job {only.number} of build #{build.number}")
        raise store.StoreError(f"{what} has finished")
    for job in unfinished:
        dispatch.request_cancel(redis, job, who)
        if job.status == Status.QUEUED:
            store.finish_job(session, job, Status.CANCELED, utcnow(), f"canceled by {who}")
    session.commit()
    changes.announce(redis, [(build.repo_id, build.id)])
    # Jobs canceled while queued send no runner event; their statuses go out from here.
    statuses.report_build(redis, build)
    return len(unfinished)


def restart(session: Session, redis: Redis, settings: Settings, build: Build) -> Accepted:
    """Run a finished build again, as a new build of the same commit."""
    if not Status(build.status).finished:
        raise store.StoreError(f"build #{build.number} is still {build.status}; cancel it first")
    again = Trigger(repo=build.repo.full_name, event=build.event, ref=build.ref, sha=build.sha,
                    branch=build.branch, tag=build.tag, pr_number=build.pr_number,
                    message=build.message, author=build.author, compare_url=build.compare_url,
                    fork=build.fork)
    return accept(session, redis, settings, build.repo, again)


def rerun_failed(session: Session, redis: Redis, settings: Settings, build: Build) -> int:
    """Run the failed, errored and canceled jobs of a finished build again, in place.

    Passed jobs keep their results; each rerun job gets a new attempt number, so a
    late event from the earlier attempt can never overwrite the new one. The attempt it
    replaces is kept, with its log; the build's timing starts again.
    """
    if not Status(build.status).finished:
        raise store.StoreError(f"build #{build.number} is still {build.status}")
    archived = {job.id: job.log_archived for job in build.jobs}
    jobs = store.reset_failed_jobs(session, build)
    for job in jobs:
        # Before the commit: should it fail, the earlier attempt's log is where it was.
        storage.keep_attempt_log(redis, settings.log_dir, job.id, job.attempt - 1,
                                 archived[job.id])
    session.commit()
    changes.announce(redis, [(build.repo_id, build.id)])
    for job in jobs:
        storage.discard(redis, settings.log_dir, job.id)
    if jobs:
        dispatch.enqueue_build(redis, settings, build)
    return len(jobs)
