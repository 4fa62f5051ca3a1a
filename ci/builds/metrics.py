"""What ``GET /metrics`` shows, read from SQL and Redis at each scrape.

Nothing is counted in a process's memory: gunicorn's workers and the web hosts then all
answer the same numbers, whichever one a scrape reaches, and a restart loses nothing. The
database and Redis are read separately, so that either being down still leaves what the
other one tells, with ``slipway_up`` saying which one could not be read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from ci.builds import timings
from ci.builds.recorder_lag import RecorderLag, recorder_lag
from ci.builds.redis_histogram import RedisHistogram, Snapshot
from ci.builds.runner_roster import runners_seen
from ci.pipeline import fair_queue, keys
from ci.pipeline.status import Status
from ci.store import Session
from ci.store import metrics as sql
from ci.store.db import Unavailable

#: The RQ queues shown: the runners' jobs and the status reports to forges.
QUEUES = (keys.JOBS_QUEUE, keys.STATUS_QUEUE)


@dataclass(frozen=True)
class SqlFacts:
    """What the database says, read in one go."""

    builds: dict[str, int]
    jobs: dict[str, int]
    #: Since when the job waiting longest for a runner waits (seconds since the epoch).
    oldest_queued_at: float | None


@dataclass(frozen=True)
class QueueFacts:
    """One RQ queue's backlog."""

    #: For the runners' queue, also the jobs waiting in their repository's line.
    length: int
    failed: int
    #: When the job at the head of the queue was enqueued (seconds since the epoch).
    head_enqueued_at: float | None


@dataclass(frozen=True)
class RedisFacts:
    """What Redis says, read in one go (all of it or, Redis failing, none)."""

    queues: dict[str, QueueFacts]
    live_runners: int
    busy_runners: int
    recorders: RecorderLag
    histograms: dict[str, dict[str, Snapshot]]


#: The histograms kept in Redis: (name, help, histogram, its label or None).
HISTOGRAMS: tuple[tuple[str, str, RedisHistogram, str | None], ...] = (
    ("slipway_webhook_duration_seconds",
     "Time from receiving a forge's webhook to answering it, on every web process.",
     timings.WEBHOOKS, None),
    ("slipway_job_duration_seconds",
     "Time from a job's start on a runner to its end, by status, as the recorders apply it.",
     timings.JOBS, "status"),
    ("slipway_step_duration_seconds",
     "Time from a step's start to its end, by status, as the recorders apply it.",
     timings.STEPS, "status"),
)


class SlipwayCollector(Collector):
    """The metrics of one scrape, from one database session and one Redis client."""

    def __init__(self, session: Session, redis: Redis) -> None:
        self.session = session
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        """Every metric that can be read now; those of a component that is down are left out."""
        now = time.time()
        sql_facts = _read_sql(self.session)
        redis_facts = _read_redis(self.redis)
        up = GaugeMetricFamily("slipway_up", "Whether this scrape could read the component "
                               "(1) or not (0); its metrics are then left out.",
                               labels=["component"])
        up.add_metric(["database"], float(sql_facts is not None))
        up.add_metric(["redis"], float(redis_facts is not None))
        yield up
        if sql_facts is not None:
            yield from _sql_metrics(sql_facts)
        if redis_facts is not None:
            yield from _redis_metrics(redis_facts, now)
        yield _oldest_waits(sql_facts, redis_facts, now)


def _read_sql(session: Session) -> SqlFacts | None:
    try:
        oldest = sql.oldest_queued_job(session)
        return SqlFacts(builds=sql.builds_by_status(session), jobs=sql.jobs_by_status(session),
                        oldest_queued_at=None if oldest is None else _epoch(oldest))
    except Unavailable:
        return None


def _read_redis(redis: Redis) -> RedisFacts | None:
    try:
        runners = runners_seen(redis, datetime.now(timezone.utc).replace(tzinfo=None))
        return RedisFacts(
            queues={name: _queue(redis, name) for name in QUEUES},
            live_runners=sum(runner.alive for runner in runners),
            busy_runners=sum(runner.alive and runner.job_id is not None for runner in runners),
            recorders=recorder_lag(redis),
            histograms={name: histogram.read(redis) for name, _, histogram, _ in HISTOGRAMS},
        )
    except RedisError:
        return None


