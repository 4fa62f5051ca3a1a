"""Every attempt of a job: the earlier ones a rerun or a retry replaced, and the current.

A job's own row (and its steps) always describe its current attempt: the recorder, the
live page and the runners' events know no other. Before a rerun or a runner-lost retry
resets that row for the next attempt, :func:`keep_attempt` or :func:`keep_lost_attempt`
copies what it held into ``job_attempts`` through the job's session, in the caller's
transaction, so the reset and the copy are committed together or not at all.
:func:`list_attempts` gives them all back in one shape, for the API and the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ci.pipeline.status import Status
from ci.store.models import Job, JobAttempt, Step

__all__ = [
    "RUNNER_LOST_RETRIED",
    "AttemptStep",
    "Attempt",
    "keep_attempt",
    "keep_lost_attempt",
    "list_attempts",
    "get_attempt",
]

#: The error of an attempt whose runner was lost and which another attempt replaced.
RUNNER_LOST_RETRIED = ("runner lost: the runner stopped reporting while the job ran; "
                       "the next attempt runs the job again")


@dataclass(frozen=True)
class AttemptStep:
    """One step of an attempt, as it ended (or is now, for the current attempt)."""

    number: int
    name: str
    status: Status
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job: an earlier one as it ended, or the current one as it is."""

    number: int
    status: Status
    error: str | None
    runner: str | None
    image: str | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: tuple[AttemptStep, ...]
    #: Whether this is the job's current attempt (whose log is live or archived as the job's).
    current: bool


def keep_attempt(job: Job) -> None:
    """Keep a finished job's current attempt before a rerun resets the job for the next."""
    _keep(job, Status(job.status), job.error, job.finished_at,
          [_step_row(step, Status(step.status), step.finished_at) for step in job.steps])


def keep_lost_attempt(job: Job, at: datetime) -> None:
    """Keep a running job's current attempt, whose runner was lost at ``at``, before its
    retry resets the job: it ended ``errored`` then, as its unfinished steps did (steps
    that never started were skipped), the way a job closed by ``finish_job`` ends."""
    steps = []
    for step in job.steps:
        status = Status(step.status)
        if status == Status.RUNNING:
            steps.append(_step_row(step, Status.ERRORED, at))
        elif status == Status.QUEUED:
            steps.append(_step_row(step, Status.SKIPPED, None))
        else:
            steps.append(_step_row(step, status, step.finished_at))
    _keep(job, Status.ERRORED, RUNNER_LOST_RETRIED, at, steps)


def list_attempts(job: Job) -> list[Attempt]:
    """Every attempt of ``job``, oldest first; the last is the current one.

    Numbers may skip one: an attempt that Redis lost before any runner took it was handed
    out again as the next (``claim_requeue``), and never ran, so there is nothing to keep.
    """
    # A first attempt has none before it: no query (the webhook's detached jobs need none).
    earlier = job.earlier_attempts if job.attempt > 1 else []
    return [_from_row(row) for row in earlier] + [_current(job)]


def get_attempt(job: Job, number: int) -> Attempt | None:
    """Attempt ``number`` of ``job``, the current one included; None when it has none such."""
    return next((attempt for attempt in list_attempts(job) if attempt.number == number), None)


def _keep(job: Job, status: Status, error: str | None, finished_at: datetime | None,
          steps: list[dict]) -> None:
    job.earlier_attempts.append(JobAttempt(
        number=job.attempt, status=status, error=error, runner=job.runner, image=job.image,
        started_at=job.started_at, finished_at=finished_at, steps=steps))


def _step_row(step: Step, status: Status, finished_at: datetime | None) -> dict:
    return {"number": step.number, "name": step.name, "status": str(status),
            "exit_code": step.exit_code, "started_at": _iso(step.started_at),
            "finished_at": _iso(finished_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _from_row(row: JobAttempt) -> Attempt:
    steps = tuple(AttemptStep(number=int(step["number"]), name=str(step["name"]),
                              status=Status(step["status"]), exit_code=step.get("exit_code"),
                              started_at=_from_iso(step.get("started_at")),
                              finished_at=_from_iso(step.get("finished_at")))
                  for step in row.steps)
    return Attempt(number=row.number, status=Status(row.status), error=row.error,
                   runner=row.runner, image=row.image, started_at=row.started_at,
                   finished_at=row.finished_at, steps=steps, current=False)


def _current(job: Job) -> Attempt:
    steps = tuple(AttemptStep(number=step.number, name=step.name, status=Status(step.status),
                              exit_code=step.exit_code, started_at=step.started_at,
                              finished_at=step.finished_at)
                  for step in job.steps)
    return Attempt(number=job.attempt, status=Status(job.status), error=job.error,
                   runner=job.runner, image=job.image, started_at=job.started_at,
                   finished_at=job.finished_at, steps=steps, current=True)
