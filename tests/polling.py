"""Waiting without sleeping blind: poll a condition until it holds, or fail at a deadline.

Apart from ``conftest`` so that the benchmarks and the topology harness, which run
outside pytest too, wait the same way as the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T | None:
    """Call ``predicate`` until it returns something truthy (returned), or give up at the
    deadline and return None: for waits whose end is not an error (a grace period)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
             what: str | Callable[[], str] = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail at the
    deadline with an error naming ``what`` was awaited (called then, when a function: it
    may gather what explains the failure, such as the logs of the processes involved)."""
    value = poll(predicate, timeout, interval)
    if value is None:
        raise AssertionError(f"{what() if callable(what) else what} not met within {timeout:g}s")
    return value
