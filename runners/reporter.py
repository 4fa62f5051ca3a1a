"""What a running job tells the world, and hears back from it: the seam of the job loop.

:class:`runners.worker.JobRun` reports through this interface only. On a runner it is
:class:`runners.publisher.Publisher`, which writes events and log chunks to Redis and
holds the job's lease there; ``slipway exec`` gives the same loop a terminal instead
(:mod:`runners.local_exec.terminal`), so the loop is written once and needs no server.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ci.pipeline.spec import EventType


class Reporter(Protocol):
    """Reports one attempt of one job; called from the job's threads.

    No method raises: the loop reports a job's result before it removes the job's
    containers, so a report that cannot be delivered must be kept or dropped, not thrown.
    """

    def keep_lease(self, on_lost: Callable[[], None]) -> None:
        """Hold the job for this run until :meth:`release`; ``on_lost()`` when another
        run takes it over (the job must stop)."""

    def watch_cancel(self, on_cancel: Callable[[str], None]) -> None:
        """Call ``on_cancel(who)`` once, as soon as someone asks the job to stop."""

    def release(self) -> None:
        """Stop holding and watching the job: its result has been reported."""

    def event(self, kind: EventType, **data: Any) -> None:
        """The job's progress: one of :class:`EventType`, with the data it documents."""

    def section(self, index: int, title: str) -> None:
        """Open a section of the log that is not a step (a service's output)."""

    def step_started(self, index: int, name: str) -> None:
        """Step ``index`` begins: its section opens and its start is reported."""

    def output(self, index: int, text: str) -> None:
        """A chunk of section ``index``'s output, as it comes; secrets are masked here."""

    def end_output(self, index: int) -> None:
        """Section ``index``'s output is complete (what masking held back is shown)."""

    def info(self, text: str, step: int = -1) -> None:
        """A line of Slipway's own in the section of ``step`` (-1: before the steps)."""

    def finished(self, status: str, error: str | None, step: int = -1) -> None:
        """The job ended with ``status``; ``error`` belongs to section ``step``."""

    def wait_sent(self) -> bool:
        """Wait until everything reported has left; False when some of it was lost."""
