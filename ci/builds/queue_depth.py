"""How much work waits for a runner, per repository, and why, for the queue page and
``GET /api/queue``.

The database says which jobs are queued and running (it is the source of truth); the fair
queue in Redis (``ci.pipeline.fair_queue``) says which queued ones it holds — admitted to
RQ's queue or in their repository's line — and so why each repository waits: its next job
is next for a runner, it is at its limit of jobs at once, or other repositories come first,
having been served less recently. A queued job Redis does not hold was lost by Redis or is
about to be handed out again: the reconciler (``ci.builds.dispatch``) enqueues it anew.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from ci import store
from ci.accounts.job_limits import max_jobs_for
from ci.pipeline import fair_queue, keys
from ci.settings import Settings
from ci.store import Session
from ci.store.models import Repo

#: Why a repository whose queued jobs Redis does not hold waits.
LOST = "not in Redis: the reconciler queues it again within seconds"
NEXT = "next in line for a runner"


@dataclass(frozen=True)
class RepoQueue:
    """The queued and running jobs of one repository."""

    repo: Repo
    waiting: int
    running: int
    #: How many of its jobs may run at once; 0: no limit.
    max_jobs: int
    #: How many of its waiting jobs Redis holds; None when Redis does not answer.
    in_redis: int | None
    #: The one waiting longest; None when none waits.
    oldest: store.WaitingJob | None
    #: Why its jobs wait, a sentence; None when none waits or Redis does not answer.
    why: str | None


@dataclass(frozen=True)
class QueueDepth:
    """The queue as a whole: per repository, the next served first, and Redis's own count."""

    repos: list[RepoQueue]
    #: Jobs Redis holds for the runners, all repositories; None when Redis does not answer.
    redis_length: int | None


def queue_depth(session: Session, redis: Redis, settings: Settings) -> QueueDepth:
    """What waits and runs now; Redis not answering leaves only its counts and reasons
    unknown."""
    waiting = store.waiting_jobs(session)
    running = store.running_jobs_by_repo(session)
    try:
        line: fair_queue.Snapshot | None = fair_queue.snapshot(redis)
    except RedisError:
        line = None
    held = line.held() if line is not None else set()
    turns = _turns(line) if line is not None else []
    repos = {repo.id: repo for repo, _latest in store.list_repos(session)}
    by_repo: dict[int, list[store.WaitingJob]] = {}
    for job in waiting:  # oldest first: the first of each repository is its oldest
        by_repo.setdefault(job.repo_id, []).append(job)
    rows = []
    for repo_id in sorted((set(by_repo) | set(running)) & set(repos)):
        jobs = by_repo.get(repo_id, [])
        in_redis = None if line is None else sum(
            keys.rq_job_id(job.job_id, job.attempt) in held for job in jobs)
        rows.append(RepoQueue(
            repo=repos[repo_id], waiting=len(jobs), running=running.get(repo_id, 0),
            max_jobs=max_jobs_for(settings, repos[repo_id]), in_redis=in_redis,
            oldest=jobs[0] if jobs else None,
            why=_why(line, turns, repo_id, in_redis) if jobs and line is not None else None))
    rows.sort(key=lambda row: (turns.index(row.repo.id) if row.repo.id in turns else len(turns),
                               -row.waiting, row.repo.full_name))
    return QueueDepth(repos=rows, redis_length=None if line is None else len(held))


def _turns(line: fair_queue.Snapshot) -> list[int]:
    """The repositories in the order their next jobs go to runners: those whose job is on
    RQ's queue, then those with room under their limit, least recently served first."""
    turns: list[int] = []
    for repo_id in [line.owner(rq_job_id) for rq_job_id in line.ready] + line.order:
        lane = line.lines.get(repo_id) if repo_id is not None else None
        if lane is not None and repo_id not in turns and (
                not lane.at_limit or set(line.ready) & lane.active):
            turns.append(repo_id)
    return turns


def _why(line: fair_queue.Snapshot, turns: list[int], repo_id: int,
         in_redis: int | None) -> str | None:
    if not in_redis:
        return LOST
    if repo_id in turns:
        place = turns.index(repo_id)
        if place == 0:
            return NEXT
        return f"waiting its turn behind {place} other repositor{'y' if place == 1 else 'ies'}"
    lane = line.lines.get(repo_id)
    if lane is not None and lane.at_limit:
        return f"at its limit of {lane.limit} job{'' if lane.limit == 1 else 's'} at once"
    return None
