"""Following the logs of all of a build's jobs at once, for the build page's one stream.

A browser opens at most six HTTP/1.1 connections to a host, so a page with a stream per
job would hang the other Slipway tabs on a six-job build. The build page has one stream,
which reads every job's log with one ``XREAD`` over their Redis streams (and over any
other stream it waits on). Where it stands is a cursor: each job's attempt and last entry
id sent, by job number, which the browser hands back as ``Last-Event-ID`` when it
reconnects, so that no line is lost or sent twice. The attempt tells a reconnecting
browser's lines of a job from those of its next attempt, whose log starts afresh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from redis import Redis

from ci.pipeline import keys
from ci.pipeline.logformat import LogEntry

START = "0-0"
_POSITION = r"\d{1,9}\.\d{1,9}:\d{1,20}-\d{1,20}"
#: ``1.1:1700000000000-0,2.3:1700000000123-4``: job number, attempt, last id; a job
#: left out is one of which nothing was sent.
CURSOR = re.compile(rf"(?:{_POSITION}(?:,{_POSITION}){{0,9999}})?")


class Position(NamedTuple):
    """Where a reader stands in a job's log: which attempt, and the last entry id read."""

    attempt: int
    after: str = START


def parse_cursor(text: str) -> dict[int, Position]:
    """The positions a cursor holds, by job number.

    Raises:
        ValueError: ``text`` is not a cursor; the message shows one.
    """
    if not CURSOR.fullmatch(text):
        raise ValueError("a cursor lists job numbers with their attempt and last log entry "
                         "id, like 1.1:1700000000000-0,2.1:1700000000123-4")
    positions = {}
    for position in filter(None, text.split(",")):
        job, _, entry_id = position.partition(":")
        number, _, attempt = job.partition(".")
        positions[int(number)] = Position(int(attempt), entry_id)
    return positions


def format_cursor(positions: Mapping[int, Position]) -> str:
    """The cursor of ``positions`` (job number -> attempt and last entry id sent)."""
    return ",".join(f"{number}.{attempt}:{after}"
                    for number, (attempt, after) in sorted(positions.items())
                    if after != START)


@dataclass(frozen=True)
class Reply:
    """What one read found: new log entries by job id, and rows of the other streams."""

    logs: dict[int, list[LogEntry]]
    others: dict[str, list]


def read(redis: Redis, logs: Mapping[int, str], others: Mapping[str, str],
         block_ms: int | None, count: int) -> Reply:
    """Entries after each position, in one ``XREAD``: ``logs`` maps job ids to the last
    entry id read of their log, ``others`` stream names to theirs. At most ``count``
    entries per stream; waits up to ``block_ms`` for one when there is none (None: not)."""
    streams = {keys.log_stream(job_id): after for job_id, after in logs.items()}
    streams.update(others)
    reply = redis.xread(streams, count=count, block=block_ms)
    rows = {_text(key): entries for key, entries in reply or []}
    return Reply(
        logs={job_id: [LogEntry.from_fields(entry_id, fields)
                       for entry_id, fields in rows.pop(keys.log_stream(job_id), [])]
              for job_id in logs},
        others=rows)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
