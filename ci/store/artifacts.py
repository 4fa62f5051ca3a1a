"""Artifacts' SQL: the rows naming the files each attempt of a job kept (``artifacts:``).

The bytes live in the artifact store (``ci.artifacts``); a row is what makes a file
visible, so the recorder writes the files first and the rows last, and removal deletes
rows together with the files. Functions commit only where their docstring says so.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ci.store.models import Artifact, Job

__all__ = [
    "KeptFile",
    "job_artifacts",
    "job_artifact",
    "replace_artifacts",
    "artifact_bytes",
    "delete_artifacts",
    "is_next_event",
]


class KeptFile(NamedTuple):
    """One file an attempt kept, as the runner's manifest names it."""

    path: str
    size: int
    sha256: str


def job_artifacts(session: Session, job_id: int, attempt: int) -> list[Artifact]:
    """The files attempt ``attempt`` of job ``job_id`` kept, by path."""
    return list(session.scalars(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.attempt == attempt)
        .order_by(Artifact.path)))


def job_artifact(session: Session, job_id: int, attempt: int, path: str) -> Artifact | None:
    """The file ``path`` of one attempt of a job, or None when it kept no such file."""
    return session.scalar(select(Artifact).where(
        Artifact.job_id == job_id, Artifact.attempt == attempt, Artifact.path == path))


def replace_artifacts(session: Session, job_id: int, attempt: int,
                      files: list[KeptFile]) -> None:
    """Make ``files`` the rows of one attempt, whatever rows it had (a redelivered event
    writes the same rows again, never twice). The caller commits."""
    session.execute(delete(Artifact).where(Artifact.job_id == job_id,
                                           Artifact.attempt == attempt))
    session.add_all(Artifact(job_id=job_id, attempt=attempt, path=file.path, size=file.size,
                             sha256=file.sha256) for file in files)
    session.flush()


def artifact_bytes(session: Session, job_ids: list[int]) -> int:
    """How many bytes the rows of ``job_ids`` (every attempt) say their files hold."""
    if not job_ids:
        return 0
    return int(session.scalar(select(func.coalesce(func.sum(Artifact.size), 0))
                              .where(Artifact.job_id.in_(job_ids))) or 0)


def delete_artifacts(session: Session, job_ids: list[int]) -> None:
    """Delete the rows of every attempt of ``job_ids``. The caller commits."""
    if job_ids:
        session.execute(delete(Artifact).where(Artifact.job_id.in_(job_ids)))


def is_next_event(session: Session, job_id: int, attempt: int, seq: int, force: bool) -> bool:
    """Whether event ``seq`` of ``attempt`` would take its turn now (``ci.store.attempts``),
    read without taking it: the recorder moves an event's files before the transaction that
    applies it, so no lock is held while they are written, and only for an event about to
    apply, not for one waiting for its predecessors."""
    position = session.execute(
        select(Job.attempt, Job.event_seq).where(Job.id == job_id)).first()
    if position is None or position.attempt != attempt:
        return False
    return position.event_seq < seq if force else position.event_seq == seq - 1
