"""How much work waits for a runner, per repository, for the queue page.

The database says which jobs are queued (it is the source of truth); RQ says which of
them it holds for the runners. A queued job RQ does not hold was lost by Redis or is
about to be handed out again: the reconciler (``ci.builds.dispatch``) enqueues it anew.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from ci import store
from ci.builds.runner_roster import parse_rq_job_id
from ci.pipeline import keys
from ci.store import Session
from ci.store.models import Repo


@dataclass(frozen=True)
class RepoQueue:
    """The queued jobs of one repository."""

    repo: Repo
    waiting: int
    #: How many of them RQ holds; None when Redis does not answer.
    in_redis: int | None
    #: The one waiting longest.
    oldest: store.WaitingJob


@dataclass(frozen=True)
class QueueDepth:
    """The queue as a whole: per repository, most waiting first, and RQ's own count."""

    repos: list[RepoQueue]
    #: Jobs in RQ's queue, all repositories; None when Redis does not answer.
    redis_length: int | None


def queue_depth(session: Session, redis: Redis) -> QueueDepth:
    """What waits now; Redis not answering leaves only RQ's counts unknown."""
    waiting = store.waiting_jobs(session)
    try:
        held = Queue(keys.JOBS_QUEUE, connection=redis,
                     serializer=keys.RQ_SERIALIZER).get_job_ids()
    except RedisError:
        held = None
    in_redis = {parsed for parsed in map(parse_rq_job_id, held or []) if parsed}
    repos = {repo.id: repo for repo, _latest in store.list_repos(session)}
    by_repo: dict[int, list[store.WaitingJob]] = {}
    for job in waiting:  # oldest first: the first of each repository is its oldest
        by_repo.setdefault(job.repo_id, []).append(job)
    rows = [RepoQueue(repo=repos[repo_id], waiting=len(jobs),
                      in_redis=None if held is None else sum(
                          (job.job_id, job.attempt) in in_redis for job in jobs),
                      oldest=jobs[0])
            for repo_id, jobs in by_repo.items() if repo_id in repos]
    rows.sort(key=lambda row: (-row.waiting, row.oldest.since))
    return QueueDepth(repos=rows, redis_length=None if held is None else len(held))
