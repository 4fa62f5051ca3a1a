"""Starting runner workers: RQ workers on the jobs queue, after a sweep of orphans.

Jobs run in the worker process itself (RQ's ``SimpleWorker``): a job spends its
time waiting on Docker, so forking a work horse per job would only add latency.
``--count N`` runs N such workers under RQ's worker pool.
"""

from __future__ import annotations

import logging

import docker
from docker.errors import DockerException
from redis import Redis
from rq import Queue, SimpleWorker
from rq.worker_pool import WorkerPool

from ci.pipeline import keys
from runners.docker_executor import sweep_orphans
from runners.settings import RunnerSettings

log = logging.getLogger(__name__)


def lease_checker(redis: Redis):
    """A predicate telling whether a live runner still holds (job, attempt)."""
    def is_live(job_id: int, attempt: int) -> bool:
        holder = redis.get(keys.lease(job_id))
        return holder is not None and int(holder) == attempt

    return is_live


def sweep(redis: Redis, instance: str) -> list[str]:
    """Remove containers of jobs no runner holds any more (their runner died)."""
    try:
        client = docker.from_env()
    except DockerException as exc:
        raise SystemExit(f"the Docker engine is not reachable: {exc}; start dockerd "
                         "or set DOCKER_HOST") from None
    try:
        removed = sweep_orphans(client, instance, lease_checker(redis))
    finally:
        client.close()
    for name in removed:
        log.info("removed orphaned container %s", name)
    return removed


def start_workers(settings: RunnerSettings, count: int = 1, burst: bool = False) -> None:
    """Run ``count`` workers until interrupted (or, with ``burst``, until the queue is empty)."""
    redis = Redis.from_url(settings.redis_url)
    redis.ping()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    sweep(redis, settings.instance)
    if count == 1:
        queue = Queue(keys.JOBS_QUEUE, connection=redis)
        SimpleWorker([queue], connection=redis).work(burst=burst, logging_level="INFO")
        return
    pool = WorkerPool([keys.JOBS_QUEUE], connection=redis, num_workers=count,
                      worker_class=SimpleWorker)
    pool.start(burst=burst, logging_level="INFO")
