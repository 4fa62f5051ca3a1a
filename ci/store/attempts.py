"""Who may act on a job, once: several recorders and reconcilers work side by side.

Each function here changes a job only if it is still as the caller saw it, in one
conditional ``UPDATE`` that is the first statement of its transaction: PostgreSQL locks
the row (a second process waits, then finds the condition false), SQLite takes its write
lock. The row count says who won; the loser does nothing. That is what keeps two
recorders from applying one event twice and two reconcilers from enqueueing one job
twice, without a lock server.
"""

from __future__ import annotations

import enum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ci.pipeline.status import Status
from ci.store import history
from ci.store.models import Job, utcnow

__all__ = [
    "EventTurn",
    "take_event_turn",
    "claim_requeue",
    "claim_retry",
    "claim_loss",
]


class EventTurn(enum.Enum):
    """Whether an event of a job's attempt may be applied now."""

    #: It is the next one: applied in the caller's transaction, which now holds the job.
    NOW = "now"
    #: Already applied (a redelivery): only its idempotent side effects may be redone.
    DONE = "done"
    #: An earlier event of the attempt is still to come: wait for it.
    LATER = "later"
    #: Its attempt is not the job's current one (or the job is gone): ignore it.
    STALE = "stale"


def take_event_turn(session: Session, job_id: int, attempt: int, seq: int,
                    force: bool = False) -> EventTurn:
    """Mark event ``seq`` of ``attempt`` applied if it is the next one, and say what it is.

    Args:
        force: take the turn even if earlier events never came (they were lost with a
            Redis that restarted without its data): better late events applied out of
            order than a job that never finishes.
    """
    condition = Job.event_seq < seq if force else Job.event_seq == seq - 1
    claimed = session.execute(
        update(Job).where(Job.id == job_id, Job.attempt == attempt, condition)
        .values(event_seq=seq).execution_options(synchronize_session=False))
    if claimed.rowcount == 1:
        _forget(session, job_id)
        return EventTurn.NOW
    position = session.execute(
        select(Job.attempt, Job.event_seq).where(Job.id == job_id)).first()
    if position is None or position.attempt != attempt:
        return EventTurn.STALE
    return EventTurn.DONE if position.event_seq >= seq else EventTurn.LATER


def claim_requeue(session: Session, job_id: int, attempt: int) -> bool:
    """Give a queued job that Redis lost a new attempt; False if another process did, or the
    job started or ended meanwhile. The caller commits, then enqueues the new attempt."""
    return _claim(session, job_id, attempt, Status.QUEUED, attempt=attempt + 1, event_seq=0,
                  enqueued_at=utcnow())


def claim_retry(session: Session, job_id: int, attempt: int) -> bool:
    """Put a running job whose runner was lost back in the queue as a new attempt, once.

    The lost attempt is kept as it was, ended ``errored`` (``ci.store.history``); its
    steps go from the job (the next runner plans them again); the lost runner's late
    events belong to the old attempt and are ignored. False when the job was retried
    already, was retried or finished by another process, or its runner was lost before.
    """
    if not _claim(session, job_id, attempt, Status.RUNNING, Job.runner_losses == 0,
                  runner_losses=Job.runner_losses + 1):
        return False
    # The claim holds the job now: what the attempt showed is read, kept, then reset.
    job = session.get(Job, job_id)
    now = utcnow()
    history.keep_lost_attempt(job, now)
    job.attempt, job.event_seq, job.status = attempt + 1, 0, Status.QUEUED
    job.runner = job.started_at = None
    job.enqueued_at = now
    job.steps.clear()
    return True


def claim_loss(session: Session, job_id: int, attempt: int) -> bool:
    """Take the right to close a running job whose runner was lost (and whose retry was
    too); False when another process took it or the job moved on. The caller closes it."""
    return _claim(session, job_id, attempt, Status.RUNNING, runner_losses=Job.runner_losses + 1)


def _claim(session: Session, job_id: int, attempt: int, status: Status, /, *conditions,
           **values) -> bool:
    claimed = session.execute(
        update(Job).where(Job.id == job_id, Job.attempt == attempt, Job.status == status,
                          *conditions)
        .values(**values).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return False
    _forget(session, job_id)
    return True


def _forget(session: Session, job_id: int) -> None:
    """Drop the session's copy of a job changed behind the ORM's back, so the next read
    loads it as the database now has it."""
    job = session.identity_map.get(session.identity_key(Job, job_id))
    if job is not None:
        session.expire(job)
