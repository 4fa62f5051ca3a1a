"""The recorder: applies runner events to the database, in order, once.

Runners never touch SQL; they append events to one Redis stream. Recorders read it as
one consumer group, so any number may run (on any hosts) and nothing is lost while one
restarts. Each event is applied in one transaction that first takes its turn
(``ci.store.attempts``): an event applies only when it is the next of its job's attempt
(runners number them), so two recorders never apply one twice or two out of order,
whoever read what. An event whose predecessor is still with another recorder waits in
this recorder's pending list; the entries of a recorder that died (read, never
acknowledged) are claimed by the others once they have been idle for a while. The files
a job kept (``job.artifacts``) go into the artifact store (``ci.artifacts``) just before
the transaction that applies their event, so that no lock is held while they are written.

After an event the recorder has the job's commit statuses reported
(``ci.forges.statuses``), archives a job's log and frees its place in the fair queue
(``ci.pipeline.fair_queue``) when the job ends, and between batches
runs the reconciler and makes the builds of due schedules (both safe in several processes
too), and now and then prunes old builds (``ci.builds.retention``). An event that cannot
be applied at all is set aside in a dead-letter stream, so that it never stops the
recorders.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from ci import artifacts, store
from ci.builds import changes, dispatch, retention, schedules, service, timings
from ci.forges import statuses
from ci.logs import storage
from ci.pipeline import fair_queue, keys
from ci.pipeline.logformat import END, INFO, LogEntry
from ci.pipeline.spec import Event, EventType
from ci.pipeline.status import Status
from ci.settings import Settings
from ci.store import Session, Sessions
from ci.store.db import Unavailable
from ci.store.models import Job, utcnow

log = logging.getLogger(__name__)

#: What :meth:`Recorder._record` returns for an event that must wait for an earlier one.
_WAIT = object()

RECONCILE_EVERY_SECONDS = 5.0
REDIS_RETRY_SECONDS = 2.0
#: Events read at once: one transaction's worth.
READ_COUNT = 500
#: Entries a recorder read and did not acknowledge for this long are taken over by
#: another: their recorder died (a live one acknowledges within milliseconds).
CLAIM_IDLE_MS = 10_000
#: How long an event waits for an earlier one of its attempt before it is applied anyway:
#: the earlier one may have been lost with a Redis that restarted without its data.
GAP_WAIT_SECONDS = 30.0
#: While events wait for earlier ones, the recorder looks at them again this often.
WAITING_POLL_MS = 100
#: A recorder gone this long, with nothing pending, is removed from the consumer group.
CONSUMER_FORGET_MS = 3_600_000


def consumer_name() -> str:
    """This process's name in the recorders' consumer group: unique across hosts."""
    return f"{socket.gethostname()}-{os.getpid()}"


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
                 consumer: str | None = None) -> None:
        self.sessions = sessions
        self.redis = redis
        self.settings = settings
        self.consumer = consumer or consumer_name()
        self.pruning = retention.PeriodicPruning(sessions, redis, settings, self.consumer)
        self._last_reconcile = 0.0
        self._last_schedules = 0.0
        self._backlog = True
        #: Entries waiting for an earlier event of their attempt: when each was first seen.
        self._waiting: dict[bytes, float] = {}
        #: (repository id, build id) of the builds this batch changed, announced after it.
        self._changed: list[tuple[int, int]] = []
        self._create_group()

    def _create_group(self) -> None:
        try:
            self.redis.xgroup_create(keys.EVENTS_STREAM, keys.RECORDER_GROUP, id="0",
                                     mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int | None = None) -> int:
        """Read and apply one batch of events; returns how many were settled (applied,
        found applied already, ignored or set aside).

        Redis or the database failing ends the batch unacknowledged, to be read again
        once they answer; any other error is the event's, which is then set aside.
        """
        rows = []
        if self._backlog or self._waiting:
            # First this consumer's pending entries: read before it stopped, claimed from a
            # dead recorder, or waiting for an earlier event.
            rows = self._read("0", None)
            self._backlog = len(rows) >= READ_COUNT  # more may be pending
            if not self._backlog:  # forget what another recorder took over meanwhile
                pending = {entry_id for entry_id, _fields in rows}
                self._waiting = {entry_id: seen for entry_id, seen in self._waiting.items()
                                 if entry_id in pending}
        if self._waiting and block_ms is not None:
            block_ms = min(block_ms, WAITING_POLL_MS)
        rows += self._read(">", block_ms)
        settled: list[bytes] = []
        finished: list[int] = []
        with self.sessions() as session:
            for entry_id, fields in rows:
                if not fields:  # trimmed from the stream while pending
                    settled.append(entry_id)
                    continue
                try:
                    outcome = self._record(session, entry_id, fields)
                except (RedisError, Unavailable):
                    raise
                except Exception as exc:  # noqa: BLE001 - whatever it is, this event caused it
                    session.rollback()
                    self._set_aside(session, entry_id, fields, exc)
                    settled.append(entry_id)
                    continue
                if outcome is _WAIT:
                    continue
                settled.append(entry_id)
                if outcome is not None:
                    finished.append(outcome)
        for job_id in finished:
            self._archive(job_id)
        changes.announce(self.redis, self._changed)
        self._changed.clear()
        if settled:
            self.redis.xack(keys.EVENTS_STREAM, keys.RECORDER_GROUP, *settled)
        return len(settled)

    def _record(self, session: Session, entry_id: bytes,
                fields: dict[bytes, bytes]) -> int | None | object:
        """Apply one event and what follows from it.

        Returns:
            The id of the job whose log must be archived now, ``None``, or :data:`_WAIT`
            when an earlier event of its attempt has yet to be applied.
        """
        event = Event.from_json(fields[b"e"])
        kept = None
        if event.seq:
            first_seen = self._waiting.get(entry_id)
            force = first_seen is not None and time.monotonic() - first_seen >= GAP_WAIT_SECONDS
            kept = artifacts.receive(session, self.redis, self.settings, event, force)
            turn = store.take_event_turn(session, event.job_id, event.attempt, event.seq, force)
            if turn is store.EventTurn.LATER:
                session.rollback()
                self._waiting.setdefault(entry_id, time.monotonic())
                return _WAIT
            self._waiting.pop(entry_id, None)
            if turn is not store.EventTurn.NOW:
                session.rollback()
                artifacts.forget(self.redis, event)
                return self._redo(session, event) if turn is store.EventTurn.DONE else None
            if force:
                log.warning("job %s: event %s of attempt %s applied after waiting %ss for "
                            "earlier ones that never came", event.job_id, event.seq,
                            event.attempt, GAP_WAIT_SECONDS)
        applied = apply_event(session, event)
        if applied is not None:
            artifacts.record(session, self.redis, self.settings, applied.job, event, kept)
        session.commit()
        artifacts.forget(self.redis, event)
        if applied is None:
            return None
        self._changed.append((applied.job.build.repo_id, applied.job.build_id))
        if applied.added:
            self._start_cells(session, applied)
        if event.type in statuses.STATUS_EVENTS:
            statuses.report_job(self.redis, applied.job)
        timings.record_end(self.redis, event, applied.job)
        if event.type != EventType.JOB_FINISHED:
            return None
        # Its runner released it too, unless it died first: a place within the limit is free.
        fair_queue.release(self.redis, applied.job.build.repo_id,
                           keys.rq_job_id(event.job_id, event.attempt))
        return applied.job.id

    def _redo(self, session: Session, event: Event) -> int | None:
        """An event applied before its recorder could acknowledge it (that recorder died):
        redo what follows from it that may not have happened, all of it idempotent. Cells
        a plan added are left to the reconciler, which enqueues what Redis does not hold."""
        job = store.get_job(session, event.job_id)
        if job is None:
            return None
        if event.type in statuses.STATUS_EVENTS:
            statuses.report_job(self.redis, job)
        if event.type == EventType.JOB_FINISHED and not job.log_archived:
            return job.id
        return None

    def claim_abandoned(self) -> int:
        """Take over the entries of recorders that died holding them; returns how many.

        Also forgets recorders long gone with nothing pending, so the group's list of
        consumers does not grow with every restart.
        """
        claimed, start = 0, "0-0"
        while True:
            # Whole entries, not just ids: redis-py drops the cursor from a JUSTID reply.
            next_start, entries, *_deleted = self.redis.xautoclaim(
                keys.EVENTS_STREAM, keys.RECORDER_GROUP, self.consumer, CLAIM_IDLE_MS,
                start_id=start, count=READ_COUNT)
            claimed += len(entries)
            if next_start in (b"0-0", "0-0"):
                break
            start = next_start
        if claimed:
            log.warning("took over %d events a stopped recorder had read", claimed)
            self._backlog = True
        for consumer in self.redis.xinfo_consumers(keys.EVENTS_STREAM, keys.RECORDER_GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if (name != self.consumer and not consumer["pending"]
                    and consumer["idle"] > CONSUMER_FORGET_MS):
                self.redis.xgroup_delconsumer(keys.EVENTS_STREAM, keys.RECORDER_GROUP, name)
        return claimed

    def _set_aside(self, session: Session, entry_id: bytes, fields: dict[bytes, bytes],
                   exc: Exception) -> None:
        """Move an event that cannot be applied, with its error, to the dead-letter stream;
        the events of its attempt after it then take their turns without it."""
        self._waiting.pop(entry_id, None)
        try:
            event = Event.from_json(fields[b"e"])
        except Exception:  # noqa: BLE001 - not even an event: nothing of a job to move on
            event = None
        if event is not None and event.seq:
            store.take_event_turn(session, event.job_id, event.attempt, event.seq, force=True)
            session.commit()
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
                                          {keys.EVENTS_STREAM: start}, count=READ_COUNT,
                                          block=block_ms)
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
        """Hand out lost queued jobs again; retry once, then close, jobs whose runner
        vanished; take over what dead recorders left."""
        self._last_reconcile = time.monotonic()
        self.claim_abandoned()
        with self.sessions() as session:
            result = dispatch.reconcile(session, self.redis, self.settings)
            changed = []
            for job_id in result.retried + result.lost:
                job = store.get_job(session, job_id)
                statuses.report_job(self.redis, job)
                changed.append((job.build.repo_id, job.build_id))
        for job_id in result.requeued:
            log.info("job %s was not in Redis; enqueued again", job_id)
        for job_id in result.retried:
            log.warning("job %s lost its runner; enqueued again for another runner", job_id)
            note = LogEntry(id="", kind=INFO, step=-1,
                            data="the runner of the previous attempt stopped reporting; "
                                 "this attempt runs the job again")
            self.redis.xadd(keys.log_stream(job_id), note.to_fields())
        for job_id in result.lost:
            log.warning("job %s lost its runner again; marked errored", job_id)
            end = LogEntry(id=f"{int(time.time() * 1000)}-0", kind=END, step=-1,
                           data=Status.ERRORED.value)
            self.redis.xadd(keys.log_stream(job_id), end.to_fields())
            self._archive(job_id)
        changes.announce(self.redis, changed)
        return result

    def fire_schedules(self) -> list[schedules.Fired]:
        """Make the builds of the schedules due now; each due time is claimed by one
        recorder, whichever, however many look at once (``ci.builds.schedules``)."""
        self._last_schedules = time.monotonic()
        with self.sessions() as session:
            return schedules.fire_due(session, self.redis, self.settings, utcnow())

    def drain(self) -> int:
        """Apply everything already in the stream that can be, without waiting (for tests
        and tools)."""
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
                if time.monotonic() - self._last_schedules >= schedules.FIRE_EVERY_SECONDS:
                    self.fire_schedules()
                self.pruning.tick()
            except RedisError as exc:
                log.warning("Redis unavailable (%s); retrying in %ss", exc, REDIS_RETRY_SECONDS)
                time.sleep(REDIS_RETRY_SECONDS)
