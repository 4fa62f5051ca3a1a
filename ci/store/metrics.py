"""The SQL behind ``GET /metrics``: counts by status and the oldest wait, as aggregates.

Apart from ``queries`` because only the metrics ask for these, and because each must stay
one cheap statement: a scraper asks every few seconds, whatever the size of the history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ci.pipeline.status import Status
from ci.store.models import Build, Job

__all__ = ["builds_by_status", "jobs_by_status", "oldest_queued_job"]


def builds_by_status(session: Session) -> dict[str, int]:
    """How many builds each status has (statuses without any are left out)."""
    return {str(status): count for status, count in session.execute(
        select(Build.status, func.count()).group_by(Build.status))}


def jobs_by_status(session: Session) -> dict[str, int]:
    """How many jobs each status has (statuses without any are left out)."""
    return {str(status): count for status, count in session.execute(
        select(Job.status, func.count()).group_by(Job.status))}


def oldest_queued_job(session: Session) -> datetime | None:
    """Since when the job waiting longest for a runner waits (naive UTC); None: none waits.

    A job waits since it was last enqueued, or since it was created when it never was,
    like the queue page counts it (``admin.waiting_jobs``).
    """
    return session.scalar(select(func.min(func.coalesce(Job.enqueued_at, Job.created_at)))
                          .where(Job.status == Status.QUEUED))
