"""Turning log entries into what the build page shows: one section per step, as HTML.

The same renderer serves the first page load (every line so far) and the live
stream (each new chunk), so a page opened mid-job is complete and then live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from ci.logs.ansi import AnsiToHtml
from ci.pipeline.logformat import END, INFO, OUT, STEP, LogEntry


@dataclass
class Section:
    """The output of one step (``step`` -1 holds Slipway's own lines)."""

    step: int
    name: str
    html: list[str] = field(default_factory=list)


class LogRenderer:
    """Renders entries in order; keeps ANSI state per step across calls."""

    def __init__(self) -> None:
        self._converters: dict[int, AnsiToHtml] = {}

    def render(self, entry: LogEntry) -> str:
        """The HTML to append to ``entry``'s section (empty for step headers)."""
        if entry.kind == OUT:
            converter = self._converters.setdefault(entry.step, AnsiToHtml())
            return converter.feed(entry.data)
        if entry.kind == INFO:
            return f'<span class="slipway-info">{escape(entry.data)}</span>\n'
        if entry.kind == STEP:
            previous = self._converters.pop(entry.step - 1, None)
            return previous.flush() if previous else ""
        if entry.kind == END:
            return "".join(converter.flush() for converter in self._converters.values())
        return ""

    def sections(self, entries: list[LogEntry]) -> list[Section]:
        """Group ``entries`` into sections, in the order they started."""
        by_step: dict[int, Section] = {-1: Section(-1, "setup")}
        for entry in entries:
            if entry.kind == STEP:
                by_step.setdefault(entry.step, Section(entry.step, entry.data))
                continue
            html = self.render(entry)
            if html:
                by_step.setdefault(entry.step, Section(entry.step, f"step {entry.step + 1}"))
                by_step[entry.step].html.append(html)
        return list(by_step.values())
