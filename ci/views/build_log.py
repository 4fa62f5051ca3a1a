"""The jobs' logs as a build page shows them on arrival: sections folded the way a reader
wants them, and the cursor from which the page's live stream carries on.

Folding: a finished step that passed is folded; the running step is open, and so is a
step that failed, errored or was canceled; "Set up job" is open until a step begins
(or when the job ended before one did), "Complete job" unless the job passed. A finished
build that failed names the section to scroll to: its first failing step. A job whose log
retention removed says so, above its steps. A job's page shows its last
:data:`MAX_SHOWN_LINES` lines at most: a runaway log would make a page no browser can
scroll; the earlier ones are in the raw log, and each section says how many it leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from redis import Redis

from ci import store
from ci.builds import retention
from ci.logs import multiplex, rendered, storage
from ci.logs.multiplex import Position
from ci.logs.render import COMPLETE, SETUP, JobLog, Section, job_log
from ci.pipeline.status import Status
from ci.store.history import Attempt, AttemptStep
from ci.store.models import Build, Job, Step

#: Step states whose section is open: where the job is, or where it went wrong.
OPEN_STEP_STATES = {Status.RUNNING, Status.FAILED, Status.ERRORED, Status.CANCELED}
FAILING = {Status.FAILED, Status.ERRORED}
#: The most lines of one job a page shows (its last ones); about 800 KB of HTML.
MAX_SHOWN_LINES = 10_000


@dataclass(frozen=True)
class ShownSection:
    """One section of a job's log on the page, with its step from the database, if any."""

    section: Section
    step: Step | AttemptStep | None
    open: bool
    anchor: str
    #: How many of the section's first lines the page leaves out (:data:`MAX_SHOWN_LINES`).
    hidden_lines: int = 0


@dataclass(frozen=True)
class ShownJob:
    """A job's log on the page."""

    job: Job
    sections: list[ShownSection]
    begun: bool
    position: Position
    #: Every attempt of the job, oldest first (one, for a job that ran once).
    attempts: list[Attempt]
    #: The earlier attempt shown instead of the current one, if one was asked for.
    earlier: Attempt | None = None
    #: What the page says instead of the log, when retention removed it.
    removed: str | None = None


def shown_jobs(redis: Redis, log_dir: Path, build: Build, earlier: dict[int, int] | None,
               keep_days: int) -> list[ShownJob]:
    """Every job of ``build`` with its log, read as it is now; ``earlier`` maps a job's
    number to an earlier attempt to show instead of its current one (an unknown attempt
    shows the current one); ``keep_days`` is how long logs are kept, for the notice of a
    removed one."""
    shown = []
    for job in build.jobs:
        attempts = store.list_attempts(job)
        wanted = (earlier or {}).get(job.number)
        attempt = next((a for a in attempts if a.number == wanted and not a.current), None)
        removed = retention.removal_notice(job, build, keep_days)
        if attempt is None:
            status, job_steps = Status(job.status), list(job.steps)
        else:
            status, job_steps = attempt.status, list(attempt.steps)
        log, last = _log_of(redis, log_dir, job, attempt, [step.name for step in job_steps],
                            bool(removed))
        steps = {step.number - 1: step for step in job_steps}
        sections = [ShownSection(section, steps.get(section.step),
                                 _open(status, section, steps, log.begun),
                                 f"job-{job.number}-step-{section.key}", hidden)
                    for section, hidden in _last_lines(log.sections, MAX_SHOWN_LINES)]
        position = Position(job.attempt, last or multiplex.START)
        shown.append(ShownJob(job, sections, log.begun, position, attempts, attempt, removed))
    return shown


def _log_of(redis: Redis, log_dir: Path, job: Job, attempt: Attempt | None,
            planned: list[str], removed: bool) -> tuple[JobLog, str | None]:
    """The log shown for ``job`` (or its earlier ``attempt``) and its last entry's id; a
    finished job's archived log comes rendered from :mod:`ci.logs.rendered`."""
    if removed:  # the live stream of a log just removed may linger in Redis a while
        return job_log([], planned), None
    if attempt is None and job.log_archived:
        cached = rendered.archived_log(log_dir, job.id, planned)
        if cached is not None:
            return cached
    if attempt is None:
        entries = storage.read_all(redis, log_dir, job)
    else:
        entries = storage.read_attempt(log_dir, job.id, attempt.number) or []
    return job_log(entries, planned), entries[-1].id if entries else None


def _last_lines(sections: list[Section], most: int) -> list[tuple[Section, int]]:
    """The sections with only the job's last ``most`` lines, each with how many of its
    first lines were left out; copies, as the rendered log may be shared (cached)."""
    if sum(len(section.lines) for section in sections) <= most:
        return [(section, 0) for section in sections]
    kept: list[tuple[Section, int]] = []
    room = most
    for section in reversed(sections):
        shown = min(room, len(section.lines))
        room -= shown
        hidden = len(section.lines) - shown
        if hidden:
            section = replace(section, lines=section.lines[hidden:],
                              first_line=section.first_line + hidden)
        kept.append((section, hidden))
    return kept[::-1]


def cursor(jobs: list[ShownJob]) -> str:
    """Where the page's live stream takes over from the page."""
    return multiplex.format_cursor({shown.job.number: shown.position for shown in jobs})


def failure_anchor(build: Build, jobs: list[ShownJob]) -> str | None:
    """The section a finished, failed build's page scrolls to: the first failing step of
    a job that may not fail (else of any), or where its job's error is."""
    if Status(build.status) not in FAILING:
        return None
    failing = [shown for shown in jobs if Status(shown.job.status) in FAILING]
    failing.sort(key=lambda shown: shown.job.allow_failure)
    for shown in failing:
        for candidates in (
                [s for s in shown.sections if s.step is not None and s.step.status in FAILING],
                [s for s in shown.sections if s.section.key in (COMPLETE, SETUP) and s.open]):
            if candidates:
                return candidates[0].anchor
    return None


def _open(status: Status, section: Section, steps: dict[int, Step | AttemptStep],
          begun: bool) -> bool:
    if section.key == SETUP:
        return not begun and status not in (Status.PASSED, Status.SKIPPED)
    if section.key == COMPLETE:
        return status != Status.PASSED
    if section.step < 0:
        return False
    step = steps.get(section.step)
    if step is None:
        return status == Status.RUNNING
    return step.status in OPEN_STEP_STATES
