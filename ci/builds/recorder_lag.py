"""How far behind the recorders are: runner events in Redis not yet applied to SQL.

Builds look stuck to their users when the recorders fall behind, so the metrics show it
from the events stream's consumer group: how many events no recorder has read yet, how
many a recorder read and has not acknowledged, and since when the oldest of either waits.
With no group yet (no recorder ever started), every event of the stream waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ResponseError

from ci.pipeline import keys


@dataclass(frozen=True)
class RecorderLag:
    """The recorders' backlog at one moment."""

    #: Events no recorder has read; None when Redis cannot tell (after entries were deleted
    #: from the middle of the stream).
    unread: int | None
    #: Events a recorder read and has not acknowledged (applied, or waiting to be).
    pending: int
    #: When the oldest event not yet settled was added, in seconds since the epoch (from its
    #: stream id); None when none waits.
    oldest_at: float | None


def recorder_lag(redis: Redis) -> RecorderLag:
    """The recorders' backlog now.

    Raises:
        redis.exceptions.RedisError: Redis does not answer.
    """
    try:
        groups = redis.xinfo_groups(keys.EVENTS_STREAM)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return RecorderLag(unread=0, pending=0, oldest_at=None)
    group = next((group for group in groups if _text(group["name"]) == keys.RECORDER_GROUP),
                 None)
    if group is None:
        first = redis.xrange(keys.EVENTS_STREAM, count=1)
        return RecorderLag(unread=redis.xlen(keys.EVENTS_STREAM), pending=0,
                           oldest_at=_added(first[0][0]) if first else None)
    waiting = []
    if group["pending"]:
        waiting.append(_added(redis.xpending(keys.EVENTS_STREAM, keys.RECORDER_GROUP)["min"]))
    unread = redis.xrange(keys.EVENTS_STREAM, min=f"({_text(group['last-delivered-id'])}",
                          count=1)
    if unread:
        waiting.append(_added(unread[0][0]))
    return RecorderLag(unread=group.get("lag"), pending=group["pending"],
                       oldest_at=min(waiting, default=None))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _added(entry_id: str | bytes) -> float:
    """When an entry was added: its stream id starts with the milliseconds since the epoch."""
    return int(_text(entry_id).partition("-")[0]) / 1000