def _queue(redis: Redis, name: str) -> QueueFacts:
    queue = Queue(name, connection=redis, serializer=keys.RQ_SERIALIZER)
    head = queue.get_jobs(0, 1)
    in_lines = 0
    if name == keys.JOBS_QUEUE:
        in_lines = sum(len(line.waiting) for line in fair_queue.snapshot(redis).lines.values())
    return QueueFacts(
        length=queue.count + in_lines,
        failed=queue.failed_job_registry.get_job_count(cleanup=False),
        head_enqueued_at=_epoch(head[0].enqueued_at) if head and head[0].enqueued_at else None,
    )


def _sql_metrics(facts: SqlFacts) -> Iterator[Metric]:
    for name, what, counts in (("slipway_builds", "Builds", facts.builds),
                               ("slipway_jobs", "Jobs", facts.jobs)):
        family = GaugeMetricFamily(name, f"{what} in the database, by status.",
                                   labels=["status"])
        for status in Status:
            family.add_metric([status.value], counts.get(status.value, 0))
        yield family


def _redis_metrics(facts: RedisFacts, now: float) -> Iterator[Metric]:
    length = GaugeMetricFamily("slipway_queue_length", "Jobs waiting in each RQ queue (for "
                               "the runners' queue, with those waiting in their repository's "
                               "line to be admitted).", labels=["queue"])
    failed = GaugeMetricFamily("slipway_queue_failed_jobs",
                               "Jobs in each RQ queue's failed registry (status reports the "
                               "reporter gave up on, for the status queue).", labels=["queue"])
    for name, queue in facts.queues.items():
        length.add_metric([name], queue.length)
        failed.add_metric([name], queue.failed)
    yield length
    yield failed
    yield GaugeMetricFamily("slipway_runners_live", "Runner workers that are still there "
                            "(heartbeat or job lease fresh).", value=facts.live_runners)
    yield GaugeMetricFamily("slipway_runners_busy", "Live runner workers running a job.",
                            value=facts.busy_runners)
    lag = facts.recorders
    if lag.unread is not None:
        yield GaugeMetricFamily("slipway_recorder_lag_events",
                                "Runner events no recorder has read yet.", value=lag.unread)
    yield GaugeMetricFamily("slipway_recorder_pending_events", "Runner events a recorder "
                            "read and has not acknowledged yet.", value=lag.pending)
    yield GaugeMetricFamily("slipway_recorder_oldest_event_age_seconds",
                            "Age of the oldest runner event the recorders have not settled "
                            "(0 when none waits).", value=_age(lag.oldest_at, now))
    for name, documentation, histogram, label in HISTOGRAMS:
        yield _histogram(name, documentation, histogram, label, facts.histograms[name])


def _histogram(name: str, documentation: str, histogram: RedisHistogram, label: str | None,
               snapshots: dict[str, Snapshot]) -> HistogramMetricFamily:
    if label is None:
        snapshot = snapshots.get("") or histogram.empty()
        return HistogramMetricFamily(name, documentation, buckets=snapshot.buckets,
                                     sum_value=snapshot.sum)
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, snapshot in sorted(snapshots.items()):
        family.add_metric([value], buckets=snapshot.buckets, sum_value=snapshot.sum)
    return family


def _oldest_waits(sql_facts: SqlFacts | None, redis_facts: RedisFacts | None,
                  now: float) -> GaugeMetricFamily:
    """The jobs queue's wait from SQL, where every queued job is (also those Redis lost);
    the status queue's from RQ, the only place status reports wait."""
    family = GaugeMetricFamily("slipway_queue_oldest_wait_seconds",
                               "How long the job waiting longest in each queue has waited "
                               "(0 when none waits).", labels=["queue"])
    if sql_facts is not None:
        family.add_metric([keys.JOBS_QUEUE], _age(sql_facts.oldest_queued_at, now))
    if redis_facts is not None:
        status_queue = redis_facts.queues[keys.STATUS_QUEUE]
        family.add_metric([keys.STATUS_QUEUE], _age(status_queue.head_enqueued_at, now))
    return family


def _age(since: float | None, now: float) -> float:
    return 0.0 if since is None else max(0.0, now - since)


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch of a UTC time, naive (the database's) or not (RQ's)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
