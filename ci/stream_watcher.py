"""One blocking read per web process for all the live pages waiting on Redis streams.

A page following a running job waits for the next lines of its log with a blocking
``XREAD``. Made by every page on a connection of its own, a thousand viewers of one job
would need a thousand Redis connections: far past the pool's limit, so most pages would
get nothing, and Redis would send each line a thousand times. The web app's client is a
:class:`FanOutRedis` instead. Its blocking ``XREAD`` hands the wait to the process's
:class:`StreamWatcher`, whose one thread waits on every watched stream with a single
blocking ``XREAD`` and wakes the pages whose streams grew; each page then reads its new
entries with a non-blocking ``XREAD``, which holds a pooled connection for a moment only.

No entry is missed between a page's read and its wait: the page registers its streams
(and the ids it has read up to) before it reads, the watcher reads each stream from the
furthest of those ids, and it counts the arrivals on each stream. A page that read nothing
waits for an arrival counted after it registered; one that came in between is in what it
read, or wakes it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
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
#: Connections a web process opens to Redis at most; a request finding them all lent waits
#: up to POOL_WAIT_SECONDS for one (a thousand pages woken by one line read in turns).
POOL_SIZE = 100
POOL_WAIT_SECONDS = 10


def _id_key(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamWatcher:
    """Waits on Redis streams for many callers with one connection and one thread, which
    runs while anyone waits and ends when nobody does."""

    def __init__(self, connect: Callable[[], Redis]) -> None:
        self._connect = connect
        self._changed = threading.Condition()
        #: By stream: the id the watcher reads after (the furthest read or asked for).
        self._after: dict[str, str] = {}
        #: By stream: how many callers wait on it.
        self._waiting: dict[str, int] = {}
        #: By stream: how many times entries arrived on it since it was first watched.
        self._arrivals: dict[str, int] = {}
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
                known = self._after.get(name)
                if known is None or _id_key(known) < _id_key(after):
                    self._after[name] = after
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

    def release(self, marks: Mapping[str, int]) -> None:
        """Stop watching for the caller that registered ``marks``."""
        with self._changed:
            for name in marks:
                self._waiting[name] -= 1
                if not self._waiting[name]:
                    del self._waiting[name], self._after[name]
                    self._arrivals.pop(name, None)

    def _run(self) -> None:
        client = self._connect()
        try:
            while True:
                with self._changed:
                    if not self._after:
                        self._running = False
                        return
                    streams = dict(self._after)
                try:
                    reply = client.xread(streams, block=WATCH_BLOCK_MS)
                except RedisError as exc:
                    log.warning("watching live streams: %s; reading again in %gs", exc,
                                RETRY_SECONDS)
                    time.sleep(RETRY_SECONDS)
                    continue
                if reply:
                    self._arrived(reply)
        finally:
            client.close()

    def _arrived(self, reply: list[Any]) -> None:
        with self._changed:
            for name, entries in reply:
                name = _text(name)
                if name in self._after and entries:
                    newest = _text(entries[-1][0])
                    if _id_key(self._after[name]) < _id_key(newest):
                        self._after[name] = newest
                    self._arrivals[name] = self._arrivals.get(name, 0) + 1
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
            reply = super().xread(streams, count=count)
            if not reply and self.watcher.wait(marks, block / 1000):
                reply = super().xread(streams, count=count)
            return reply
        finally:
            self.watcher.release(marks)


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
