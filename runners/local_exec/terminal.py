"""The terminal side of ``slipway exec``: a job's log as it happens, in the runner's words.

:class:`TerminalReporter` is the job loop's :class:`~runners.reporter.Reporter` for a
terminal: a section per step (``--- step 1: test ---``, as in a build's ``log.txt``), the
step's output the moment the container prints it, then its exit code and duration.
Secrets are masked as a runner masks them before anything reaches Redis
(:class:`~ci.pipeline.masking.Masker`), and Slipway's own lines lose a URL's credentials.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Mapping, TextIO

from ci.pipeline.durations import human_duration
from ci.pipeline.masking import Masker
from ci.pipeline.redact import without_credentials
from ci.pipeline.spec import EventType
from ci.pipeline.status import Status

#: Select Graphic Rendition codes of the styles used.
_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
#: How each status is shown.
STATUS_STYLES = {Status.PASSED: ("green",), Status.FAILED: ("red", "bold"),
                 Status.ERRORED: ("red", "bold"), Status.CANCELED: ("yellow",),
                 Status.SKIPPED: ("dim",)}


def wants_color(stream: TextIO, no_color: bool, env: Mapping[str, str]) -> bool:
    """Colour for a terminal only, and never with ``--no-color`` or a non-empty ``NO_COLOR``
    (the convention of no-color.org), so that a file or a pipe gets plain text."""
    if no_color or env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Terminal:
    """Writes to ``stream`` at once (the output is live), styled when ``color``; safe to
    call from several threads (a Ctrl-C reports from its own).

    Writing never raises: the job loop reports its result before it removes the job's
    containers, so a reader gone away (``slipway exec | head``) must not stop it there.
    Once the stream is closed, what follows is dropped and the run goes on to its end.
    """

    def __init__(self, stream: TextIO, color: bool) -> None:
        self.stream = stream
        self.color = color
        self._lock = threading.Lock()
        #: Whether the last text written did not end its line.
        self._line_open = False
        self._closed = False

    def style(self, text: str, *styles: str) -> str:
        """``text`` in ``styles`` (names of :data:`_SGR`), or as it is without colour."""
        if not self.color or not styles:
            return text
        return f"\x1b[{';'.join(_SGR[name] for name in styles)}m{text}\x1b[0m"

    def write(self, text: str) -> None:
        """Output as it came (a step's), shown at once."""
        if text:
            with self._lock:
                self._put(text)

    def line(self, text: str, *styles: str) -> None:
        """A line of Slipway's own, styled as a whole, on a line of its own even after
        output that did not end its last line."""
        with self._lock:
            self._put(("\n" if self._line_open else "") + self.style(text, *styles) + "\n")

    def _put(self, text: str) -> None:
        if self._closed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe, or a stream closed here
            self._close()
            return
        self._line_open = not text.endswith("\n")

    def _close(self) -> None:
        """Drop all further output, and what the stream holds: at exit Python would try to
        write it again and complain (the documented way for a closed pipe)."""
        self._closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(devnull, self.stream.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)

    def info(self, text: str) -> None:
        """A ``[slipway]`` line, as the runner's own lines read in a build's log."""
        self.line(f"[slipway] {text}", "cyan")


class TerminalReporter:
    """Reports one job to a :class:`Terminal`; see :class:`~runners.reporter.Reporter`.

    Attributes:
        error: the job's error as shown (masked), once it finished.
        canceled_by: who asked the job to stop (Ctrl-C), or None.
    """

    def __init__(self, terminal: Terminal, secret_values: list[str]) -> None:
        self.terminal = terminal
        self.error: str | None = None
        self.canceled_by: str | None = None
        self._masker = Masker(list(secret_values))
        self._names: list[str] = []
        self._started: dict[int, float] = {}
        self._on_cancel: Callable[[str], None] | None = None
        self._cancel_lock = threading.Lock()

    def keep_lease(self, on_lost: Callable[[], None]) -> None:
        """Nothing to hold: no other runner can take a job that exists only here."""

    def watch_cancel(self, on_cancel: Callable[[str], None]) -> None:
        with self._cancel_lock:
            self._on_cancel, who = on_cancel, self.canceled_by
        if who is not None:
            on_cancel(who)

    def cancel(self, who: str) -> None:
        """Stop the job (it ends canceled, its containers removed), once."""
        with self._cancel_lock:
            if self.canceled_by is not None:
                return
            self.canceled_by, on_cancel = who, self._on_cancel
        self.terminal.info(f"stopping ({who}): the job's containers are being removed")
        if on_cancel is not None:
            on_cancel(who)

    def release(self) -> None:
        """Nothing to release (see :meth:`keep_lease`)."""

    def event(self, kind: EventType, **data: Any) -> None:
        """Shows what a step's end says; the other events are for a server's records."""
        if kind == EventType.STEPS_PLANNED:
            self._names = list(data["steps"])
            self.terminal.info(f"image {data['image']}")
        elif kind == EventType.STEP_FINISHED:
            self._step_finished(int(data["step"]), Status(data["status"]), data["exit_code"])

    def section(self, index: int, title: str) -> None:
        self.terminal.line(f"--- {title} ---", "bold")

    def step_started(self, index: int, name: str) -> None:
        self._started[index] = time.monotonic()
        self.terminal.line(f"--- step {index + 1}: {name} ---", "bold")

    def output(self, index: int, text: str) -> None:
        self.terminal.write(self._masker.feed(text))

    def end_output(self, index: int) -> None:
        self.terminal.write(self._masker.flush())

    def info(self, text: str, step: int = -1) -> None:
        self.terminal.info(self._masker.mask(without_credentials(text)))

    def finished(self, status: str, error: str | None, step: int = -1) -> None:
        if error:
            self.error = self._masker.mask(without_credentials(error))
            self.terminal.line(f"[slipway] {self.error}", *STATUS_STYLES[Status(status)])

    def wait_sent(self) -> bool:
        """Everything was written as it came."""
        return True

    def _step_finished(self, index: int, status: Status, exit_code: int | None) -> None:
        name = self._names[index] if index < len(self._names) else str(index + 1)
        title = f"step {index + 1}: {name} {status}"
        started = self._started.get(index)
        if started is not None:
            took = human_duration(time.monotonic() - started)
            ended = f": exit code {exit_code} in" if exit_code is not None else " after"
            title += f"{ended} {took}"
        self.terminal.line(f"--- {title} ---", *STATUS_STYLES[status])
