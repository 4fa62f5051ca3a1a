"""Statements compiled once by SQLAlchemy and run on a bare DBAPI cursor.

For the webhook's few queries only: there SQLAlchemy's per-execution bookkeeping
costs several times the database's own work, and the write runs under the writer
lock that concurrent webhooks queue for (see ``ci.store.db.raw_write``). Parameters and
results go through the column types' own conversions, so what is stored and read
is exactly what the ORM would store and read.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect


class RawStatement:
    """One statement, compiled for one dialect."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._positional = compiled.positiontup is not None  # else the driver takes names
        # Each parameter, in the order a positional driver wants them, with its conversion.
        self._parameters = [(name, compiled.binds[name].type.dialect_impl(dialect)
                             .bind_processor(dialect))
                            for name in compiled.positiontup or compiled.binds]
        self._dialect = dialect
        self._columns = list(getattr(statement, "selected_columns", ()))
        self._from_db: list | None = None  # known once the driver has described a result

    def execute(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        """Run with the parameters it names taken from ``values``; the cursor, to fetch from."""
        converted = [(name, convert(values[name]) if convert else values[name])
                     for name, convert in self._parameters]
        cursor.execute(self.sql, [value for _, value in converted] if self._positional
                       else dict(converted))
        return cursor

    def scalar(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        """The first column of the first row (``RETURNING id``)."""
        return self.execute(cursor, values).fetchone()[0]

    def rows(self, cursor: Any, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of a ``select()``, by column name, converted as the ORM would."""
        found = self.execute(cursor, values).fetchall()
        if self._from_db is None:
            # Some conversions depend on the type the driver reports (PostgreSQL numerics).
            self._from_db = [
                (column.name, column.type.dialect_impl(self._dialect)
                 .result_processor(self._dialect, description[1]))
                for column, description in zip(self._columns, cursor.description)]
        return [{name: convert(value) if convert else value
                 for (name, convert), value in zip(self._from_db, row)} for row in found]


@lru_cache(maxsize=None)
def compiled(statement: Executable, dialect: Dialect) -> RawStatement:
    """``statement`` compiled for ``dialect``, once per process."""
    return RawStatement(statement, dialect)
