"""The build service: what happens when a forge or a person asks for a build.

Shared by the webhook view, the API and the CLI so they all behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from git.cmd import Git
from git.exc import GitCommandError
from redis import Redis
from sqlalchemy.orm import Session

from ci import queue, store
from ci.forges.types import Trigger
from ci.models import Build, Repo
from ci.settings import Settings


@dataclass(frozen=True)
class Accepted:
    """The outcome of a trigger: the build, and whether this call created it."""

    build: Build
    created: bool
    enqueued: bool


def accept(session: Session, redis: Redis, settings: Settings, repo: Repo,
           trigger: Trigger) -> Accepted:
    """Record a build for ``trigger`` (committed first), then enqueue its jobs.

    A repeated delivery returns the build it made the first time, unchanged.
    """
    try:
        build = store.create_build(session, repo, trigger)
    except store.DuplicateDelivery as duplicate:
        return Accepted(build=duplicate.build, created=False, enqueued=False)
    enqueued = queue.enqueue_build(redis, settings, build)
    return Accepted(build=build, created=True, enqueued=enqueued)


def manual_trigger(repo: Repo, branch: str | None = None, sha: str | None = None) -> Trigger:
    """A ``manual`` trigger for a branch's head (resolved with ``git ls-remote``) or a sha.

    Raises:
        store.StoreError: the branch does not exist or the remote cannot be read.
    """
    branch = branch or (None if sha else repo.default_branch)
    if sha:
        sha = sha.strip().lower()
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            raise store.StoreError(f"{sha!r} is not a full commit sha (40 hex digits)")
        ref = f"refs/heads/{branch}" if branch else sha
        return Trigger(repo=repo.full_name, event="manual", ref=ref, sha=sha, branch=branch,
                       message="manual build")
    ref = f"refs/heads/{branch}"
    try:
        output = Git().ls_remote(repo.clone_url, ref)
    except GitCommandError as exc:
        raise store.StoreError(f"cannot read {repo.clone_url}: {exc.stderr.strip()}") from None
    line = next((row for row in output.splitlines() if row.endswith("\t" + ref)), None)
    if line is None:
        raise store.StoreError(f"branch {branch!r} does not exist in {repo.clone_url}")
    return Trigger(repo=repo.full_name, event="manual", ref=ref, sha=line.split("\t")[0],
                   branch=branch, message="manual build")
