"""Retention: old builds lose their logs and artifacts, and later may go themselves, so that
the disk and the database do not grow for ever.

The policy (``SLIPWAY_KEEP_DAYS``, ``SLIPWAY_KEEP_BUILD_DAYS``, ``SLIPWAY_KEEP_BUILDS``):
a finished build's logs (of every attempt) and artifacts are removed ``keep_days`` after it
finished, and the build itself is deleted ``keep_build_days`` after; the newest
``keep_builds`` builds of each branch, of each pull request and of the tags are kept whole
whatever their age, and unfinished builds are never touched. ``slipway prune`` runs a pass
by hand; every recorder runs :class:`PeriodicPruning`.

A pass goes through the builds in batches. Each batch removes the files first, then records
what it removed (``jobs.pruned_at``) or deletes the builds, in one short transaction of its
own. A process killed in between leaves rows saying the files are there when they are not,
and the next pass finishes the work: removing a file that is gone frees nothing and fails
nothing. The same makes several passes at once safe: each file is counted once, and each
job marked, each build deleted, by one of them (``ci.store.pruning``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis import Redis

from ci import store
from ci.artifacts import remove_job_artifacts
from ci.logs import storage
from ci.pipeline import keys
from ci.settings import Settings, check_retention
from ci.store import Session, Sessions, pruning
from ci.store.models import Build, Job, utcnow

log = logging.getLogger(__name__)

#: Builds looked at per batch: each batch's transaction stays short.
BATCH_SIZE = 200
#: How much nicer than its recorder the pruning thread runs (Linux has a nice value per
#: thread): a pass over many builds gives way to the web and the recording on a host they
#: share.
PRUNING_NICENESS = 10

#: A query of ``ci.store.pruning`` naming candidates: (session, cutoff, after id, limit).
Finder = Callable[[Session, datetime, int, int], list[pruning.Candidate]]


@dataclass(frozen=True)
class Policy:
    """How long what is kept: 0 days is for ever."""

    keep_days: int
    keep_build_days: int
    keep_builds: int

    @classmethod
    def of(cls, settings: Settings, keep_days: int | None = None,
           keep_builds: int | None = None) -> Policy:
        """The settings' policy, with ``keep_days`` and ``keep_builds`` given for one pass.

        Raises:
            SettingsError: builds would be deleted before their logs are due to go.
        """
        policy = cls(settings.keep_days if keep_days is None else keep_days,
                     settings.keep_build_days,
                     settings.keep_builds if keep_builds is None else keep_builds)
        check_retention(policy.keep_days, policy.keep_build_days,
                        "SLIPWAY_KEEP_DAYS" if keep_days is None else "--keep-days")
        return policy


@dataclass(frozen=True)
class Gone:
    """A build that lost its logs and artifacts, or was deleted."""

    repo: str
    number: int
    finished_at: datetime


@dataclass
class Report:
    """What a pass did (or, dry, would do)."""

    dry_run: bool = False
    #: Builds whose logs and artifacts were removed.
    pruned: list[Gone] = field(default_factory=list)
    deleted: list[Gone] = field(default_factory=list)
    bytes_freed: int = 0

    def summary(self) -> str:
        """One line for people: ``pruned the logs and artifacts of 120 builds (35.2 MiB),
        deleted 40 builds``."""
        would = "would " if self.dry_run else ""
        pruned = "prune" if self.dry_run else "pruned"
        deleted = "delete" if self.dry_run else "deleted"
        return (f"{would}{pruned} the logs and artifacts of {_builds(len(self.pruned))} "
                f"({human_bytes(self.bytes_freed)}), {would}{deleted} "
                f"{_builds(len(self.deleted))}")


def _builds(count: int) -> str:
    return f"{count} build" if count == 1 else f"{count} builds"


def human_bytes(size: int) -> str:
    """``35.2 MiB``: a size in the binary unit that keeps it below 1024."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def prune(sessions: Sessions, settings: Settings, policy: Policy, now: datetime,
          dry_run: bool = False) -> Report:
    """One pass over every repository's builds, as of ``now`` (naive UTC): remove the
    logs and artifacts of builds past ``keep_days``, then delete builds past
    ``keep_build_days``. ``dry_run`` finds the same builds and changes nothing."""
    report = Report(dry_run=dry_run)
    if not policy.keep_days:
        return report  # and so is keep_build_days (``check_retention``)
    with sessions() as session:
        thresholds = pruning.keep_thresholds(session, policy.keep_builds)
    cutoff = now - timedelta(days=policy.keep_days)
    for batch in _batches(sessions, pruning.logs_to_prune, cutoff, thresholds):
        _prune_logs(sessions, settings, batch, now, report)
    if policy.keep_build_days:
        cutoff = now - timedelta(days=policy.keep_build_days)
        for batch in _batches(sessions, pruning.builds_to_delete, cutoff, thresholds):
            _delete(sessions, settings, batch, cutoff, report)
    return report


