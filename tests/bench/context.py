"""What the sections of one bench run share: the temporary directory, the repository that
is built, the floors (measured once, on first need) and the stack under measurement.

One stack runs at a time: a section asking for a kind of stack other than the running one
stops it first, so no idle Slipway shares the machine with a measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from tests.bench.common import TinyRepo
from tests.bench.stack import Stack
from tests.bench.table import Figure

T = TypeVar("T")


@dataclass
class Result:
    """A section's figures, the load average before it, and the lines that say where its
    time goes (written under "Where the time goes" when a figure misses its target)."""

    section: str
    load: float
    figures: list[Figure] = field(default_factory=list)
    breakdown: list[str] = field(default_factory=list)
    error: str = ""


class Context:
    """The run's shared state; :meth:`close` stops whatever still runs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.repo = TinyRepo(workdir / "tiny")
        self._cached: dict[str, object] = {}
        self._stack: tuple[str, Stack] | None = None
        self._stacks = 0

    def once(self, name: str, measure: Callable[[Context], T]) -> T:
        """``measure(self)`` the first time ``name`` is asked for; its result after."""
        if name not in self._cached:
            self._cached[name] = measure(self)
        return cast(T, self._cached[name])

    def stack(self, kind: str, runners: int = 0, database_url: str = "") -> Stack:
        """The running stack if it is of ``kind``; else a fresh one, the other stopped."""
        if self._stack and self._stack[0] == kind:
            return self._stack[1]
        self.close()
        self._stacks += 1
        stack = Stack(self.workdir / f"{self._stacks}-{kind}", self.repo, runners, database_url)
        stack.__enter__()
        self._stack = (kind, stack)
        return stack

    def close(self) -> None:
        """Stop the running stack, if any."""
        if self._stack:
            self._stack[1].stop()
            self._stack = None
