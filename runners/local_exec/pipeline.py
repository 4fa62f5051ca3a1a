"""Runs a :class:`~runners.local_exec.plan.Plan`'s jobs on this machine and sums them up.

The jobs run one after the other, so that each one's output reads in one piece. The
pipeline's result is the server's: the worst of its jobs, a job allowed to fail counting
as passed. Ctrl-C (or SIGTERM) stops the running job as a cancel stops a runner's (its
containers and network are removed) and starts no other.
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from ci.pipeline.config import allows_failure, cell_name
from ci.pipeline.durations import human_duration
from ci.pipeline.spec import JobSpec, Limits
from ci.pipeline.status import Status, worst
from runners import job_network
from runners.artifacts import FolderDestination
from runners.local_exec.job import EXEC_JOB_ID, LocalJobRun
from runners.local_exec.plan import Plan
from runners.local_exec.terminal import STATUS_STYLES, Terminal, TerminalReporter
from runners.local_exec.tree import WorkingTree
from runners.settings import RunnerSettings
from runners.worker import wait_for_cleanups

log = logging.getLogger(__name__)

#: The statuses a job allowed to fail may end with without failing the pipeline.
FAILURES = (Status.FAILED, Status.ERRORED)
#: A run stopped by a signal exits as a shell reports a process that signal ended.
SIGNALED_EXIT_CODE_BASE = 128


@dataclass(frozen=True)
class JobDefaults:
    """What every job gets from this host's Slipway settings, as a server's jobs do."""

    image: str
    timeout_seconds: int
    limits: Limits


@dataclass(frozen=True)
class JobResult:
    """How one job (one matrix cell) ended."""

    cell: dict[str, str]
    status: Status
    seconds: float
    allow_failure: bool
    error: str | None


@dataclass(frozen=True)
class Outcome:
    """How the whole run ended."""

    status: Status
    jobs: list[JobResult]
    #: The signal that stopped the run (SIGINT for Ctrl-C), or None.
    stopped_by: signal.Signals | None = None

    @property
    def exit_code(self) -> int:
        """0 when the pipeline passed (or its ``when`` skipped it), 1 when it failed,
        128 + the signal's number when one stopped it (130 for Ctrl-C)."""
        if self.stopped_by is not None:
            return SIGNALED_EXIT_CODE_BASE + self.stopped_by
        return 0 if self.status in (Status.PASSED, Status.SKIPPED) else 1


