"""Schedules: a build of a branch's head (event ``cron``) at each time a cron expression
names.

:func:`add` checks and stores one; :func:`fire_due` makes the builds that are due. Every
recorder calls :func:`fire_due` about every :data:`FIRE_EVERY_SECONDS`, so several may call
it at the same moment: each due time is claimed in the database first (a conditional
``UPDATE`` of its ``next_due``, ``store.claim_slot``), committed before anything is built,
and only the process that moved it on builds. A schedule whose time passed while no recorder
ran builds once, for the newest time it missed, and goes on from the present: a night of
missed hourly times is one build, not twelve. A branch that is gone makes no build; the
schedule keeps the error, shown wherever it is listed, and goes on to its next time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from redis import Redis

from ci import store
from ci.builds import cron, service
from ci.pipeline.events import CRON
from ci.pipeline.redact import without_credentials
from ci.settings import Settings
from ci.store import Session
from ci.store.models import Build, Repo, Schedule

log = logging.getLogger(__name__)

#: How often a recorder looks for due schedules: a build starts at most this late.
FIRE_EVERY_SECONDS = 15.0


@dataclass(frozen=True)
class Fired:
    """What one due time of a schedule made: a build, or the error that stopped it."""

    schedule_id: int
    repo: str
    branch: str
    #: The time it was due at (UTC): the newest one missed when several were.
    slot: datetime
    build: Build | None
    error: str | None = None


@dataclass(frozen=True)
class _Due:
    """A due schedule as read before its claim, which drops the session's copy of it."""

    id: int
    next_due: datetime
    repo: Repo
    branch: str
    expression: str
    time_zone: str


def add(session: Session, repo: Repo, branch: str, expression: str, time_zone: str,
        created_by: str, now: datetime) -> Schedule:
    """Store a schedule for ``repo``'s ``branch``, due first at its next time after ``now``.

    Raises:
        store.StoreError: the branch name, the expression or the time zone is not one
            Slipway can use; the message says why and what to write.
    """
    for what, text in (("branch name", branch), ("schedule", expression),
                       ("time zone", time_zone)):
        _check_encodable(what, text)
    store.validate_branch(branch)
    expression = cron.check_expression(expression)
    time_zone = cron.check_time_zone(time_zone)
    first = cron.next_times(expression, time_zone, now, 1)[0]
    return store.add_schedule(session, repo, branch, expression, time_zone, created_by, first)


def _check_encodable(what: str, text: str) -> None:
    """Refuse text no database stores: JSON may carry halves of UTF-16 pairs alone."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise store.StoreError(f"the {what} is not valid Unicode text (it holds a lone "
                               "surrogate)") from None


def switch(session: Session, schedule: Schedule, enabled: bool, now: datetime) -> Schedule:
    """Turn a schedule on (due next at its first time after ``now``: the times it was off
    are not made up for) or off, and commit."""
    following = cron.next_times(schedule.expression, schedule.time_zone, now, 1)[0]
    return store.enable_schedule(session, schedule, enabled, following)


def fire_due(session: Session, redis: Redis, settings: Settings, now: datetime) -> list[Fired]:
    """Make one ``cron`` build for each schedule due at ``now``, and move each on to its
    first time after ``now``; what this process made (the others' claims are theirs).

    ``session`` must write (the recorder's); its transactions are committed here, and
    each build is made after its claim is committed.
    """
    now = cron.naive_utc(now)
    due = [_Due(schedule.id, schedule.next_due, schedule.repo, schedule.branch,
                schedule.expression, schedule.time_zone)
           for schedule in store.due_schedules(session, now)]
    session.commit()
    fired = []
    for schedule in due:
        slot, following = cron.due_and_following(schedule.expression, schedule.time_zone, now)
        if not store.claim_slot(session, schedule.id, schedule.next_due, following, slot):
            session.rollback()
            continue
        session.commit()
        fired.append(_build(session, redis, settings, schedule, slot))
    return fired


def _build(session: Session, redis: Redis, settings: Settings, schedule: _Due,
           slot: datetime) -> Fired:
    """Build the head of the schedule's branch for its claimed ``slot``; note the outcome."""
    repo, branch = schedule.repo, schedule.branch
    try:
        # Resolved as a manual build is, by `git ls-remote`; then said to be the schedule's.
        head = service.manual_trigger(session, repo, branch=branch,
                                      who=f"schedule {schedule.expression}")
    except store.StoreError as exc:
        error = without_credentials(str(exc))
        store.record_fired(session, schedule.id, slot, error=error)
        session.commit()
        log.warning("schedule %s of %s (%s) made no build for %s: %s", schedule.id,
                    repo.full_name, branch, slot, error)
        return Fired(schedule.id, repo.full_name, branch, slot, None, error)
    trigger = replace(head, event=CRON,
                      message=f"scheduled build for {cron.shown(slot, schedule.time_zone)} "
                              f"({schedule.expression})",
                      # Should anything make this slot twice, the delivery is seen again.
                      delivery=f"cron-{schedule.id}-{slot:%Y%m%dT%H%M}")
    build = service.accept(session, redis, settings, repo, trigger).build
    store.record_fired(session, schedule.id, slot, build_id=build.id)
    session.commit()
    log.info("schedule %s of %s: build #%s of %s (%s) for %s", schedule.id, repo.full_name,
             build.number, branch, trigger.sha[:12], slot)
    return Fired(schedule.id, repo.full_name, branch, slot, build)
