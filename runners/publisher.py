"""How a runner talks back: events for the recorder, log chunks for viewers, a lease.

Everything goes through Redis. The lease (``slipway:lease:<job>`` = attempt) says
"a live runner owns this job"; it expires when the runner dies, which is how the
server tells a lost runner from a slow one. A Redis that does not answer for a while
(a restart, a failover) does not fail the build: events and log chunks wait in order
in a bounded outbox and a thread sends them once it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from itertools import islice
from typing import Callable

from redis import Redis
from redis.exceptions import RedisError

from ci.pipeline import fair_queue, keys
from ci.pipeline.logformat import END, INFO, OUT, STEP, LogEntry
from ci.pipeline.masking import Masker
from ci.pipeline.redact import without_credentials
from ci.pipeline.spec import Event, EventType, JobSpec

log = logging.getLogger(__name__)

#: Events are consumed within milliseconds; the cap only bounds a stopped recorder.
EVENTS_MAXLEN = 100_000
#: Stream entries held while Redis does not answer; past this, the oldest log chunks go.
OUTBOX_LIMIT = 5000
#: How often the outbox is retried, and a lease renewal or cancel watch after an error.
RETRY_SECONDS = 0.5
#: How long a finished job waits for Redis to take its last entries before giving up.
SEND_WAIT_SECONDS = 60.0


class Publisher:
    """Reports one attempt of one job. Safe to call from the job's threads."""

    def __init__(self, redis: Redis, spec: JobSpec, secret_values: list[str] = ()) -> None:
        self.redis = redis
        self.spec = spec
        self.log_key = keys.log_stream(spec.job_id)
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._logged = 0
        #: The step whose output went past the log's limit, and how many bytes were not kept.
        self._cut_step: int | None = None
        self._dropped = 0
        #: Steps whose last output did not end its line.
        self._unended: set[int] = set()
        self._masker = Masker(list(secret_values))
        self._outbox: deque[tuple[str, dict[str, str], int | None]] = deque()
        # Re-entrant (a Condition's default lock): events are numbered and sent under it.
        self._outbox_lock = threading.Condition(threading.RLock())
        self._retrying = False
        self._lost = 0
        self._events = 0
        #: Set once a newer attempt of the job was found to have replaced this one.
        self._replaced = False

    def claim(self) -> str | None:
        """Take the job's lease; returns why not when this attempt must not run.

        Either way this runner took the job off RQ's queue: the next job in line is admitted
        to the place it left (``ci.pipeline.fair_queue``), before this one starts.
        """
        current = self.redis.get(keys.current_attempt(self.spec.job_id))
        if current is not None and int(current) > self.spec.attempt:
            fair_queue.release(self.redis, self.spec.repo_id, self._rq_job_id())
            return f"attempt {self.spec.attempt} is stale; attempt {int(current)} replaced it"
        fair_queue.admit(self.redis)
        key = keys.lease(self.spec.job_id)
        if self.redis.set(key, self.spec.attempt, nx=True, ex=keys.LEASE_TTL_SECONDS):
            return None
        holder = self.redis.get(key)
        if holder is not None and int(holder) >= self.spec.attempt:
            return "another runner holds this job's lease"
        # An older attempt's lease: this attempt replaces it, and that runner, if it
        # is still alive, sees the change at its next renewal and stops its container.
        self.redis.set(key, self.spec.attempt, ex=keys.LEASE_TTL_SECONDS)
        return None

    def _rq_job_id(self) -> str:
        return keys.rq_job_id(self.spec.job_id, self.spec.attempt)

    def _free_place(self) -> None:
        """The job ended: it no longer counts against its repository's limit of jobs at once,
        and the next in line may go. With Redis away, the recorder frees the place when it
        records the end, or the reconciler if the recorder cannot either."""
        if self._retrying:  # Redis is away: no wait for it here, the containers must go
            return
        try:
            fair_queue.release(self.redis, self.spec.repo_id, self._rq_job_id())
        except RedisError as exc:
            log.warning("job %s: its place in the fair queue was not freed, Redis: %s",
                        self.spec.job_id, exc)

    def keep_lease(self, on_lost: Callable[[], None]) -> None:
        """Renew the lease in the background until :meth:`release`; ``on_lost`` if taken."""
        def renew() -> None:
            key = keys.lease(self.spec.job_id)
            while not self._stop.wait(keys.LEASE_REFRESH_SECONDS):
                try:
                    holder = self.redis.get(key)
                    if holder is not None and int(holder) != self.spec.attempt:
                        on_lost()
                        return
                    self.redis.set(key, self.spec.attempt, ex=keys.LEASE_TTL_SECONDS)
                except RedisError as exc:  # the lease outlives a few missed renewals
                    log.warning("job %s: lease not renewed, Redis: %s", self.spec.job_id, exc)

        self._refresher = threading.Thread(target=renew, name=f"lease-{self.spec.job_id}",
                                           daemon=True)
        self._refresher.start()

    def canceled_by(self) -> str | None:
        """Who asked this job to stop, or None."""
        who = self.redis.get(keys.cancel(self.spec.job_id))
        return who.decode("utf-8", "replace") if who is not None else None

    def watch_cancel(self, on_cancel: Callable[[str], None]) -> None:
        """Call ``on_cancel(who)`` as soon as the job is canceled (a Redis message, not polling).

        When Redis goes away the watch subscribes again once it answers, and reads the cancel
        key, which says whether the job was canceled meanwhile (or before the first subscribe).
        """
        def listen() -> None:
            pubsub, who = None, None
            try:
                while who is None and not self._stop.is_set():
                    try:
                        if pubsub is None:
                            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                            pubsub.subscribe(keys.cancel(self.spec.job_id))
                            who = self.canceled_by()
                            continue
                        message = pubsub.get_message(timeout=0.5)
                        if message is not None:
                            who = message["data"].decode("utf-8", "replace")
                    except (RedisError, ValueError) as exc:
                        if pubsub is not None:  # once per outage, not at every retry
                            log.warning("job %s: cancel watch interrupted, Redis: %s",
                                        self.spec.job_id, exc)
                            pubsub.close()
                        pubsub = None
                        self._stop.wait(RETRY_SECONDS)
                if who is not None and not self._stop.is_set():
                    on_cancel(who)
            finally:
                if pubsub is not None:
                    pubsub.close()

        threading.Thread(target=listen, name=f"cancel-{self.spec.job_id}", daemon=True).start()

    def release(self) -> None:
        """Stop renewing and watching; the lease then expires on its own, after the final events."""
        self._stop.set()

    def event(self, kind: EventType, **data) -> None:
        with self._outbox_lock:
            self._send(self._event_entry(kind, data))

    def _event_entry(self, kind: EventType, data: dict) -> tuple[str, dict[str, str], int]:
        """An event numbered after the previous one. Called holding the outbox lock until the
        event is queued, so that the numbers follow the order of the stream."""
        self._events += 1
        event = Event(type=kind, job_id=self.spec.job_id, attempt=self.spec.attempt,
                      at=time.time(), data=data, seq=self._events)
        return keys.EVENTS_STREAM, {"e": event.to_json()}, EVENTS_MAXLEN

    def log(self, kind: str, step: int, data: str) -> None:
        if kind == OUT and data.endswith("\n"):
            self._unended.discard(step)
        elif kind == OUT:
            self._unended.add(step)
        self._send((self.log_key, LogEntry("", kind, step, data).to_fields(), None))

    def info(self, text: str, step: int = -1) -> None:
        """A line of the runner's own in the section of the step it concerns (-1: none,
        as before the first step), masked and without a URL's credentials: it may quote
        what a build, a service or git printed."""
        self._send(*self._note(step, self._masker.mask(without_credentials(text))))

    def _note(self, step: int, text: str) -> list[tuple[str, dict[str, str], None]]:
        """The entries of a line of Slipway's own in ``step``'s section, on a line of its own."""
        return [*self._end_line(step),
                (self.log_key, LogEntry("", INFO, step, text).to_fields(), None)]

    def _end_line(self, step: int) -> list[tuple[str, dict[str, str], None]]:
        """A newline for ``step``'s output if it did not end its line, else nothing."""
        if step not in self._unended:
            return []
        self._unended.discard(step)
        return [(self.log_key, LogEntry("", OUT, step, "\n").to_fields(), None)]

    def section(self, index: int, title: str) -> None:
        """Open a section that is not a step (a service's output): a log entry, no event."""
        self.log(STEP, index, title)

    def step_started(self, index: int, name: str) -> None:
        self.log(STEP, index, name)
        self.event(EventType.STEP_STARTED, step=index)

    def output(self, index: int, text: str) -> None:
        """Send a step's output, secrets masked; past the job's log limit, count it only."""
        text = self._masker.feed(text)
        if text:
            self._send_output(index, text)

    def end_output(self, index: int) -> None:
        """A step ended: send what the masker held back waiting for the next chunk, and end
        its last line, so that what follows in the log (the next step's header, a line of
        Slipway's own in this section) starts a line of its own on the page and in text."""
        text = self._masker.flush()
        if text:
            self._send_output(index, text)
        if newline := self._end_line(index):
            self._send(*newline)

    def _send_output(self, index: int, text: str) -> None:
        size = len(text.encode("utf-8", "replace"))
        limit = self.spec.log_limit_bytes
        if self._logged + size > limit:
            dropped = size
            if self._cut_step is None:
                self._cut_step = index
                kept = text.encode()[:max(limit - self._logged, 0)].decode("utf-8", "ignore")
                if kept:
                    self.log(OUT, index, kept)
                dropped -= len(kept.encode())
                self._send(*self._note(index, f"the log was cut at {limit // 1024} KiB; "
                                              "the rest of the output is not kept"))
            self._logged += size
            self._dropped += dropped
            return
        self._logged += size
        self.log(OUT, index, text)

    def _cut_summary(self) -> list[tuple[str, dict[str, str], None]]:
        """At the end of a cut log, how much was not kept, in the step where the cut was."""
        if self._cut_step is None:
            return []
        dropped = (f"{self._dropped // 1024:,} KiB" if self._dropped >= 1024
                   else f"{self._dropped:,} bytes")
        return self._note(self._cut_step, f"{dropped} of output past the limit were not kept")

    def _shown_error(self, error: str | None) -> str | None:
        """The job's error as the log, the build page and the forge may show it: masked (it
        may quote a service's output) and no longer than the job's log may be."""
        if not error:
            return error
        shown = self._masker.mask(without_credentials(error)).encode("utf-8", "replace")
        return shown[:self.spec.log_limit_bytes].decode("utf-8", "ignore")

    def finished(self, status: str, error: str | None, step: int = -1) -> None:
        """Close the log and report the result, in that order, in one round trip; the error
        goes into the section of the step it concerns (-1: none). Then free the job's place
        in the fair queue."""
        error = self._shown_error(error)
        entries = self._cut_summary() + (self._note(step, error) if error else [])
        with self._outbox_lock:
            self._send(*entries, (self.log_key, LogEntry("", END, -1, status).to_fields(), None),
                       self._event_entry(EventType.JOB_FINISHED,
                                         {"status": status, "error": error}))
        self._free_place()

    def wait_sent(self, timeout: float = SEND_WAIT_SECONDS) -> bool:
        """Wait until Redis has taken every entry (the process may exit once a job ends).

        Returns:
            False when Redis stayed away ``timeout`` seconds; the entries are then lost.
        """
        with self._outbox_lock:
            sent = self._outbox_lock.wait_for(lambda: not self._outbox, timeout)
            if not sent:
                log.error("job %s: Redis did not answer for %ss: %d events and log entries "
                          "are lost", self.spec.job_id, timeout, len(self._outbox))
        return sent

    def _send(self, *entries: tuple[str, dict[str, str], int | None]) -> None:
        """Append entries (stream, fields, maxlen) to their streams, in order, in one round
        trip; while Redis is away they wait in the outbox for the retry thread."""
        with self._outbox_lock:
            if self._replaced:
                entries = tuple(entry for entry in entries if entry[0] == keys.EVENTS_STREAM)
            for entry in entries:
                self._hold(entry)
            if self._retrying:
                return
            try:
                self._flush()
            except RedisError as exc:
                log.warning("job %s: Redis does not answer (%s): holding events and log "
                            "entries until it does", self.spec.job_id, exc)
                self._retrying = True
                threading.Thread(target=self._retry, name=f"outbox-{self.spec.job_id}",
                                 daemon=True).start()

    def _hold(self, entry: tuple[str, dict[str, str], int | None]) -> None:
        """Queue ``entry``; when the outbox is full, lose the oldest log chunk (never an event
        while a log chunk is there to lose), and say so in the log once."""
        if len(self._outbox) >= OUTBOX_LIMIT:
            index = next((i for i, (key, _f, _m) in enumerate(self._outbox)
                          if key != keys.EVENTS_STREAM), 0)
            del self._outbox[index]
            self._lost += 1
            if self._lost == 1:
                note = "some of this job's output was lost while Redis did not answer"
                self._outbox.append((self.log_key, LogEntry("", INFO, -1, note).to_fields(), None))
        self._outbox.append(entry)

    def _flush(self) -> None:
        """Send the outbox, oldest first, in batches; raises RedisError when Redis is away."""
        while self._outbox:
            batch = list(islice(self._outbox, 500))
            with self.redis.pipeline(transaction=len(batch) > 1) as pipe:
                for key, fields, maxlen in batch:
                    pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
                pipe.execute()
            for _entry in batch:
                self._outbox.popleft()
        self._outbox_lock.notify_all()

    def _retry(self) -> None:
        """Retry the outbox until Redis takes it all (the thread of a Redis outage)."""
        with self._outbox_lock:
            while self._outbox:
                self._outbox_lock.wait(RETRY_SECONDS)
                try:
                    self._drop_log_if_replaced()
                    self._flush()
                except RedisError:
                    continue
            self._retrying = False
        log.info("job %s: Redis answers again; the held entries were sent", self.spec.job_id)

    def _drop_log_if_replaced(self) -> None:
        """After an outage, keep this attempt's held log lines out of a newer attempt's log.

        While this runner could not reach Redis (its host cut off, say), its lease may have
        expired and the job gone to another runner as a new attempt, whose log is the job's
        live log now. Held events still go: the recorder ignores an old attempt's. From then
        on this attempt's log lines are dropped; its lease watch stops the job soon after.
        """
        current = self.redis.get(keys.current_attempt(self.spec.job_id))
        if self._replaced or current is None or int(current) <= self.spec.attempt:
            return
        self._replaced = True
        held = len(self._outbox)
        self._outbox = deque(entry for entry in self._outbox if entry[0] == keys.EVENTS_STREAM)
        log.warning("job %s: attempt %s replaced attempt %s while Redis was away; %d held log "
                    "entries dropped", self.spec.job_id, int(current), self.spec.attempt,
                    held - len(self._outbox))