class LocalPipeline:
    """One ``slipway exec`` run: its plan, where its jobs' defaults and runner settings
    come from, and the terminal it reports to."""

    def __init__(self, tree: WorkingTree, plan: Plan, defaults: JobDefaults,
                 settings: RunnerSettings, terminal: Terminal,
                 artifacts_dir: Path | None = None) -> None:
        self.tree = tree
        #: Where the jobs' artifacts are copied (``--artifacts``); None: not kept.
        self.artifacts_dir = artifacts_dir
        self.plan = plan
        self.defaults = defaults
        self.settings = settings
        self.terminal = terminal
        #: The reporter of the job running now, which a Ctrl-C cancels.
        self._current: TerminalReporter | None = None
        #: The signal that stopped the run, or None.
        self._stopped_by: signal.Signals | None = None

    def run(self) -> Outcome:
        """Run every job of the plan; the result is also shown, job by job and summed up."""
        started = time.monotonic()
        self._introduce()
        if self.plan.skipped:
            self.terminal.info(self.plan.skipped)
            return Outcome(Status.SKIPPED, [])
        work_dir = Path(tempfile.mkdtemp(prefix="slipway-exec-"))
        results: list[JobResult] = []
        try:
            with self._stoppable():
                for number, cell in enumerate(self.plan.cells, start=1):
                    # The jobs share an id (none of a server's); each has a folder of its own.
                    settings = replace(self.settings, work_dir=work_dir / str(number))
                    results.append(self._job(number, cell, settings))
        finally:
            wait_for_cleanups()  # the jobs' containers and networks, before their rules
            shutil.rmtree(work_dir, ignore_errors=True)
            _remove_rules()
        counted = [Status.PASSED if job.allow_failure and job.status in FAILURES else job.status
                   for job in results]
        outcome = Outcome(worst(counted), results, self._stopped_by)
        self._summary(outcome, time.monotonic() - started)
        return outcome

    def _introduce(self) -> None:
        tree, plan = self.tree, self.plan
        at = (f"{'branch ' + tree.branch if tree.branch else 'detached HEAD'} at "
              f"{tree.head[:12]}" if tree.head else "no commit yet")
        changes = ", uncommitted changes included" if tree.changed else ""
        self.terminal.info(f"{tree.root}: {at}{changes}")
        for note in plan.notes:
            self.terminal.info(note)
        count = len(plan.cells)
        jobs = f"{count} jobs, one after the other" if count > 1 else "1 job"
        self.terminal.info(f"event {plan.event} on branch {plan.branch or '(none)'}: {jobs}")

    def _job(self, number: int, cell: dict[str, str], settings: RunnerSettings) -> JobResult:
        allowed = allows_failure(self.plan.pipeline, cell)
        if self._stopped_by is not None:
            return JobResult(cell, Status.CANCELED, 0.0, allowed,
                             f"not started: canceled by {_who(self._stopped_by)}")
        title = f"job {number}/{len(self.plan.cells)}: {cell_name(cell) or 'default'}"
        self.terminal.line(f"=== {title}{' (allowed to fail)' if allowed else ''} ===", "bold")
        reporter = TerminalReporter(self.terminal, list(self.plan.secrets.values()))
        started = time.monotonic()
        self._current = reporter
        try:
            status = Status(LocalJobRun(self._spec(cell), settings, reporter, self.tree,
                                        self.plan.pipeline, self.plan.secrets,
                                        self._kept_files(cell)).run())
        finally:
            self._current = None
        took = time.monotonic() - started
        self.terminal.line(f"=== {title} {status} in {human_duration(took)} ===",
                           *STATUS_STYLES[status])
        return JobResult(cell, status, took, allowed, reporter.error)

    def _kept_files(self, cell: dict[str, str]) -> FolderDestination | None:
        """Where a job's artifacts go: the ``--artifacts`` folder, in a folder named after
        the job's cell when the plan has several (``PYTHON=3.12_DB=sqlite``)."""
        if self.artifacts_dir is None:
            return None
        if len(self.plan.cells) == 1:
            return FolderDestination(self.artifacts_dir)
        return FolderDestination(self.artifacts_dir / re.sub(r"[^\w.=-]+", "_", cell_name(cell)))

    def _spec(self, cell: dict[str, str]) -> JobSpec:
        """The job as a runner would receive it, with what a local run can say of itself."""
        tree, plan = self.tree, self.plan
        ref = f"refs/heads/{plan.branch}" if plan.branch else "HEAD"
        env = {
            "CI": "true", "SLIPWAY": "true", "SLIPWAY_EXEC": "true",
            "SLIPWAY_REPO": tree.root.name, "SLIPWAY_BUILD_NUMBER": "", "SLIPWAY_ATTEMPT": "1",
            "SLIPWAY_BUILD_URL": "", "SLIPWAY_COMMIT": tree.head or "", "SLIPWAY_REF": ref,
            "SLIPWAY_EVENT": plan.event, "SLIPWAY_BRANCH": plan.branch or "", "SLIPWAY_TAG": "",
            "SLIPWAY_PULL_REQUEST": "",
        }
        return JobSpec(job_id=EXEC_JOB_ID, attempt=1, build_id=0, repo=tree.root.name,
                       clone_url=str(tree.root), sha=tree.head or "", ref=ref, event=plan.event,
                       branch=plan.branch, cell=cell, env=env,
                       default_image=self.defaults.image,
                       timeout_seconds=self.defaults.timeout_seconds, limits=self.defaults.limits)

    @contextmanager
    def _stoppable(self) -> Iterator[None]:
        """While the jobs run, Ctrl-C and SIGTERM cancel the running job and the rest."""
        def stop(number: int, _frame: FrameType | None) -> None:
            self._stopped_by = self._stopped_by or signal.Signals(number)
            reporter = self._current
            if reporter is not None:  # Docker is called from a thread, not from a handler
                threading.Thread(target=reporter.cancel, args=(_who(number),),
                                 name="exec-cancel", daemon=True).start()

        previous = {number: signal.signal(number, stop)
                    for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _summary(self, outcome: Outcome, seconds: float) -> None:
        names = [cell_name(job.cell) or "default" for job in outcome.jobs]
        width = max(map(len, names), default=0)
        self.terminal.line("=== summary ===", "bold")
        for name, job in zip(names, outcome.jobs):
            allowed = " (allowed to fail)" if job.allow_failure else ""
            error = f"  {job.error}" if job.error else ""
            self.terminal.line(f"{job.status:<8}  {name:<{width}}  "
                               f"{human_duration(job.seconds):>7}{allowed}{error}",
                               *STATUS_STYLES[job.status])
        counts = Counter(job.status for job in outcome.jobs)
        tally = ", ".join(f"{count} {status}" for status, count in counts.items())
        self.terminal.line(f"pipeline {outcome.status} in {human_duration(seconds)}: {tally}",
                           "bold", *STATUS_STYLES[outcome.status])


def _who(number: int) -> str:
    """Who stopped the run, as a job's error says it: ``canceled by Ctrl-C``."""
    return "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name


def _remove_rules() -> None:
    """Leave the host's firewall as a stopping runner does: the job network's rules go
    unless another job's network still needs them."""
    try:
        job_network.remove_rules()
    except job_network.JobNetworkError as exc:
        log.warning("the job network's firewall rules were not removed: %s", exc)
