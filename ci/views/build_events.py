"""The build page's one live stream: the logs of all the build's jobs and the build's state.

Events (Server-Sent Events):

- ``state``: the build's, its jobs' and their steps' status, attempt, exit codes, error
  and times, once at the start and again whenever the build changes (a notice of
  :mod:`ci.builds.changes` names it); ``now`` is the server's clock, for durations.
- ``log``: new entries of one job's log (``{"job": number, "entries": [...]}``), with
  ``"reset": true`` when a new attempt of the job started its log afresh (the page drops
  the job's lines first). Its ``id`` is the cursor of :mod:`ci.logs.multiplex`, from
  which a reconnecting browser resumes every job's log without a gap or a repeat.
- ``end``: the build finished and every job's log was sent; nothing more will come.

The stream holds no database connection while it waits on Redis: each read of the
state is a short session of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from ci import store
from ci.builds import changes
from ci.logs import multiplex, storage
from ci.logs.multiplex import Position
from ci.logs.render import LogRenderer
from ci.pipeline import keys
from ci.pipeline.logformat import END, LogEntry
from ci.pipeline.status import Status
from ci.store.db import Sessions
from ci.store.models import Build, Job, Repo, utcnow
from ci.views.present import iso

#: How long a read waits for news before the stream sends a keep-alive comment.
KEEPALIVE_MS = 15_000
#: Entries read per job at a time; a longer backlog is sent in several events.
READ_COUNT = 1000


def build_state(build: Build) -> dict[str, Any]:
    """What the build page shows live, as JSON (times in ISO 8601, UTC)."""
    return {
        "number": build.number, "status": str(build.status), "error": build.error,
        "started_at": iso(build.started_at), "finished_at": iso(build.finished_at),
        "jobs": [_job_state(job) for job in build.jobs],
    }


def _job_state(job: Job) -> dict[str, Any]:
    return {
        "number": job.number, "name": job.name, "status": str(job.status),
        "attempt": job.attempt, "image": job.image, "runner": job.runner,
        "error": job.error, "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "steps": [{"number": step.number, "name": step.name, "status": str(step.status),
                   "exit_code": step.exit_code, "started_at": iso(step.started_at),
                   "finished_at": iso(step.finished_at)} for step in job.steps],
    }


@dataclass
class _FollowedJob:
    """Where the stream stands in one job's log."""

    id: int
    attempt: int
    after: str = multiplex.START
    renderer: LogRenderer = field(default_factory=LogRenderer)
    #: Every entry of its log was sent (or it never ran and has none).
    done: bool = False
    #: The page holds lines of an earlier attempt, to drop with the next event.
    reset: bool = False

    def restart(self, attempt: int) -> None:
        """Follow the log of a new attempt, from its start."""
        self.attempt, self.after, self.renderer = attempt, multiplex.START, LogRenderer()
        self.done, self.reset = False, True


class BuildEvents:
    """The stream of one build for one page; iterate :meth:`events` once."""

    def __init__(self, redis: Redis, sessions: Sessions, log_dir: Path, repo: Repo,
                 build: Build, positions: dict[int, Position]) -> None:
        self.redis = redis
        self.sessions = sessions
        self.log_dir = log_dir
        self.repo = repo
        self.build_id = build.id
        self.number = build.number
        self.positions = positions
        #: By job number.
        self.jobs: dict[int, _FollowedJob] = {}
        self.finished = False
        self.gone = False
        self._sent_state: dict[str, Any] | None = None

    def events(self) -> Iterator[str]:
        yield "retry: 2000\n\n"
        # Notices are read from here on before the state is, so that none is missed.
        changes_after = changes.latest_id(self.redis)
        yield from self._refresh()
        block_ms = None
        quiet_since = time.monotonic()
        while not self.gone:
            live = {job.id: job.after for job in self.jobs.values() if not job.done}
            reply = multiplex.read(self.redis, live, {keys.CHANGES_STREAM: changes_after},
                                   block_ms, READ_COUNT)
            sent = [event for number, job in list(self.jobs.items())
                    for event in self._send_log(number, job, reply.logs.get(job.id, []))]
            notices = reply.others.get(keys.CHANGES_STREAM, [])
            if notices:
                changes_after = notices[-1][0]
                if any(change.build_id == self.build_id for change in changes.parse(notices)):
                    sent += self._refresh()
            yield from sent
            if sent:
                quiet_since = time.monotonic()
            quiet = time.monotonic() - quiet_since >= KEEPALIVE_MS / 1000
            # A finished build whose logs went quiet ends too: a job may have lost its end.
            if self.finished and (quiet or all(job.done for job in self.jobs.values())):
                break
            if quiet:
                yield ": keepalive\n\n"
                quiet_since = time.monotonic()
            backlog = any(len(entries) >= READ_COUNT for entries in reply.logs.values())
            block_ms = None if backlog or len(notices) >= READ_COUNT else KEEPALIVE_MS
        yield _sse("end", {})

    def _refresh(self) -> list[str]:
        """Read the build's state; send it when it changed, and the logs of jobs archived
        since (their live stream may be gone). A build gone ends the stream."""
        with self.sessions() as session:
            build = store.get_build(session, self.repo, self.number)
            if build is None or build.id != self.build_id:
                self.gone = True
                return []
            state = build_state(build)
            archived = {job.number for job in build.jobs if job.log_archived}
            # No runner took these (canceled while queued): they have no log to wait for.
            never_ran = {job.number for job in build.jobs
                         if job.runner is None and Status(job.status).finished}
            # Retention removed these logs (``ci.builds.retention``): nothing will come.
            removed = {job.number for job in build.jobs if job.pruned_at is not None}
            for job in build.jobs:
                self._follow(job)
        self.finished = Status(state["status"]).finished
        sent = []
        if state != self._sent_state:
            self._sent_state = state
            sent.append(_sse("state", {**state, "now": iso(utcnow())}))
        for number, job in self.jobs.items():
            if job.done:
                continue
            entries = storage.read_archive(self.log_dir, job.id, job.after) \
                if number in archived else None
            if entries is not None:
                sent += self._send_log(number, job, entries)
                job.done = True
            elif (number in never_ran and self.finished) or number in removed:
                job.done = True
            if job.reset:
                sent += self._send_log(number, job, [])
        return sent

    def _follow(self, job: Job) -> None:
        """Start following a job the stream did not know, or its new attempt."""
        followed = self.jobs.get(job.number)
        if followed is None:
            known = self.positions.get(job.number)
            followed = self.jobs[job.number] = _FollowedJob(job.id, job.attempt)
            if known is not None and known.attempt == job.attempt:
                followed.after = known.after
            elif known is not None:
                followed.restart(job.attempt)
        elif followed.attempt != job.attempt:
            followed.restart(job.attempt)

    def _send_log(self, number: int, job: _FollowedJob, entries: list[LogEntry]) -> list[str]:
        """The ``log`` event of ``entries``: none for no entries, unless the page must drop
        the lines of an earlier attempt."""
        if not entries and not job.reset:
            return []
        data: dict[str, Any] = {"job": number, "attempt": job.attempt}
        if job.reset:
            data["reset"] = True
            job.reset = False
        if entries:
            job.after = entries[-1].id
            job.done = job.done or any(entry.kind == END for entry in entries)
        data["entries"] = [job.renderer.payload(entry) for entry in entries]
        cursor = multiplex.format_cursor({followed_number: Position(followed.attempt,
                                                                    followed.after)
                                          for followed_number, followed in self.jobs.items()})
        return [_sse("log", data, cursor)]


def _sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
