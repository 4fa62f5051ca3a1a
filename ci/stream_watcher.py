"""One blocking read per web process for all the live pages waiting on Redis streams.

A page following a running job waits for the next lines of its log with a blocking
``XREAD``. Made by every page on a connection of its own, a thousand viewers of one job
would need a thousand Redis connections: far past the pool's limit, so most pages would
get nothing, and Redis would send each line a thousand times. The web app's client is a
:class:`FanOutRedis` instead. Its blocking ``XREAD`` hands the wait to the process's
:class:`StreamWatcher`, whose one thread waits on every watched stream with a single
blocking ``XREAD``, keeps the entries it read, and wakes the pages whose streams grew. Each
page then takes its new entries from those kept: a line is read from Redis once per web
process, not once per viewer. A page behind what is kept (it asked for entries older than
the watcher's first) reads them from Redis with a non-blocking ``XREAD``, which holds a
pooled connection for a moment only.

No entry is missed between a page's read and its wait: the page registers its streams
(and the ids it has read up to) before it reads; the watcher reads each stream on from the
id of the first page waiting on it, and counts the arrivals on each stream. A page that
read nothing waits for an arrival counted after it registered; one that came in between is
in what it read, or wakes it at once.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from ci.redis_client import check_url, connect

log = logging.getLogger(__name__)

#: How long the watcher's read blocks before it looks for streams newly asked for; an
#: entry is sent on at once, so this bounds only how late a new stream joins the read.
WATCH_BLOCK_MS = 100
#: How long the watcher waits before reading again when Redis failed.
RETRY_SECONDS = 0.5
#: Entries the watcher reads of a stream at a time, and keeps of it at least.
READ_COUNT = 1000
#: Connections a web process opens to Redis at most; a request finding them all lent waits
#: up to POOL_WAIT_SECONDS for one (a thousand pages woken by one line read in turns).
POOL_SIZE = 100
POOL_WAIT_SECONDS = 10


def _id_key(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class _Kept:
    """The entries of a stream the watcher read, in order: all of those after ``after``
    once ``read`` (a read of the watcher made after it began keeping them came back)."""

    after: str
    read: bool = False
    keys: list[tuple[int, int]] = field(default_factory=list)
    entries: list[Any] = field(default_factory=list)

    def add(self, entries: list[Any]) -> None:
        last = self.keys[-1] if self.keys else _id_key(self.after)
        for entry in entries:
            key = _id_key(_text(entry[0]))
            if key > last:
                self.keys.append(key)
                self.entries.append(entry)
                last = key
        if len(self.entries) > 2 * READ_COUNT:
            dropped = len(self.entries) - READ_COUNT
            self.after = _text(self.entries[dropped - 1][0])
            del self.keys[:dropped], self.entries[:dropped]

    def after_id(self, after: str, count: int | None) -> list[Any] | None:
        """The entries after ``after`` (at most ``count``), or None when some may be older
        than those kept."""
        key = _id_key(after)
        if not self.read or key < _id_key(self.after):
            return None
        start = bisect.bisect_right(self.keys, key)
        return self.entries[start:start + count if count else None]


class StreamWatcher:
    """Waits on Redis streams for many callers with one connection and one thread, which
    runs while anyone waits and ends when nobody does."""

    def __init__(self, connect: Callable[[], Redis]) -> None:
        self._connect = connect
        self._changed = threading.Condition()
        #: By stream: the id the watcher reads after: the newest it read, or the id the
        #: first caller waiting on it had read up to. A caller behind it reads what it lacks
        #: from Redis; one ahead is woken by the entries after its own id, which come after.
        self._after: dict[str, str] = {}
        #: By stream: how many callers wait on it.
        self._waiting: dict[str, int] = {}
        #: By stream: how many times entries arrived on it since it was first watched.
        self._arrivals: dict[str, int] = {}
        #: By stream: the entries read since it was first watched (see :class:`_Kept`).
        self._kept: dict[str, _Kept] = {}
        self._running = False

    @property
    def running(self) -> bool:
        """Whether the watcher's thread runs (it does while anyone waits)."""
        return self._running

    def waiting_on(self, name: str) -> int:
        """How many callers wait on stream ``name``."""
        with self._changed:
            return self._waiting.get(name, 0)

    def register(self, streams: Mapping[str, str]) -> dict[str, int]:
        """Watch ``streams`` (name: the id the caller read up to) for a caller about to read
        them; returns what :meth:`wait` and :meth:`release` take."""
        with self._changed:
            for name, after in streams.items():
                self._waiting[name] = self._waiting.get(name, 0) + 1
                if name not in self._after:
                    self._after[name] = after
                    self._kept[name] = _Kept(after)
            marks = {name: self._arrivals.get(name, 0) for name in streams}
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="stream-watcher", daemon=True).start()
        return marks

    def wait(self, marks: Mapping[str, int], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an entry to arrive on one of the registered
        streams after :meth:`register` returned ``marks``; whether one did."""
        with self._changed:
            return self._changed.wait_for(
                lambda: any(self._arrivals.get(name, 0) > mark for name, mark in marks.items()),
                timeout)

    def kept(self, streams: Mapping[Any, Any], count: int | None) -> list[Any] | None:
        """What ``XREAD`` would answer for ``streams`` (name: the id read up to) from the
        entries kept, when it has them all; None when a stream is not watched, not read yet
        since, or asks for entries older than those kept. Only for a caller that registered
        ``streams``."""
        reply = []
        with self._changed:
            for name, after in streams.items():
                kept = self._kept.get(_text(name))
                entries = kept.after_id(_text(after), count) if kept is not None else None
                if entries is None:
                    return None
                if entries:
                    reply.append([name, entries])
        return reply

    def release(self, marks: Mapping[str, int]) -> None:
        """Stop watching for the caller that registered ``marks``."""
        with self._changed:
            for name in marks:
                self._waiting[name] -= 1
                if not self._waiting[name]:
                    del self._waiting[name], self._after[name], self._kept[name]
                    self._arrivals.pop(name, None)

    def _run(self) -> None:
        client = self._connect()
        try:
            self._read_while_waited_on(client)
        except Exception:
            # Callers still wait, for their timeout at most; the next one starts a reader.
            log.exception("the live streams' reader failed")
            with self._changed:
                self._running = False
        finally:
            client.close()

    def _read_while_waited_on(self, client: Redis) -> None:
        while True:
            with self._changed:
                if not self._after:
                    self._running = False
                    return
                streams = dict(self._after)
                keeping = {name: self._kept[name] for name in streams}
            try:
                reply = client.xread(streams, count=READ_COUNT, block=WATCH_BLOCK_MS)
            except RedisError as exc:
                log.warning("watching live streams: %s; reading again in %gs", exc,
                            RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
                continue
            self._arrived(reply or [], keeping)

    def _arrived(self, reply: list[Any], keeping: Mapping[str, _Kept]) -> None:
        """Keep what a read found and wake who waits on it. A stream let go and asked for
        afresh while the read was under way is read again from the id asked (its callers
        are woken all the same: one may have read Redis before these entries came)."""
        rows = {_text(name): entries for name, entries in reply}
        with self._changed:
            for name, kept in keeping.items():
                if name not in self._after:
                    continue
                entries = rows.get(name)
                if self._kept[name] is kept:
                    kept.read = True
                    if entries:
                        self._after[name] = _text(entries[-1][0])
                        kept.add(entries)
                if entries:
                    self._arrivals[name] = self._arrivals.get(name, 0) + 1
            if rows:
                self._changed.notify_all()


class FanOutRedis(Redis):
    """The web app's Redis client: a blocking ``XREAD`` waits through the process's
    :class:`StreamWatcher`, and reads without blocking once there is something to read."""

    def __init__(self, *args: Any, watcher: StreamWatcher, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watcher = watcher

    def xread(self, streams: Mapping[Any, Any], count: int | None = None,
              block: int | None = None) -> Any:
        if block is None or any(_text(after) == "$" for after in streams.values()):
            # "$" (only what comes next) means nothing to a read that does not block.
            return super().xread(streams, count=count, block=block)
        marks = self.watcher.register({_text(name): _text(after)
                                       for name, after in streams.items()})
        try:
            reply = self._read(streams, count)
            if not reply and self.watcher.wait(marks, block / 1000):
                reply = self._read(streams, count)
            return reply
        finally:
            self.watcher.release(marks)

    def _read(self, streams: Mapping[Any, Any], count: int | None) -> Any:
        kept = self.watcher.kept(streams, count)
        return kept if kept is not None else super().xread(streams, count=count)


def connect_fan_out(url: str, **options: Any) -> FanOutRedis:
    """The web app's client for the Redis at ``url``: ``options`` (timeouts) yield to the
    URL's own, as with :func:`ci.redis_client.connect`.

    Raises:
        RedisUrlError: the URL is malformed or has options redis-py cannot use.
    """
    check_url(url)
    pool = BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE,
                                           timeout=POOL_WAIT_SECONDS, **options)
    watcher = StreamWatcher(lambda: connect(url, **options))
    return FanOutRedis(connection_pool=pool, watcher=watcher)
