"""The databases tests run on: a SQLite file, or a PostgreSQL server of the session's own.

The server is started like the tests' private Redis: ``initdb`` into a temporary
directory and ``pg_ctl start`` on a free loopback port, as the ``postgres`` user when the
tests run as root (PostgreSQL refuses to run as root). Durability is switched off: a
test database that a crash loses is no loss, and ``fsync`` would dominate every test.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ci.store import db

#: Settings for a server whose data may be lost: a test database never outlives its test.
_FAST = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=300"]


class PostgresMissing(RuntimeError):
    """PostgreSQL's server programs are not installed on this machine."""


def postgres_binaries() -> Path:
    """Where Debian's packages put ``initdb`` and ``pg_ctl`` (the newest version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]))
    if not found and shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    if not found:
        raise PostgresMissing("PostgreSQL is not installed: run `make test`, which installs it "
                           "(package postgresql), or set SLIPWAY_TEST_DATABASE_URL to a server")
    return Path(found[-1]).parent


class LocalServer:
    """A PostgreSQL server in a temporary directory, owned by ``postgres`` when run as root."""

    def __init__(self, port: int) -> None:
        self.port = port
        # Under /tmp itself: pytest's own temporary folders are closed to other users.
        self.directory = Path(tempfile.mkdtemp(prefix="slipway-postgres-"))
        self._bin = postgres_binaries()

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_postgres, *command], check=False, capture_output=True,
                              text=True)
        if done.returncode:
            raise RuntimeError(f"{Path(command[0]).name} failed ({done.returncode}): "
                               f"{done.stderr or done.stdout}")

    def start(self) -> str:
        """Create the cluster and start it; the administrator's URL."""
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        data = str(self.directory / "data")
        self._run(str(self._bin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8")
        options = " ".join([*_FAST, "-c", f"port={self.port}", "-c", "listen_addresses=127.0.0.1",
                            "-c", f"unix_socket_directories={self.directory}"])
        self._run(str(self._bin / "pg_ctl"), "start", "-D", data, "-w", "-t", "60",
                  "-l", str(self.directory / "server.log"), "-o", options)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run(str(self._bin / "pg_ctl"), "stop", "-D", str(self.directory / "data"),
                  "-m", "immediate", "-w")
        shutil.rmtree(self.directory, ignore_errors=True)


class Databases:
    """Creates a fresh database per test on one server: empty, or a copy of a migrated one.

    Migrating takes far longer than copying, so the schema is migrated once per session
    into a template that ``CREATE DATABASE … TEMPLATE`` copies.
    """

    def __init__(self, admin_url: str) -> None:
        self._url = make_url(admin_url)
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        # Several sessions may share one server (SLIPWAY_TEST_DATABASE_URL): names of our own.
        self._prefix = f"slipway_test_{os.getpid()}_"
        self._names = itertools.count()
        self._template: str | None = None

    def create(self, migrated: bool = True) -> str:
        """A new database's URL: migrated to head, or empty."""
        if migrated and self._template is None:
            self._template = self._create(None)
            engine = db.make_engine(self._url_of(self._template))
            db.upgrade(engine)
            engine.dispose()
        return self._url_of(self._create(self._template if migrated else None))

    def _create(self, template: str | None) -> str:
        name = f"{self._prefix}{next(self._names)}"
        copy = f" TEMPLATE {template}" if template else ""
        with self._admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}{copy}"))
        return name

    def _url_of(self, name: str) -> str:
        return self._url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop a database ``create`` made, with whatever connections it still has."""
        name = make_url(url).database
        with self._admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def close(self) -> None:
        if self._template is not None:
            self.drop(self._url_of(self._template))
        self._admin.dispose()
