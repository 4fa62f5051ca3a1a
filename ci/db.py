"""Database connections and schema migrations.

SQLite is the embedded default: it runs in WAL mode so pages can be read while
webhooks write. Sessions that write (webhooks, the recorder, the CLI) begin
``IMMEDIATE`` so that concurrent writers queue on ``busy_timeout`` instead of
failing when a read turns into a write; sessions that only read begin deferred
and never block a writer. PostgreSQL needs none of that and gets none of it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``, tuned for SQLite when it is one."""
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_sessionmaker(engine: Engine, writes: bool = False) -> sessionmaker[Session]:
    """Sessions keep loaded objects usable after commit (views render after committing).

    Args:
        writes: the sessions will write; on SQLite they take the write lock when
            their transaction begins rather than when the first write comes.
    """
    if writes:
        engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    return sessionmaker(engine, expire_on_commit=False)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic; safe to run on every start."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
