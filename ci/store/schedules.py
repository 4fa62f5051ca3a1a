"""Schedules' SQL: add, list, switch and remove them; claim a due time; note what it made.

Several recorders look for due schedules at the same moment. :func:`claim_slot` moves a
schedule's ``next_due`` on only if it still holds the time the caller read, in one
conditional ``UPDATE`` that is the first statement of its transaction (as
``ci.store.attempts`` claims jobs): the row count says which process builds, and the
others do nothing. Functions commit only where their docstring says so.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from ci.store.models import Repo, Schedule

#: Ids are 32-bit in the database.
MAX_ID = 2**31 - 1

__all__ = [
    "MAX_ID",
    "add_schedule",
    "list_schedules",
    "get_schedule",
    "remove_schedule",
    "enable_schedule",
    "due_schedules",
    "claim_slot",
    "record_fired",
]


def add_schedule(session: Session, repo: Repo, branch: str, expression: str, time_zone: str,
                 created_by: str, next_due: datetime) -> Schedule:
    """Store a schedule (checked by the caller) and commit."""
    schedule = Schedule(repo_id=repo.id, branch=branch, expression=expression,
                        time_zone=time_zone, enabled=True, created_by=created_by[:255],
                        next_due=next_due)
    session.add(schedule)
    session.commit()
    return schedule


def list_schedules(session: Session, repo: Repo | None = None) -> list[Schedule]:
    """``repo``'s schedules (every repository's without it), by repository, oldest first."""
    query = (select(Schedule).join(Schedule.repo)
             .options(selectinload(Schedule.repo), selectinload(Schedule.last_build))
             .order_by(Repo.full_name, Schedule.id))
    if repo is not None:
        query = query.where(Schedule.repo_id == repo.id)
    return list(session.scalars(query))


def get_schedule(session: Session, repo: Repo, schedule_id: int) -> Schedule | None:
    """Schedule ``schedule_id`` if it is ``repo``'s: an id never reaches another's."""
    if not 0 < schedule_id <= MAX_ID:  # names nothing, and SQLite refuses 64 bits and more
        return None
    found = session.get(Schedule, schedule_id)
    return found if found is not None and found.repo_id == repo.id else None


def remove_schedule(session: Session, repo: Repo, schedule_id: int) -> bool:
    """Delete one of ``repo``'s schedules and commit; False when it has no such one."""
    found = get_schedule(session, repo, schedule_id)
    if found is None:
        return False
    session.delete(found)
    session.commit()
    return True


def enable_schedule(session: Session, schedule: Schedule, enabled: bool,
                    next_due: datetime) -> Schedule:
    """Switch a schedule on or off and commit. Switched on from off, it builds from
    ``next_due`` on: the times it was off are not made up for."""
    if enabled and not schedule.enabled:
        schedule.next_due = next_due
    schedule.enabled = enabled
    session.commit()
    return schedule


def due_schedules(session: Session, now: datetime) -> list[Schedule]:
    """Enabled schedules whose next time is ``now`` or earlier, the longest due first."""
    return list(session.scalars(
        select(Schedule).where(Schedule.enabled.is_(True), Schedule.next_due <= now)
        .options(selectinload(Schedule.repo)).order_by(Schedule.next_due, Schedule.id)))


def claim_slot(session: Session, schedule_id: int, due: datetime, following: datetime,
               slot: datetime) -> bool:
    """Take the right to build ``slot`` for a schedule still due at ``due``, moving it on to
    ``following``; False when another process did first, or it was switched off or removed
    meanwhile. The caller commits before it builds."""
    claimed = session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.next_due == due, Schedule.enabled.is_(True))
        .values(next_due=following, last_slot=slot)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return False
    _forget(session, schedule_id)
    return True


def record_fired(session: Session, schedule_id: int, slot: datetime, *,
                 build_id: int | None = None, error: str | None = None) -> None:
    """Note the build ``slot`` made (which clears an earlier error), or why it made none
    (the last build made stays, to compare with); nothing when a later time was claimed
    meanwhile, whose outcome is the one to show."""
    outcome = ({"last_build_id": build_id, "error": None} if build_id is not None
               else {"error": error})
    session.execute(
        update(Schedule).where(Schedule.id == schedule_id, Schedule.last_slot == slot)
        .values(**outcome).execution_options(synchronize_session=False))
    _forget(session, schedule_id)


def _forget(session: Session, schedule_id: int) -> None:
    """Drop the session's copy of a schedule changed behind the ORM's back."""
    schedule = session.identity_map.get(session.identity_key(Schedule, schedule_id))
    if schedule is not None:
        session.expire(schedule)
