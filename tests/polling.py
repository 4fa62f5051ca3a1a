"""Waiting without sleeping blind: poll a condition until it holds, or fail at a deadline.

Apart from ``conftest`` so that the benchmarks and the topology harness, which run
outside pytest too, wait the same way as the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail at the
    deadline with an error naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout:g}s")
