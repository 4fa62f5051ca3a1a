"""How a finished build ended for the people told about it: failed, fixed or just passed.

"Fixed" compares with the previous build of the same branch (or pull request) that passed,
failed or errored: a canceled build says nothing about whether the branch works.
"""

from __future__ import annotations

from dataclasses import dataclass

from ci import store
from ci.pipeline.events import TRUSTED_EVENTS
from ci.pipeline.status import Status
from ci.store import Session
from ci.store.models import Build

#: What a hook may ask to hear of (``events``): every finished build, or only some.
ALWAYS, FAILURE, FIXED = "always", "failure", "fixed"
HOOK_EVENTS = (ALWAYS, FAILURE, FIXED)


@dataclass(frozen=True)
class Outcome:
    status: Status
    #: How the previous build of the branch ended; None when there was none.
    previous: Status | None

    @property
    def failed(self) -> bool:
        return self.status in store.FAILURES

    @property
    def fixed(self) -> bool:
        return self.status == Status.PASSED and self.previous in store.FAILURES

    @property
    def word(self) -> str:
        """``fixed`` for a fixing build, else the build's status (``failed``, ``passed``…)."""
        return "fixed" if self.fixed else str(self.status)


def outcome_of(session: Session, build: Build) -> Outcome:
    return Outcome(Status(build.status), store.previous_verdict(session, build))


def mails(build: Build, outcome: Outcome) -> bool:
    """Whether the repository's addresses are mailed: a failure or a fix of a push, a tag,
    a manual or a scheduled build (never of a pull request, whose author may be anyone)."""
    return build.event in TRUSTED_EVENTS and not build.fork and (outcome.failed or outcome.fixed)


def hook_hears(events: str, outcome: Outcome) -> bool:
    """Whether a hook asking for ``events`` is called for ``outcome``."""
    if events == FAILURE:
        return outcome.failed
    if events == FIXED:
        return outcome.fixed
    return True
