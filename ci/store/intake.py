"""The webhook's SQL: find the repository, record the build — on bare DBAPI cursors.

Every webhook runs these, concurrently, and the build is written under the writer
lock that all of them queue for; through the ORM, bookkeeping cost several times the
database's own work there. The statements are SQLAlchemy's, compiled once per dialect
(``ci.store.rawsql``), so what is stored and read is what the ORM would store and read.
The rest of Slipway's SQL is in ``ci.store.queries``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Table, TextClause, bindparam, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.session import make_transient_to_detached

from ci.forges.types import Trigger
from ci.pipeline.status import Status
from ci.store import rawsql
from ci.store.db import raw_read, raw_write
from ci.store.models import Build, Job, Repo, Secret, utcnow

__all__ = [
    "DuplicateDelivery",
    "get_repo_with_secrets",
    "create_build",
]

M = TypeVar("M")


class DuplicateDelivery(Exception):
    """This webhook delivery was seen before; ``build`` is the build it made."""

    def __init__(self, build: Build | None) -> None:
        super().__init__("delivery already received")
        self.build = build


def get_repo_with_secrets(session: Session, full_name: str) -> Repo | None:
    """The registered repo and its secrets, read as rows rather than through the ORM.

    Every webhook starts here, and the ORM's loading costs several times the two
    queries themselves. The repo comes back detached: read it, don't change it.
    """
    engine = session.get_bind()
    with raw_read(engine) as cursor:
        found = rawsql.compiled(_REPO_BY_NAME, engine.dialect).rows(cursor, {"name": full_name})
        if not found:
            return None
        secrets = rawsql.compiled(_SECRETS_OF, engine.dialect).rows(cursor, found[0])
    repo = _detached(Repo, found[0])
    set_committed_value(repo, "secrets", [_detached(Secret, secret) for secret in secrets])
    return repo


_REPO_BY_NAME = select(Repo.__table__).where(Repo.__table__.c.full_name == bindparam("name"))
_SECRETS_OF = (select(Secret.__table__).where(Secret.__table__.c.repo_id == bindparam("id"))
               .order_by(Secret.__table__.c.name))


def _detached(model: type[M], values: Mapping[str, Any]) -> M:
    """A ``model`` instance holding ``values`` as loaded, as if from a closed session."""
    instance = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    return instance


def create_build(session: Session, repo: Repo, trigger: Trigger,
                 skip_reason: str | None = None) -> Build:
    """Insert a build with its first job and commit it.

    The build number comes from an atomic increment on the repo row, so concurrent
    webhooks get distinct numbers on SQLite and PostgreSQL alike.

    Raises:
        DuplicateDelivery: ``trigger.delivery`` was recorded before.
    """
    # A repeated delivery is caught by the unique index: no lookup first.
    status = str(Status.SKIPPED if skip_reason else Status.QUEUED)
    now = utcnow()
    build_row = dict(
        repo_id=repo.id, number=None, status=status, event=trigger.event, error=skip_reason,
        ref=trigger.ref, branch=trigger.branch, tag=trigger.tag, pr_number=trigger.pr_number,
        sha=trigger.sha, message=_storable(trigger.message[:10_000]),
        author=_storable(trigger.author[:255]),
        compare_url=_storable(trigger.compare_url) if trigger.compare_url else None,
        fork=trigger.fork,
        delivery=_delivery(repo, trigger) if trigger.delivery else None, created_at=now,
        started_at=None, finished_at=None,
    )
    # Marked enqueued up front (one transaction per webhook); if the enqueue that
    # follows fails, the reconciler finds the job missing from Redis and retries.
    job_row = dict(build_id=None, number=1, name="default", cell="{}", allow_failure=False,
                   status=status, attempt=1, image=None, runner=None, error=skip_reason,
                   log_archived=False, pruned_at=None, created_at=now, event_seq=0,
                   runner_losses=0, enqueued_at=None if skip_reason else now, started_at=None,
                   finished_at=None)
    if session.in_transaction():
        session.commit()  # end the request's read before writing
    engine = session.get_bind()
    dialect = engine.dialect
    try:
        with raw_write(engine) as cursor:
            build_row["number"] = rawsql.compiled(_NEXT_NUMBER, dialect).scalar(
                cursor, {"id": repo.id})
            build_row["id"] = job_row["build_id"] = rawsql.compiled(_INSERT_BUILD, dialect).scalar(
                cursor, build_row)
            job_row["id"] = rawsql.compiled(_INSERT_JOB, dialect).scalar(cursor, job_row)
    except dialect.loaded_dbapi.IntegrityError:
        raise DuplicateDelivery(session.scalar(
            select(Build).where(Build.delivery == build_row["delivery"]))) from None
    # What the caller reads (ids, what to enqueue), as if loaded from a closed session.
    build, job = _detached(Build, build_row), _detached(Job, job_row)
    set_committed_value(build, "jobs", [job])
    set_committed_value(build, "repo", repo)
    set_committed_value(job, "build", build)
    set_committed_value(job, "steps", [])
    return build


def _insert(table: Table) -> TextClause:
    """``INSERT … RETURNING id`` of every other column, typed like the columns (dates, booleans)."""
    columns = [column.name for column in table.columns if column.name != "id"]
    names = ", ".join(columns)
    values = ", ".join(f":{column}" for column in columns)
    statement = text(f"INSERT INTO {table.name} ({names}) VALUES ({values}) RETURNING id")
    return statement.bindparams(*(bindparam(column, type_=table.c[column].type)
                                  for column in columns))


_NEXT_NUMBER = text("UPDATE repos SET last_build_number = last_build_number + 1 "
                    "WHERE id = :id RETURNING last_build_number")
_INSERT_BUILD = _insert(Build.__table__)
_INSERT_JOB = _insert(Job.__table__)


#: What JSON may carry but a database may not store: NUL (PostgreSQL refuses it in text)
#: and lone surrogates (``"\ud800"``; no UTF-8 encodes them).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """``text`` with what no database stores replaced by U+FFFD, the same on all of them."""
    return _UNSTORABLE.sub("\ufffd", text)


def _delivery(repo: Repo, trigger: Trigger) -> str:
    return f"{repo.forge}:{trigger.delivery}"[:120]
