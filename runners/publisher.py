"""How a runner talks back: events for the recorder, log chunks for viewers, a lease.

Everything goes through Redis. The lease (``slipway:lease:<job>`` = attempt) says
"a live runner owns this job"; it expires when the runner dies, which is how the
server tells a lost runner from a slow one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from redis import Redis
from redis.exceptions import RedisError

from ci.pipeline import keys
from ci.pipeline.logformat import END, INFO, OUT, STEP, LogEntry
from ci.pipeline.masking import Masker
from ci.pipeline.spec import Event, EventType, JobSpec

log = logging.getLogger(__name__)

#: Events are consumed within milliseconds; the cap only bounds a stopped recorder.
EVENTS_MAXLEN = 100_000


class Publisher:
    """Reports one attempt of one job. Safe to call from the job's threads."""

    def __init__(self, redis: Redis, spec: JobSpec, secret_values: list[str] = ()) -> None:
        self.redis = redis
        self.spec = spec
        self.log_key = keys.log_stream(spec.job_id)
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._logged = 0
        self._cut = False
        self._masker = Masker(list(secret_values))

    def claim(self) -> str | None:
        """Take the job's lease; returns why not when this attempt must not run."""
        current = self.redis.get(keys.current_attempt(self.spec.job_id))
        if current is not None and int(current) > self.spec.attempt:
            return f"attempt {self.spec.attempt} is stale; attempt {int(current)} replaced it"
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

    def keep_lease(self, on_lost: Callable[[], None]) -> None:
        """Renew the lease in the background until :meth:`release`; ``on_lost`` if taken."""
        def renew() -> None:
            key = keys.lease(self.spec.job_id)
            while not self._stop.wait(keys.LEASE_REFRESH_SECONDS):
                holder = self.redis.get(key)
                if holder is not None and int(holder) != self.spec.attempt:
                    on_lost()
                    return
                self.redis.set(key, self.spec.attempt, ex=keys.LEASE_TTL_SECONDS)

        self._refresher = threading.Thread(target=renew, name=f"lease-{self.spec.job_id}",
                                           daemon=True)
        self._refresher.start()

    def canceled_by(self) -> str | None:
        """Who asked this job to stop, or None."""
        who = self.redis.get(keys.cancel(self.spec.job_id))
        return who.decode("utf-8", "replace") if who is not None else None

    def watch_cancel(self, on_cancel: Callable[[str], None]) -> None:
        """Call ``on_cancel(who)`` as soon as the job is canceled (a Redis message, not polling)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.cancel(self.spec.job_id))

        def listen() -> None:
            try:
                who = self.canceled_by()  # canceled before we subscribed
                while who is None and not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None:
                        who = message["data"].decode("utf-8", "replace")
                if who is not None and not self._stop.is_set():
                    on_cancel(who)
            except (RedisError, ValueError) as exc:
                if not self._stop.is_set():
                    log.warning("job %s: stopped watching for cancels: %s", self.spec.job_id, exc)
            finally:
                pubsub.close()

        threading.Thread(target=listen, name=f"cancel-{self.spec.job_id}", daemon=True).start()

    def release(self) -> None:
        """Stop renewing and watching; the lease then expires on its own, after the final events."""
        self._stop.set()

    def event(self, kind: EventType, **data) -> None:
        event = Event(type=kind, job_id=self.spec.job_id, attempt=self.spec.attempt,
                      at=time.time(), data=data)
        self.redis.xadd(keys.EVENTS_STREAM, {"e": event.to_json()}, maxlen=EVENTS_MAXLEN,
                        approximate=True)

    def log(self, kind: str, step: int, data: str) -> None:
        self.redis.xadd(self.log_key, LogEntry("", kind, step, data).to_fields())

    def info(self, text: str) -> None:
        self.log(INFO, -1, text)

    def step_started(self, index: int, name: str) -> None:
        self.log(STEP, index, name)
        self.event(EventType.STEP_STARTED, step=index)

    def output(self, index: int, text: str) -> None:
        """Send a step's output, secrets masked; past the job's log limit, count it only."""
        text = self._masker.feed(text)
        if text:
            self._send_output(index, text)

    def end_output(self, index: int) -> None:
        """A step ended: send what the masker held back waiting for the next chunk."""
        text = self._masker.flush()
        if text:
            self._send_output(index, text)

    def _send_output(self, index: int, text: str) -> None:
        size = len(text.encode("utf-8", "replace"))
        if self._logged + size > self.spec.log_limit_bytes:
            if not self._cut:
                self._cut = True
                room = max(self.spec.log_limit_bytes - self._logged, 0)
                if room:
                    self.log(OUT, index, text.encode()[:room].decode("utf-8", "ignore"))
                self.log(INFO, -1, f"the log was cut at {self.spec.log_limit_bytes // 1024} KiB; "
                                   "the rest of the output is not kept")
            self._logged += size
            return
        self._logged += size
        self.log(OUT, index, text)

    def finished(self, status: str, error: str | None) -> None:
        """Close the log and report the result, in that order, in one round trip."""
        event = Event(type=EventType.JOB_FINISHED, job_id=self.spec.job_id,
                      attempt=self.spec.attempt, at=time.time(),
                      data={"status": status, "error": error})
        with self.redis.pipeline() as pipe:
            if error:
                pipe.xadd(self.log_key, LogEntry("", INFO, -1, error).to_fields())
            pipe.xadd(self.log_key, LogEntry("", END, -1, status).to_fields())
            pipe.xadd(keys.EVENTS_STREAM, {"e": event.to_json()}, maxlen=EVENTS_MAXLEN,
                      approximate=True)
            pipe.execute()

