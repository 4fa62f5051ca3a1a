"""The runner workers Redis knows, what each is running and whether it is still there, for
the runners page.

A runner is an RQ worker on the jobs queue (``runners.service``). RQ keeps each worker's
record (host, process, state, last heartbeat) until it expires, minutes after the worker
died. A busy runner also renews its job's lease every few seconds (``keys.lease``), which
tells much sooner whether it is still alive; an idle one heartbeats each time it stops
waiting for a job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from redis import Redis
from rq import Queue, Worker
from rq.defaults import DEFAULT_WORKER_TTL

from ci.pipeline import keys

#: ``keys.rq_job_id``: the job's id and the attempt.
RQ_JOB_ID = re.compile(r"slipway-job-(\d+)-(\d+)")
#: An idle worker heartbeats every worker TTL less 15 s; silent for longer, it is gone.
IDLE_SILENCE = timedelta(seconds=DEFAULT_WORKER_TTL + 60)
#: A worker that just took a job heartbeats then; its runner takes the lease right after.
STARTING = timedelta(seconds=keys.LEASE_TTL_SECONDS)


@dataclass(frozen=True)
class RunnerSeen:
    """One runner worker as Redis describes it."""

    name: str
    hostname: str | None
    pid: int | None
    #: RQ's word: ``idle``, ``busy``, ``started`` or ``suspended``.
    state: str
    #: The Slipway job (and its attempt) it runs; None when idle or running something else.
    job_id: int | None
    attempt: int | None
    #: Its last heartbeat, naive UTC like the database's times.
    last_seen: datetime | None
    alive: bool


def parse_rq_job_id(rq_job_id: str | None) -> tuple[int, int] | None:
    """(job id, attempt) of an RQ job id made by ``keys.rq_job_id``; None for another."""
    match = RQ_JOB_ID.fullmatch(rq_job_id or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def runners_seen(redis: Redis, now: datetime) -> list[RunnerSeen]:
    """Every runner worker registered on the jobs queue, by host and name.

    Args:
        now: the current time, naive UTC.

    Raises:
        redis.exceptions.RedisError: Redis does not answer.
    """
    queue = Queue(keys.JOBS_QUEUE, connection=redis, serializer=keys.RQ_SERIALIZER)
    seen = [_seen(redis, worker, now)
            for worker in Worker.all(queue=queue, serializer=keys.RQ_SERIALIZER)]
    return sorted(seen, key=lambda runner: (runner.hostname or "", runner.name))


def _seen(redis: Redis, worker: Worker, now: datetime) -> RunnerSeen:
    running = parse_rq_job_id(worker.get_current_job_id())
    last_seen = _naive_utc(worker.last_heartbeat)
    silence = now - last_seen if last_seen is not None else None
    if running is not None:
        holder = redis.get(keys.lease(running[0]))
        alive = (holder is not None and int(holder) == running[1]) or (
            silence is not None and silence <= STARTING)
    else:
        alive = silence is not None and silence <= IDLE_SILENCE
    return RunnerSeen(
        name=worker.name, hostname=worker.hostname, pid=worker.pid,
        state=worker.get_state(),
        job_id=running[0] if running else None, attempt=running[1] if running else None,
        last_seen=last_seen, alive=alive,
    )


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)
