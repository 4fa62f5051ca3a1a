"""The server's side of fair queueing: how a job gets in line, and how the lines heal.

Admission itself is the script in ``ci.pipeline.fair_queue``, shared with the runners. Here
is what only the server does: enqueue a job the way RQ does, except that its id goes into
its repository's line instead of onto RQ's list (:class:`FairQueue`), with the repository's
limit of jobs at once — its own (``Repo.max_concurrent_jobs``) or, when it has none, the
administrator's maximum (``SLIPWAY_MAX_JOBS_PER_REPO``; ``ci.accounts.job_limits``); and
find the admitted jobs a dead process never released, which the database says have ended
(:func:`stale_admissions`), for the reconciler to forget.
"""

from __future__ import annotations

import logging

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue

from ci import store
from ci.pipeline import fair_queue, keys

log = logging.getLogger(__name__)


class FairQueue(Queue):
    """RQ's queue of the runners, whose enqueue puts the job in its repository's line.

    RQ's own code makes the job — its hash, status ``queued``, origin, registries and
    ``rq:queues`` — in the caller's transaction; only its last step, the push onto RQ's list
    (:meth:`push_job_id`), is replaced by entering the line, admission included.
    """

    def __init__(self, redis: Redis, repo_id: int, max_jobs: int) -> None:
        super().__init__(keys.JOBS_QUEUE, connection=redis, serializer=keys.RQ_SERIALIZER)
        self.repo_id = repo_id
        self.max_jobs = max_jobs

    def push_job_id(self, job_id: str, pipeline: Pipeline | None = None,
                    at_front: bool = False) -> None:
        """Enter the line (never at its front: that would jump the repository's own queue)."""
        fair_queue.enter(pipeline if pipeline is not None else self.connection, self.repo_id,
                         job_id, self.max_jobs)


def admitted_jobs(redis: Redis) -> dict[int, set[str]]:
    """The RQ job ids each repository's active set holds. Read before the database, so that
    an admission the database does not show yet is never taken for a stale one."""
    repo_ids = [int(repo) for repo in redis.hkeys(keys.FAIR_LIMITS)]
    with redis.pipeline(transaction=False) as pipe:
        for repo_id in repo_ids:
            pipe.smembers(keys.fair_active(repo_id))
        members = pipe.execute()
    return {repo_id: {member.decode() for member in ids}
            for repo_id, ids in zip(repo_ids, members) if ids}


def stale_admissions(admitted: dict[int, set[str]],
                     unfinished: list[store.UnfinishedJob]) -> dict[int, set[str]]:
    """The admitted RQ job ids whose job the database no longer has unfinished with that
    attempt: ended, or retried as another attempt, while its runner was dead."""
    current = {keys.rq_job_id(job.id, job.attempt) for job in unfinished}
    return {repo_id: ids - current for repo_id, ids in admitted.items() if ids - current}


def forget(redis: Redis, stale: dict[int, set[str]]) -> None:
    """Release the stale admissions, each as its runner would have; admits what may go."""
    for repo_id, ids in stale.items():
        for rq_job_id in ids:
            log.warning("job %s was still counted as running for repository %s; released",
                        rq_job_id, repo_id)
            fair_queue.release(redis, repo_id, rq_job_id)


def apply_limit(redis: Redis, repo_id: int, max_jobs: int) -> bool:
    """Give the fair queue a repository's new limit now, so that a higher one lets its
    waiting jobs go at once; False when Redis does not answer (the limit then comes with
    the repository's next job)."""
    try:
        fair_queue.set_limit(redis, repo_id, max_jobs)
    except RedisError as exc:
        log.warning("the new limit of repository %s waits for its next job: %s", repo_id, exc)
        return False
    return True
