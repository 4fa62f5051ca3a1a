"""The app's connections: database sessions and Redis, set up once per app.

Views reach them through :func:`session` and :func:`redis`; everything below the
views receives them as arguments.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import Flask, current_app, g
from redis import Redis

from ci.settings import Settings, kept_secret
from ci.store.db import Engine, Session, Sessions, make_engine, make_sessionmaker
from ci.stream_watcher import connect_fan_out


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: Sessions
    write_sessions: Sessions
    redis: Redis


def init_app(app: Flask, settings: Settings) -> Resources:
    engine = make_engine(settings.database_url)
    resources = Resources(
        settings=settings, engine=engine, sessions=make_sessionmaker(engine),
        write_sessions=make_sessionmaker(engine, writes=True),
        redis=connect_fan_out(settings.redis_url, socket_connect_timeout=2, socket_timeout=30,
                              health_check_interval=30),
    )
    app.extensions["slipway"] = resources
    app.secret_key = settings.secret_key or kept_secret(settings.data_dir, "secret_key",
                                                        lambda: secrets.token_hex(32))
    app.teardown_appcontext(_close_session)
    return resources


def resources() -> Resources:
    return current_app.extensions["slipway"]


def settings() -> Settings:
    return resources().settings


def session() -> Session:
    if "db_session" not in g:
        g.db_session = resources().sessions()
    return g.db_session


def write_session() -> Session:
    """A session for requests that write (its transaction takes the write lock at once)."""
    if "db_write_session" not in g:
        g.db_write_session = resources().write_sessions()
    return g.db_write_session


def redis() -> Redis:
    return resources().redis


def _close_session(_exc: BaseException | None) -> None:
    for name in ("db_session", "db_write_session"):
        db_session = g.pop(name, None)
        if db_session is not None:
            db_session.close()
