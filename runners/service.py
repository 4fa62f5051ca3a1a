"""Starting runner workers: RQ workers on the jobs queue, and what a runner owes its host.

Jobs run in the worker process itself (RQ's ``SimpleWorker``): a job spends its
time waiting on Docker, so forking a work horse per job would only add latency.
``--count N`` runs N such workers under RQ's worker pool.

A runner installs the firewall rules of job networks when it starts and removes
them when it stops, unless another runner's jobs still need them
(:mod:`runners.job_network`). It removes what runners that died on its host left
behind (containers, networks, workspaces) when it starts and every minute after,
whether or not Redis answers (:func:`sweep`). Stopped on purpose (SIGTERM, or
SIGINT as Ctrl-C sends), it ends its jobs at once, as errored "runner stopped", and
removes their containers before it exits (:class:`RunnerWorker`).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import docker
from docker.errors import DockerException
from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.worker_pool import WorkerPool

from ci.pipeline import keys
from runners import job_network, owner
from runners.docker_executor import sweep_orphans
from runners.rq_job import RunnerJob
from runners.settings import RunnerSettings, load_runner_settings
from runners.worker import stop_running_jobs, wait_for_cleanups

log = logging.getLogger(__name__)

#: How often a working runner sweeps what dead runners left.
SWEEP_SECONDS = 60.0


def lease_checker(redis: Redis) -> Callable[[int, int], bool | None]:
    """A predicate telling whether a live runner still holds (job, attempt); None when
    Redis does not answer, as then nobody can tell."""
    def is_live(job_id: int, attempt: int) -> bool | None:
        try:
            holder = redis.get(keys.lease(job_id))
        except RedisError:
            return None
        return holder is not None and int(holder) == attempt

    return is_live


def sweep(redis: Redis, settings: RunnerSettings) -> list[str]:
    """Remove what runners that died left: their jobs' containers and networks, and the
    workspaces in this runner's folder. Redis is asked only about what no local process
    owned (:func:`runners.docker_executor.sweep_orphans`).

    Raises:
        DockerException: the Docker engine is not reachable.
    """
    client = docker.from_env()
    try:
        removed = sweep_orphans(client, settings.instance, lease_checker(redis))
    finally:
        client.close()
    for folder in owner.abandoned(settings.work_dir / "workspaces"):
        owner.remove(folder)
        removed.append(str(folder))
    for name in removed:
        log.info("removed what a dead runner left: %s", name)
    return removed


class Sweeper:
    """Sweeps every ``interval_seconds`` in a thread of its own, so that what a runner that
    died leaves goes within a minute, while this runner works and while Redis is away."""

    def __init__(self, redis: Redis, settings: RunnerSettings,
                 interval_seconds: float = SWEEP_SECONDS) -> None:
        self.redis, self.settings, self.interval = redis, settings, interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> None:
        """Sweep every interval from now on (the runner swept once as it started)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping; waits for a sweep under way to end."""
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.redis, self.settings)
            except Exception:  # noqa: BLE001 - the next sweep may fare better
                log.exception("sweeping what dead runners left failed")


class RunnerWorker(SimpleWorker):
    """A ``SimpleWorker`` that sweeps every minute while it works and, told to stop, ends
    its job at once instead of waiting for it (RQ's warm shutdown would let it run for up
    to its timeout, unseen once the runner is gone)."""

    def work(self, *args, **kwargs) -> bool:
        sweeper = Sweeper(self.connection, load_runner_settings())
        sweeper.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            sweeper.stop()
            wait_for_cleanups()

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        # This runs in the signal handler, maybe while the job's thread holds the executor's
        # lock: the job is ended from a thread of its own.
        threading.Thread(target=stop_running_jobs, name="stop-jobs", daemon=True).start()

    def set_shutdown_requested_date(self) -> None:
        """RQ notes the stop in Redis from the signal handler; with Redis away, that must
        not raise into the job the handler interrupted."""
        try:
            super().set_shutdown_requested_date()
        except RedisError as exc:
            log.warning("the stop was not noted in Redis: %s", exc)


def start_workers(settings: RunnerSettings, redis: Redis, count: int = 1,
                  burst: bool = False) -> None:
    """Run ``count`` workers until interrupted (or, with ``burst``, until the queue is empty).

    ``redis`` is the client ``slipway worker`` made from ``settings.redis_url``, TLS options
    and all; the pool's worker processes connect as it does.
    """
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    _install_rules(settings)
    try:
        _sweep_at_start(redis, settings)
        _run_workers(redis, count, burst)
    finally:
        _remove_rules()


def _install_rules(settings: RunnerSettings) -> None:
    """No job runs on a network the runner cannot firewall: refuse to start instead."""
    try:
        job_network.install(settings.job_network)
    except job_network.JobNetworkError as exc:
        raise SystemExit(f"the runner cannot start: {exc}") from None


def _sweep_at_start(redis: Redis, settings: RunnerSettings) -> None:
    try:
        sweep(redis, settings)
    except DockerException as exc:
        raise SystemExit(f"the Docker engine is not reachable: {exc}; start dockerd "
                         "or set DOCKER_HOST") from None


def _remove_rules() -> None:
    """Remove the firewall rules (unless other runners' jobs still use them); a failure
    only leaves rules that match no interface once the jobs' bridges are gone."""
    try:
        job_network.remove_rules()
    except job_network.JobNetworkError as exc:
        log.warning("the job network's firewall rules were not removed: %s", exc)


def _run_workers(redis: Redis, count: int, burst: bool) -> None:
    """One worker in this process, or a pool of ``count`` worker processes."""
    if count == 1:
        RunnerWorker([keys.JOBS_QUEUE], connection=redis, job_class=RunnerJob,
                     serializer=keys.RQ_SERIALIZER).work(burst=burst, logging_level="INFO")
        return
    pool = WorkerPool([keys.JOBS_QUEUE], connection=redis, num_workers=count,
                      worker_class=RunnerWorker, job_class=RunnerJob,
                      serializer=keys.RQ_SERIALIZER)
    pool.start(burst=burst, logging_level="INFO")
