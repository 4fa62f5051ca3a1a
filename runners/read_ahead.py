"""A step's output read ahead of its publishing, and passed on in as few pieces as it came.

The engine streams a step's output in frames of at most 32 KiB, and each piece passed on
is one round trip to Redis. Read in the same thread, a step printing megabytes waits on
every one of those round trips in turn. Read in a thread of its own, the frames that came
while one piece was being sent go on together as the next: a flood of output costs a few
round trips, and a line printed alone still goes the moment it comes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

#: Frames read ahead at most. Past that the reader waits, and so, through the engine, does
#: the step: output faster than Redis takes it is held back, never piled up in memory.
AHEAD = 64
#: The largest piece passed on, in bytes (more frames waiting go in the next piece).
PIECE_BYTES = 256 * 1024
#: How often a reader blocked on a full queue looks whether its reader still wants it.
STOP_CHECK_SECONDS = 0.1
_END = object()


def read_ahead(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield what ``chunks`` gives, read in a thread of its own, each yield joining what
    came since the last one until it holds :data:`PIECE_BYTES`.

    An error of ``chunks`` is raised here, after what came before it. A caller that stops
    early leaves the thread to drop the rest: it ends with ``chunks``.
    """
    arrived: queue.Queue[object] = queue.Queue(AHEAD)
    stopped = threading.Event()

    def put(item: object) -> bool:
        while not stopped.is_set():
            try:
                arrived.put(item, timeout=STOP_CHECK_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    break
            else:
                put(_END)
        except Exception as exc:  # noqa: BLE001 - the consumer's to raise, in its thread
            put(exc)

    threading.Thread(target=read, name="step-output", daemon=True).start()
    try:
        while True:
            parts, size, item = [], 0, arrived.get()
            while isinstance(item, bytes):
                parts.append(item)
                size += len(item)
                if size >= PIECE_BYTES:
                    break
                try:
                    item = arrived.get_nowait()
                except queue.Empty:
                    break
            if parts:
                yield b"".join(parts)
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
    finally:
        stopped.set()
