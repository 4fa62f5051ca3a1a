"""Retention's SQL: which finished builds are old enough to lose their logs and artifacts,
or to be deleted, and the conditional writes that do it (``ci.builds.retention`` decides
when, and removes the files).

Cheap on a database of many builds: candidates are read in batches by keyset (``id`` after
the last one seen, never an ``OFFSET``), and the newest builds of each group, which are
kept whatever their age, are found once per pass with one window query
(:func:`keep_thresholds`). The writes are conditional, so that a pruner acting on what it
read a moment ago never touches a build that was rerun since, and two pruners at once do
each thing once: :func:`mark_pruned` marks only jobs not marked yet, :func:`delete_builds`
deletes only builds still finished. Nothing here commits: the caller ends each batch's
transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import case, delete, exists, func, select, update
from sqlalchemy.orm import Session

from ci.pipeline.status import Status
from ci.store.models import Build, Job, Repo, Schedule

__all__ = [
    "FINISHED",
    "Group",
    "Candidate",
    "PrunedJob",
    "keep_thresholds",
    "logs_to_prune",
    "builds_to_delete",
    "jobs_of",
    "mark_pruned",
    "delete_builds",
]

#: The states of a build that will not change unless someone reruns it.
FINISHED = tuple(status for status in Status if status.finished)


class Group(NamedTuple):
    """The builds whose newest ones are kept together: a pull request's (``pr_number``),
    the tags of a repository (``tag`` true), or a branch's (``branch``; None for builds of
    a bare commit)."""

    repo_id: int
    pr_number: int | None
    branch: str | None
    tag: bool


@dataclass(frozen=True)
class Candidate:
    """A finished build old enough to prune, unless it is among its group's newest."""

    id: int
    repo: str
    number: int
    finished_at: datetime
    group: Group


class PrunedJob(NamedTuple):
    """A job whose log files are to go: the archive and those of ``attempt - 1`` before."""

    id: int
    build_id: int
    attempt: int


def _group_columns() -> tuple:
    """The columns :class:`Group` is made of, as SQL: a pull request's builds are one group
    whatever their branch (the target branch may change)."""
    not_pr = Build.pr_number.is_(None)
    return (Build.repo_id, Build.pr_number, case((not_pr, Build.branch)),
            case((not_pr & Build.tag.is_not(None), True), else_=False))


def keep_thresholds(session: Session, keep_builds: int) -> dict[Group, int]:
    """For each group with more than ``keep_builds`` builds, the number of its
    ``keep_builds``-th newest: builds numbered below it are not among its newest.

    Groups with fewer builds are absent: all theirs are kept. A threshold read earlier stays
    safe to use: new builds only push older ones further down, and pruning never deletes
    the newest builds of a group.
    """
    repo_id, pr_number, branch, tag = _group_columns()
    rank = func.row_number().over(partition_by=(repo_id, pr_number, branch, tag),
                                  order_by=Build.number.desc())
    ranked = select(repo_id.label("repo_id"), pr_number.label("pr_number"),
                    branch.label("branch"), tag.label("tag"), Build.number.label("number"),
                    rank.label("rank")).subquery()
    rows = session.execute(select(ranked.c.repo_id, ranked.c.pr_number, ranked.c.branch,
                                  ranked.c.tag, ranked.c.number)
                           .where(ranked.c.rank == keep_builds))
    return {Group(repo, pr, branch_name, bool(is_tag)): number
            for repo, pr, branch_name, is_tag, number in rows}


def _candidates(session: Session, cutoff: datetime, after_id: int, limit: int,
                *conditions) -> list[Candidate]:
    repo_id, pr_number, branch, tag = _group_columns()
    rows = session.execute(
        select(Build.id, Repo.full_name, Build.number, Build.finished_at, repo_id, pr_number,
               branch, tag)
        .join(Repo, Repo.id == Build.repo_id)
        .where(Build.id > after_id, Build.status.in_(FINISHED), Build.finished_at < cutoff,
               *conditions)
        .order_by(Build.id).limit(limit))
    return [Candidate(build_id, full_name, number, finished_at,
                      Group(repo, pr, branch_name, bool(is_tag)))
            for build_id, full_name, number, finished_at, repo, pr, branch_name, is_tag in rows]


def logs_to_prune(session: Session, cutoff: datetime, after_id: int,
                  limit: int) -> list[Candidate]:
    """The next ``limit`` builds after ``after_id`` that finished before ``cutoff`` and
    have a job whose log was not pruned yet, by id."""
    unpruned = exists().where(Job.build_id == Build.id, Job.pruned_at.is_(None))
    return _candidates(session, cutoff, after_id, limit, unpruned)


def builds_to_delete(session: Session, cutoff: datetime, after_id: int,
                     limit: int) -> list[Candidate]:
    """The next ``limit`` builds after ``after_id`` that finished before ``cutoff``, by id,
    but for the last build of a schedule, which the schedule's listing shows."""
    shown = exists().where(Schedule.last_build_id == Build.id)
    return _candidates(session, cutoff, after_id, limit, ~shown)


def jobs_of(session: Session, build_ids: Collection[int]) -> list[PrunedJob]:
    """The jobs of ``build_ids`` whose logs were not pruned yet."""
    return [PrunedJob(*row) for row in session.execute(
        select(Job.id, Job.build_id, Job.attempt)
        .where(Job.build_id.in_(build_ids), Job.pruned_at.is_(None)).order_by(Job.id))]


def mark_pruned(session: Session, job_ids: Collection[int], at: datetime) -> set[int]:
    """Record that the logs and artifacts of ``job_ids`` were removed ``at``; returns the
    ids of the builds whose jobs this marked.

    Only jobs not marked yet (another pruner may have been first) and still finished (a
    rerun may have started meanwhile: its new attempt has a log of its own) are marked.
    """
    if not job_ids:
        return set()
    marked = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.pruned_at.is_(None), Job.status.in_(FINISHED))
        .values(pruned_at=at).returning(Job.build_id),
        execution_options={"synchronize_session": False})
    return {build_id for (build_id,) in marked}


def delete_builds(session: Session, build_ids: Collection[int], cutoff: datetime) -> set[int]:
    """Delete those of ``build_ids`` that are still finished before ``cutoff``, with their
    jobs, steps, attempts and artifact rows (the database cascades; a schedule that made
    one forgets it); returns the ids deleted.

    The repository's ``last_build_number`` is left as it is, so build numbers are never
    given twice.
    """
    if not build_ids:
        return set()
    deleted = session.execute(
        delete(Build)
        .where(Build.id.in_(build_ids), Build.status.in_(FINISHED), Build.finished_at < cutoff)
        .returning(Build.id),
        execution_options={"synchronize_session": False})
    return {build_id for (build_id,) in deleted}
