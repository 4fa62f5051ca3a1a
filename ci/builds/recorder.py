"""The recorder: applies runner events to the database, in order, idempotently.

Runners never touch SQL; they append events to one Redis stream. The recorder
reads it as a consumer group (so nothing is lost while it restarts), applies each
event in one transaction, acknowledges it, has the job's commit statuses
reported (``ci.forges.statuses``), archives a job's log when the job ends, and between
batches runs the reconciler. Events of an attempt that is no longer current, or
for a job already finished, are ignored: applying an event twice changes nothing.
An event that cannot be applied at all is set aside in a dead-letter stream, so that
it never stops the recorder (read again after a restart, it would fail again).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from ci import store
from ci.builds import dispatch, service
from ci.forges import statuses
from ci.logs import storage
from ci.pipeline import keys
from ci.pipeline.logformat import END, LogEntry
from ci.pipeline.spec import Event, EventType
from ci.pipeline.status import Status
from ci.settings import Settings
from ci.store import Session, Sessions
from ci.store.db import Unavailable
from ci.store.models import Job

log = logging.getLogger(__name__)

RECONCILE_EVERY_SECONDS = 5.0
REDIS_RETRY_SECONDS = 2.0


def _at(event: Event) -> datetime:
    return datetime.fromtimestamp(event.at, timezone.utc).replace(tzinfo=None)


@dataclass
class Applied:
    """What applying an event did: its job, and the jobs a build plan added."""

    job: Job
    added: list[Job] = field(default_factory=list)


def apply_event(session: Session, event: Event) -> Applied | None:
    """Apply one event; None when the event is of an old attempt (or an unknown job).

    Events for a job that is already finished (canceled while queued, say) change
    nothing, but the job is still returned so that its log gets archived.
    """
    job = store.get_job(session, event.job_id)
    if job is None or job.attempt != event.attempt:
        return None
    applied = Applied(job)
    if Status(job.status).finished:
        return applied
    data = event.data
    if event.type == EventType.JOB_STARTED:
        store.start_job(session, job, _at(event), str(data.get("runner", "")))
    elif event.type == EventType.BUILD_PLANNED:
        cells = [{str(k): str(v) for k, v in dict(cell).items()} for cell in data.get("cells", [])]
        applied.added = store.plan_build(session, job, cells,
                                         [bool(a) for a in data.get("allow_failures", [])])
    elif event.type == EventType.STEPS_PLANNED:
        store.plan_steps(session, job, [str(name) for name in data.get("steps", [])],
                         data.get("image"))
    elif event.type in (EventType.STEP_STARTED, EventType.STEP_FINISHED):
        step = store.step_of(job, int(data.get("step", -1)))
        if step is None:
            return applied
        if event.type == EventType.STEP_STARTED:
            store.start_step(session, step, _at(event))
        else:
            store.finish_step(session, step, Status(data["status"]), data.get("exit_code"),
                              _at(event))
    elif event.type == EventType.JOB_FINISHED:
        store.finish_job(session, job, Status(data["status"]), _at(event), data.get("error"))
    return applied


class Recorder:
    """One recorder process: a consumer of the events stream."""

    def __init__(self, sessions: Sessions, redis: Redis, settings: Settings,
                 consumer: str = "recorder") -> None:
        self.sessions = sessions
        self.redis = redis
        self.settings = settings
        self.consumer = consumer
        self._last_reconcile = 0.0
        self._backlog = True
        self._create_group()

    def _create_group(self) -> None:
        try:
            self.redis.xgroup_create(keys.EVENTS_STREAM, keys.RECORDER_GROUP, id="0",
                                     mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int | None = None) -> int:
        """Read and apply one batch of events; returns how many were read.

        Redis or the database failing ends the batch unacknowledged, to be read again
        once they answer; any other error is the event's, which is then set aside.
        """
        rows = []
        if self._backlog:
            # First what this consumer read but never acknowledged (it stopped mid-batch).
            rows = self._read("0", None)
            self._backlog = bool(rows)
        if not rows:
            rows = self._read(">", block_ms)
        finished: list[int] = []
        with self.sessions() as session:
            for entry_id, fields in rows:
                try:
                    job_id = self._record(session, fields)
                except (RedisError, Unavailable):
                    raise
                except Exception as exc:  # noqa: BLE001 - whatever it is, this event caused it
                    session.rollback()
                    self._set_aside(entry_id, fields, exc)
                    continue
                if job_id is not None:
                    finished.append(job_id)
        for job_id in finished:
            self._archive(job_id)
        if rows:
            self.redis.xack(keys.EVENTS_STREAM, keys.RECORDER_GROUP, *[r[0] for r in rows])
        return len(rows)

    def _record(self, session: Session, fields: dict[bytes, bytes]) -> int | None:
        """Apply one event and what follows from it; the id of the job it finished, if any."""
        event = Event.from_json(fields[b"e"])
        applied = apply_event(session, event)
        session.commit()
        if applied is None:
            return None
        if applied.added:
            self._start_cells(session, applied)
        if event.type in statuses.STATUS_EVENTS:
            statuses.report_job(self.redis, applied.job)
        return applied.job.id if event.type == EventType.JOB_FINISHED else None

    def _set_aside(self, entry_id: bytes, fields: dict[bytes, bytes], exc: Exception) -> None:
        """Move an event that cannot be applied, with its error, to the dead-letter stream."""
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.error("event %s cannot be applied; set aside in %s: %s", entry_id.decode(),
                  keys.EVENTS_DEAD_STREAM, error, exc_info=exc)
        with self.redis.pipeline() as pipe:
            pipe.xadd(keys.EVENTS_DEAD_STREAM, {**fields, b"id": entry_id, b"error": error},
                      maxlen=keys.EVENTS_DEAD_MAXLEN, approximate=True)
            pipe.xack(keys.EVENTS_STREAM, keys.RECORDER_GROUP, entry_id)
            pipe.execute()

    def _start_cells(self, session: Session, applied: Applied) -> None:
        """Enqueue the cells a plan added, unless the build was canceled while it planned."""
        who = self.redis.get(keys.cancel(applied.job.id))
        if who is not None:
            service.cancel(session, self.redis, applied.job.build, who.decode("utf-8", "replace"))
            return
        dispatch.enqueue_jobs(self.redis, self.settings, applied.job.build, applied.added)

    def _read(self, start: str, block_ms: int | None) -> list:
        try:
            reply = self.redis.xreadgroup(keys.RECORDER_GROUP, self.consumer,
                                          {keys.EVENTS_STREAM: start}, count=500, block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the stream (restarted without persistence): start it again.
            self._create_group()
            return []
        return [row for _stream, entries in reply or [] for row in entries]

    def _archive(self, job_id: int) -> None:
        storage.archive(self.redis, self.settings.log_dir, job_id)
        with self.sessions() as session:
            store.mark_log_archived(session, job_id)
            session.commit()

    def reconcile(self) -> dispatch.Reconciled:
        """Hand out lost queued jobs again; close jobs whose runner vanished."""
        self._last_reconcile = time.monotonic()
        with self.sessions() as session:
            result = dispatch.reconcile(session, self.redis, self.settings)
            for job_id in result.lost:
                statuses.report_job(self.redis, store.get_job(session, job_id))
        for job_id in result.requeued:
            log.info("job %s was not in Redis; enqueued again", job_id)
        for job_id in result.lost:
            log.warning("job %s lost its runner; marked errored", job_id)
            end = LogEntry(id=f"{int(time.time() * 1000)}-0", kind=END, step=-1,
                           data=Status.ERRORED.value)
            self.redis.xadd(keys.log_stream(job_id), end.to_fields())
            self._archive(job_id)
        return result

    def drain(self) -> int:
        """Apply everything already in the stream, without waiting (for tests and tools)."""
        total = 0
        while count := self.step(block_ms=None):
            total += count
        return total

    def run_forever(self) -> None:
        """Record until stopped; a Redis outage pauses the recorder, it does not end it."""
        while True:
            try:
                self.step(block_ms=int(RECONCILE_EVERY_SECONDS * 1000))
                if time.monotonic() - self._last_reconcile >= RECONCILE_EVERY_SECONDS:
                    self.reconcile()
            except RedisError as exc:
                log.warning("Redis unavailable (%s); retrying in %ss", exc, REDIS_RETRY_SECONDS)
                time.sleep(REDIS_RETRY_SECONDS)
