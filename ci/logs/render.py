"""Turning log entries into what the build page shows: sections of numbered lines, as HTML.

The page and its live stream cut a log the same way, so that a page opened mid-job is
complete and then grows line by line:

- an ``out`` entry's HTML has one piece per line (:mod:`ci.logs.ansi` closes its spans
  at each line end); a last piece without its newline is a line still open, which the
  section's next ``out`` entry continues;
- Slipway's own lines (``info``) always stand on lines of their own;
- job-level lines (step -1) before any step or service began are the "Set up job"
  section, later ones the "Complete job" section at the end.

The page's script (``ci/static/live.js``) applies the same rules to the stream's entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

from ci.logs.ansi import AnsiToHtml
from ci.pipeline.logformat import END, INFO, OUT, SERVICE_SECTIONS_START, STEP, LogEntry

#: Keys of the job-level sections; a step's or a service's key is its index, as text.
SETUP, COMPLETE = "setup", "complete"
SECTION_NAMES = {SETUP: "Set up job", COMPLETE: "Complete job"}


def section_key(step: int, begun: bool) -> str:
    """The section a line of ``step`` belongs to, ``begun`` once a step or service began."""
    if step == -1:
        return COMPLETE if begun else SETUP
    return str(step)


def entry_time(entry_id: str) -> int:
    """When an entry was written, in whole seconds since the epoch: its stream id's time."""
    return int(entry_id.partition("-")[0]) // 1000


@dataclass
class Line:
    """One line: its HTML, whether Slipway wrote it, and its time when the second changed."""

    html: str
    info: bool = False
    time: int | None = None

    def markup(self) -> str:
        """The line as an item of its section's ``<ol>``: the least markup a numbered line
        can have (an item ends where the next begins; its number is the list's to count)."""
        attributes = ' class="info"' if self.info else ""
        if self.time is not None:
            attributes += f' data-t="{self.time}"'
        return f"<li{attributes}>{self.html}"


@dataclass
class Section:
    """The lines of one step, one service, or the job's own set-up or completion."""

    key: str
    name: str
    lines: list[Line] = field(default_factory=list)
    #: Its last line waits for the rest of it, in the section's next ``out`` entry.
    partial: bool = False
    #: The job-wide number of its first line (lines are numbered per job from 1).
    first_line: int = 1

    @property
    def step(self) -> int | None:
        """The step's (or service's) index in the log, None for a job-level section."""
        return int(self.key) if self.key not in SECTION_NAMES else None

    @property
    def html(self) -> str:
        return "".join(line.markup() for line in self.lines)

    def rank(self) -> tuple[int, int]:
        """Where the section stands: set-up, steps in order, services, completion."""
        if self.key == SETUP:
            return 0, 0
        if self.key == COMPLETE:
            return 3, 0
        step = int(self.key)
        return (2, -step) if step <= SERVICE_SECTIONS_START else (1, step)


class LogRenderer:
    """Renders entries in order; keeps ANSI state per step across calls.

    What a step's converter still holds when the step ends is a lone carriage return or
    an unfinished escape sequence, neither of which shows, so it is never flushed.
    """

    def __init__(self) -> None:
        self._converters: dict[int, AnsiToHtml] = {}

    def render(self, entry: LogEntry) -> str:
        """The HTML of the entry's text, a piece per line, each ending in a newline but the
        last when the line goes on in the next chunk; empty for entries without text."""
        if entry.kind == OUT:
            converter = self._converters.setdefault(entry.step, AnsiToHtml())
            return converter.feed(entry.data)
        if entry.kind == INFO:
            return escape(entry.data.rstrip("\n")) + "\n"
        return ""

    def payload(self, entry: LogEntry) -> dict[str, str | int]:
        """The entry as the live streams send it: its HTML, a step's name, the job's end."""
        payload: dict[str, str | int] = {"id": entry.id, "kind": entry.kind, "step": entry.step,
                                         "html": self.render(entry)}
        if entry.kind == STEP:
            payload["name"] = entry.data
        if entry.kind == END:
            payload["status"] = entry.data
        return payload


@dataclass
class JobLog:
    """A job's log as the build page shows it."""

    sections: list[Section]
    #: A step or service began: later job-level lines go to "Complete job".
    begun: bool


def job_log(entries: Iterable[LogEntry], planned: Sequence[str] = ()) -> JobLog:
    """The sections of a job's ``entries``, with a section for each ``planned`` step name
    (the steps the database knows, whether or not they printed yet)."""
    renderer = LogRenderer()
    by_key = {str(index): Section(str(index), name) for index, name in enumerate(planned)}
    begun = False
    last_time = None
    for entry in entries:
        if entry.kind == STEP:
            begun = True
            by_key.setdefault(str(entry.step), Section(str(entry.step), entry.data))
            continue
        html = renderer.render(entry)
        if not html:
            continue
        key = section_key(entry.step, begun)
        begun = begun or entry.step != -1
        section = by_key.setdefault(key, Section(key, SECTION_NAMES.get(key, "")))
        time = entry_time(entry.id)
        added = _add_lines(section, html, entry.kind == INFO, None if time == last_time else time)
        if added:
            last_time = time
    sections = sorted(by_key.values(), key=Section.rank)
    number = 1
    for section in sections:
        section.first_line = number
        number += len(section.lines)
    return JobLog(sections, begun)


def _add_lines(section: Section, html: str, info: bool, time: int | None) -> bool:
    """Append an entry's HTML to ``section``; whether it started a new line."""
    pieces = html.split("\n")
    ended = pieces[-1] == ""
    if ended:
        pieces.pop()
    if section.partial and not info and pieces:
        section.lines[-1].html += pieces.pop(0)
    section.lines.extend(Line(piece, info, time if number == 0 else None)
                         for number, piece in enumerate(pieces))
    section.partial = not ended
    return bool(pieces)
