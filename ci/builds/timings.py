"""How long webhooks, jobs and steps take: the histograms ``GET /metrics`` shows.

Jobs and steps are timed by the recorder as it applies their end, not computed from SQL
at each scrape: a Prometheus histogram is a set of counters that only grow (``rate()`` and
``histogram_quantile()`` rely on it), which a window over the last hours is not, and
counting every finished job and step since the start at each scrape would read the
largest tables whole every few seconds. Each end is applied once (``ci.store.attempts``),
so each is counted once, whichever recorder applies it. Jobs that never reached their end
on a runner (canceled while queued, lost with their runner) have no duration to count.
"""

from __future__ import annotations

from redis import Redis

from ci import store
from ci.builds.redis_histogram import RedisHistogram
from ci.pipeline import keys
from ci.pipeline.spec import Event, EventType
from ci.store.models import Job

#: From receiving a webhook to answering it, in seconds.
WEBHOOKS = RedisHistogram(keys.metrics_histogram("webhook-seconds"),
                          (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
#: From a job's start on a runner to its end, in seconds, by the job's status.
JOBS = RedisHistogram(keys.metrics_histogram("job-seconds"),
                      (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0))
#: From a step's start to its end, in seconds, by the step's status.
STEPS = RedisHistogram(keys.metrics_histogram("step-seconds"),
                       (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0))


def record_end(redis: Redis, event: Event, job: Job) -> None:
    """Count the duration of the job or step whose end ``event`` just applied to ``job``.

    Raises:
        redis.exceptions.RedisError: Redis does not answer.
    """
    if event.type == EventType.JOB_FINISHED:
        timed, histogram = job, JOBS
    elif event.type == EventType.STEP_FINISHED:
        timed, histogram = store.step_of(job, int(event.data.get("step", -1))), STEPS
    else:
        return
    if timed is None or timed.started_at is None or timed.finished_at is None:
        return
    seconds = max(0.0, (timed.finished_at - timed.started_at).total_seconds())
    histogram.observe(redis, seconds, str(timed.status))
