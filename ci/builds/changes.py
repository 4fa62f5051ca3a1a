"""Notices that a build changed, for the pages that show builds live.

A notice names the repository and the build, nothing more: a page that cares reads
the build's state from the database, with the asker's access rules, so a notice never
carries what the reader may not see. Notices are written after the change is committed
(a page that reads on a notice finds the change) and are best effort: a lost notice
leaves a page a little behind until the next one, it loses no data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from ci.pipeline import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One notice: ``id`` is its stream id, the position to read on from."""

    id: str
    repo_id: int
    build_id: int


def announce(redis: Redis, changed: Iterable[tuple[int, int]]) -> None:
    """Say that each (repository id, build id) of ``changed`` changed, in one round trip."""
    changed = list(changed)
    if not changed:
        return
    try:
        with redis.pipeline(transaction=False) as pipe:
            add_to(pipe, changed)
            pipe.execute()
    except RedisError as exc:
        log.warning("build change notices not sent, Redis: %s", exc)


def add_to(pipe: Pipeline, changed: Iterable[tuple[int, int]]) -> None:
    """Queue the notices of ``changed`` on a pipeline that is sent anyway (a build's enqueue),
    which saves them a round trip of their own."""
    for repo_id, build_id in dict.fromkeys(changed):
        pipe.xadd(keys.CHANGES_STREAM, {"r": repo_id, "b": build_id},
                  maxlen=keys.CHANGES_MAXLEN, approximate=True)


def latest_id(redis: Redis) -> str:
    """The id of the newest notice, to read on from ("0-0" when there is none)."""
    newest = redis.xrevrange(keys.CHANGES_STREAM, count=1)
    return _text(newest[0][0]) if newest else "0-0"


def parse(rows: list) -> list[Change]:
    """The notices of an ``XRANGE``/``XREAD`` reply's entries of :data:`keys.CHANGES_STREAM`."""
    found = []
    for entry_id, fields in rows:
        try:
            found.append(Change(_text(entry_id), int(fields[b"r"]), int(fields[b"b"])))
        except (KeyError, ValueError):
            continue
    return found


def wait(redis: Redis, after: str, block_ms: int) -> list[Change]:
    """Notices after ``after``, waiting up to ``block_ms`` for one; [] on timeout."""
    reply = redis.xread({keys.CHANGES_STREAM: after}, block=block_ms)
    return [change for _stream, rows in reply or [] for change in parse(rows)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