def _batches(sessions: Sessions, find: Finder, cutoff: datetime,
             thresholds: dict[pruning.Group, int]) -> Iterator[list[pruning.Candidate]]:
    """The builds ``find`` names that are not among the newest of their group, a batch at a
    time, each read in a transaction of its own that ends before the batch is worked on."""
    after = 0
    while True:
        with sessions() as session:
            found = find(session, cutoff, after, BATCH_SIZE)
        if not found:
            return
        after = found[-1].id
        batch = [build for build in found if build.number < thresholds.get(build.group, 0)]
        if batch:
            yield batch


def _jobs(sessions: Sessions, batch: list[pruning.Candidate]) -> list[pruning.PrunedJob]:
    with sessions() as session:
        return pruning.jobs_of(session, [build.id for build in batch])


def _prune_logs(sessions: Sessions, settings: Settings, batch: list[pruning.Candidate],
                now: datetime, report: Report) -> None:
    jobs = _jobs(sessions, batch)
    job_ids = [job.id for job in jobs]
    if report.dry_run:
        with sessions() as session:
            report.bytes_freed += store.artifact_bytes(session, job_ids)
        report.bytes_freed += sum(storage.logs_size(settings.log_dir, job.id, job.attempt)
                                  for job in jobs)
        report.pruned += [_gone(build) for build in batch]
        return
    freed = _remove_logs(settings, jobs)
    with sessions() as session:
        freed += remove_job_artifacts(session, settings, job_ids)
        marked = pruning.mark_pruned(session, job_ids, now)
        session.commit()
    report.bytes_freed += freed
    report.pruned += [_gone(build) for build in batch if build.id in marked]


def _delete(sessions: Sessions, settings: Settings, batch: list[pruning.Candidate],
            cutoff: datetime, report: Report) -> None:
    if report.dry_run:  # what they hold was counted with the logs: they are older still
        report.deleted += [_gone(build) for build in batch]
        return
    # Files their rows still name (a pass that pruned them was stopped, or raced a rerun).
    jobs = _jobs(sessions, batch)
    freed = _remove_logs(settings, jobs)
    with sessions() as session:
        if jobs:
            freed += remove_job_artifacts(session, settings, [job.id for job in jobs])
        deleted = pruning.delete_builds(session, [build.id for build in batch], cutoff)
        session.commit()
    report.bytes_freed += freed
    report.deleted += [_gone(build) for build in batch if build.id in deleted]


def _remove_logs(settings: Settings, jobs: list[pruning.PrunedJob]) -> int:
    return sum(storage.remove_logs(settings.log_dir, job.id, job.attempt) for job in jobs)


def _gone(build: pruning.Candidate) -> Gone:
    return Gone(build.repo, build.number, build.finished_at)


class PeriodicPruning:
    """A recorder's share of pruning: a pass every ``prune_interval_seconds`` by whichever
    recorder first takes :data:`~ci.pipeline.keys.PRUNE_LOCK` (``SET NX EX``), in a thread
    of its own, so that a long first pass over years of builds never holds up the recording
    of events, and at a lower CPU priority (:data:`PRUNING_NICENESS`), so that it takes
    from the pages only the CPU they leave."""

    def __init__(self, sessions: Sessions, redis: Redis, settings: Settings,
                 holder: str) -> None:
        self.sessions = sessions
        self.redis = redis
        self.settings = settings
        self.holder = holder
        self._last = float("-inf")
        self._thread: threading.Thread | None = None

    def tick(self) -> threading.Thread | None:
        """Start a pass when one is due and no recorder made one within the interval;
        returns its thread, else None. Call it as often as liked."""
        interval = self.settings.prune_interval_seconds
        busy = self._thread is not None and self._thread.is_alive()
        if busy or not self.settings.keep_days or time.monotonic() - self._last < interval:
            return None
        self._last = time.monotonic()
        if not self.redis.set(keys.PRUNE_LOCK, self.holder, nx=True, ex=interval):
            return None
        self._thread = threading.Thread(target=self._run, name="slipway-prune", daemon=True)
        self._thread.start()
        return self._thread

    def _run(self) -> None:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread,
                       min(os.getpriority(os.PRIO_PROCESS, thread) + PRUNING_NICENESS, 19))
        try:
            report = prune(self.sessions, self.settings, Policy.of(self.settings), utcnow())
        except Exception:  # noqa: BLE001 - housekeeping must never stop a recorder
            log.exception("pruning old builds failed; the next pass tries again in %ss",
                          self.settings.prune_interval_seconds)
            return
        if report.pruned or report.deleted:
            log.info("retention: %s", report.summary())


def removal_notice(job: Job, build: Build, keep_days: int) -> str | None:
    """What a page says in place of a log that retention removed: "This log was removed on
    2026-11-02, 90 days after the build (logs are kept for 90 days)." None when the job's
    log is kept, or when it never had one (it never ran)."""
    if job.pruned_at is None or not job.log_archived:
        return None
    notice = f"This log was removed on {job.pruned_at:%Y-%m-%d}"
    if build.finished_at is not None:
        notice += f", {_days((job.pruned_at - build.finished_at).days)} after the build"
    if keep_days:
        notice += f" (logs are kept for {_days(keep_days)})"
    return notice + "."


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"
