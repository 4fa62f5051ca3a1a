"""Database connections and schema migrations.

SQLite is the embedded default: it runs in WAL mode so pages can be read while
webhooks write. Sessions that write (webhooks, the recorder, the CLI) begin
``IMMEDIATE`` so that concurrent writers queue on ``busy_timeout`` instead of
failing when a read turns into a write; sessions that only read begin deferred
and never block a writer.

PostgreSQL keeps that one guarantee the services are written against: write sessions
run one at a time (each takes the same transaction-level advisory lock as it begins),
so reading rows and then writing what follows from them (a job finished, hence the
build) needs no row locks there either; a writer that goes quiet inside its transaction
(its process frozen, its host gone) loses it after ``WRITER_IDLE_TIMEOUT_MS``. The
webhook's own writes (``raw_write``) take no such lock on PostgreSQL: they are atomic
statements, and the increment of the repository's build number locks the one row that
concurrent webhooks share.
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool

#: What the rest of Slipway names in type hints: a session, and a factory of sessions.
Sessions = sessionmaker[Session]
#: What the database raises when it, not the statement, is at fault: down, unreachable,
#: locked, out of disk. Worth trying again later; nothing in the data asked caused it.
Unavailable = OperationalError
MIGRATIONS = Path(__file__).parent / "migrations"
#: Each SQLite database's writer lock, by the pool of the engine that opened it.
_WRITER_LOCKS: weakref.WeakKeyDictionary[Pool, WriterLock] = weakref.WeakKeyDictionary()
#: The execution option that marks a connection's transactions as writing.
WRITES = "slipway_writes"
#: The PostgreSQL advisory lock that write sessions queue for ("slipway" in ASCII).
WRITER_LOCK_KEY = 0x736C6970776179
#: How long PostgreSQL waits for a write transaction's client between two statements
#: before it ends the session. A writer whose process froze or whose host vanished would
#: otherwise keep the write lock, and every other writer waiting, until TCP gives up on
#: its connection (hours); its transaction is rolled back, nothing of it half done.
WRITER_IDLE_TIMEOUT_MS = 30_000
#: The SQLSTATE of a session the server ended for that (idle_in_transaction_session_timeout).
IDLE_SESSION_ENDED = "25P03"


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``, tuned for SQLite or PostgreSQL."""
    if url.startswith("postgresql"):
        return _postgresql_engine(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    database = url.split("///", 1)[-1]
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    writers = WriterLock(Path(database + ".writer-lock")) if database != ":memory:" else None
    if writers is not None:
        _WRITER_LOCKS[engine.pool] = writers

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        writes = connection.get_execution_options().get(WRITES, False)
        if writes and writers is not None:
            writers.acquire()
            connection.info["holds_writer_lock"] = True
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN DEFERRED")

    @event.listens_for(engine, "engine_disposed")
    def _on_dispose(_engine) -> None:
        if writers is not None:
            writers.close()

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection) -> None:
        if connection.info.pop("holds_writer_lock", False):
            writers.release()

    return engine


def _postgresql_engine(url: str) -> Engine:
    """An engine whose write transactions queue for one advisory lock (see above)."""
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if connection.get_execution_options().get(WRITES, False):
            # Both last until the transaction's commit or rollback, whatever ends it.
            connection.exec_driver_sql(
                "SELECT set_config('idle_in_transaction_session_timeout', "
                f"'{WRITER_IDLE_TIMEOUT_MS}', true), pg_advisory_xact_lock({WRITER_LOCK_KEY})")

    @event.listens_for(engine, "handle_error")
    def _on_error(context) -> OperationalError | None:
        # The server ended the session of a writer that went quiet: its connection is lost
        # like any other, so it is dropped (the others are fine) and the error is
        # ``Unavailable`` (worth trying again), not one of the data.
        if getattr(context.original_exception, "sqlstate", None) != IDLE_SESSION_ENDED:
            return None
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
        return OperationalError(context.statement, context.parameters,
                                context.original_exception, connection_invalidated=True)

    return engine


class WriterLock:
    """Queues SQLite writers of all processes on a file lock.

    SQLite's own busy handler waits by sleeping with growing back-off (up to 100 ms),
    which under many concurrent webhooks wastes most of the time; a blocked ``flock``
    wakes the moment the holder lets go. A thread lock first, because ``flock`` does
    not exclude threads sharing one open file; in gunicorn's gevent workers it is a
    greenlet lock, and a wait for another process blocks the worker for as long as
    that process's write takes (a few statements: a fraction of a millisecond).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._threads = threading.Lock()
        self._fd = -1
        self._pid = 0

    def acquire(self) -> None:
        self._threads.acquire()
        if self._pid != os.getpid():  # opened anew after a fork (gunicorn workers)
            self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._pid == os.getpid():
            os.close(self._fd)
            self._pid = 0


def make_sessionmaker(engine: Engine, writes: bool = False) -> Sessions:
    """Sessions keep loaded objects usable after commit (views render after committing).

    Args:
        writes: the sessions will write; they take the write lock (SQLite's, or the
            advisory lock on PostgreSQL) when their transaction begins rather than
            when the first write comes.
    """
    if writes:
        engine = engine.execution_options(**{WRITES: True})
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def raw_read(engine: Engine) -> Iterator[Any]:
    """A bare DBAPI cursor for a few reads that must cost little (see ``ci.store.rawsql``)."""
    connection = engine.raw_connection()
    try:
        yield connection.cursor()
    finally:
        connection.close()


@contextmanager
def raw_write(engine: Engine) -> Iterator[Any]:
    """A write transaction on a bare DBAPI cursor: committed on exit, rolled back on error.

    For the few statements every webhook writes (``ci.store.intake``). Concurrent webhooks
    all queue for the writer lock, so the time it is held bounds the webhook rate;
    SQLAlchemy's bookkeeping between the calls into SQLite made that several times
    what SQLite needs (more again in threaded servers, where each call into SQLite
    hands the GIL to another thread and must wait to get it back).
    """
    writers = _WRITER_LOCKS.get(engine.pool)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if writers is not None:
            writers.acquire()
        try:
            if writers is not None:
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if writers is not None:
                writers.release()
    finally:
        connection.close()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic; safe to run on every start."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.execution_options(**{WRITES: True}).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
