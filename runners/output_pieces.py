"""A step's output passed on from a thread of its own, in as few pieces as it came.

The engine streams a step's output in frames of at most 32 KiB, and each piece passed on
is one round trip to Redis. Sent from the thread that reads the engine, a step printing
megabytes waits on every one of those round trips in turn. Sent from a thread of its own,
the frames read while one piece was on its way go on together as the next: a flood of
output costs a few round trips, and a line printed alone still goes the moment it comes.
The engine's stream itself stays with the thread that opened it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Frames waiting at most. Past that the reader waits, and so, through the engine, does
#: the step: output faster than Redis takes it is held back, never piled up in memory.
AHEAD = 64
#: A piece is passed on once it holds this many bytes (more frames waiting go in the next).
PIECE_BYTES = 256 * 1024


@contextmanager
def sent_in_pieces(send: Callable[[bytes], None]) -> Iterator[Callable[[bytes], None]]:
    """Give a function that queues a chunk for ``send``, which a thread of its own calls
    with what was queued since its last call, joined. Leaving the block waits until all is
    sent, then raises what ``send`` raised, if nothing else is being raised."""
    sender = _Sender(send)
    try:
        yield sender.put
    finally:
        sender.finish()
    if sender.error is not None:
        raise sender.error


class _Sender:
    def __init__(self, send: Callable[[bytes], None]) -> None:
        self._send = send
        self._queue: queue.Queue[bytes | None] = queue.Queue(AHEAD)
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="step-output", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        # After a failed send the queue is still drained, so that no put waits forever.
        ended = False
        while not ended:
            parts, size, item = [], 0, self._queue.get()
            while item is not None:
                parts.append(item)
                size += len(item)
                if size >= PIECE_BYTES:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            ended = item is None
            if parts and self.error is None:
                try:
                    self._send(b"".join(parts))
                except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
                    self.error = exc
