"""Copying one Slipway database into another: how an installation moves from SQLite to
PostgreSQL (or back).

Rows go through the models' tables, so each value is read and written by its column
type (SQLite's 0/1 and date strings arrive in PostgreSQL as booleans and timestamps).
The copy is one transaction on the target: it lands whole or not at all, and a failed
copy leaves an empty, migrated target to try again. Ids are kept, so links and API
references stay valid; PostgreSQL's id sequences are then moved past the copied ids.
"""

from __future__ import annotations

from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ci.store import db
from ci.store.models import Base

__all__ = ["CopyError", "copy_database"]

#: Rows read and inserted at a time: bounded memory whatever the size of a table.
BATCH = 1000


class CopyError(Exception):
    """The copy cannot start or did not complete; the message says what to do."""


def copy_database(source_url: str, target_url: str) -> dict[str, int]:
    """Copy every table of the database at ``source_url`` into the one at ``target_url``.

    The target is migrated to the latest schema first and must hold no rows; the source
    must be at the latest schema too (``slipway db upgrade`` brings it there).

    Returns:
        How many rows each table had, in the order they were copied.

    Raises:
        CopyError: a database is missing, at another schema version or not empty, or a
            row could not be written (nothing is then left in the target).
    """
    if make_url(source_url) == make_url(target_url):
        raise CopyError("the source and the target are the same database")
    _require_sqlite_file(source_url)
    source, target = db.make_engine(source_url), db.make_engine(target_url)
    try:
        _require_head(source)
        db.upgrade(target)
        with _reading(source) as reader, \
                target.execution_options(**{db.WRITES: True}).begin() as writer:
            _require_empty(writer)
            counts = {table.name: _copy_table(reader, writer, table.name)
                      for table in Base.metadata.sorted_tables}
            if writer.dialect.name == "postgresql":
                _move_sequences(writer)
        return counts
    except SQLAlchemyError as exc:
        raise CopyError(f"the copy failed and nothing was written: {exc}") from None
    finally:
        source.dispose()
        target.dispose()


def _require_sqlite_file(url: str) -> None:
    """A SQLite source that is not there would be created, empty, by connecting to it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise CopyError(f"no SQLite database at {parsed.database!r}")


def _require_head(source: Engine) -> None:
    head = ScriptDirectory(str(db.MIGRATIONS)).get_current_head()
    with source.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        raise CopyError("the source holds no Slipway database (it has no schema version)")
    if revision != head:
        raise CopyError(f"the source's schema is at revision {revision}, not {head}: run "
                        "`slipway db upgrade` with SLIPWAY_DATABASE_URL set to the source first")


def _reading(source: Engine) -> Connection:
    """A connection that sees one state of the source from its first read on."""
    connection = source.connect()
    if source.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    return connection


def _require_empty(writer: Connection) -> None:
    for table in Base.metadata.sorted_tables:
        rows = writer.scalar(select(func.count()).select_from(table))
        if rows:
            raise CopyError(f"the target is not empty: its table {table.name} has {rows} "
                            "rows; copy into a new, empty database")


def _copy_table(reader: Connection, writer: Connection, name: str) -> int:
    """Copy one table in batches, in primary key order; how many rows."""
    table = Base.metadata.tables[name]
    result = reader.execute(select(table).order_by(*table.primary_key.columns))
    copied = 0
    for batch in result.mappings().partitions(BATCH):
        writer.execute(table.insert(), [dict(row) for row in batch])
        copied += len(batch)
    return copied


def _move_sequences(writer: Connection) -> None:
    """Point each id sequence past the largest copied id, so new rows get fresh ids."""
    for table in Base.metadata.sorted_tables:
        if "id" not in table.primary_key.columns:
            continue
        writer.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"coalesce(max(id), 0) + 1, false) FROM {table.name}"))
