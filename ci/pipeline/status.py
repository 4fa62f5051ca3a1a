"""Build, job and step states, shared by the server and the runners."""

from enum import StrEnum


class Status(StrEnum):
    """Lifecycle of a build, a job or a step.

    ``queued → running → passed | failed | errored | canceled``; steps that never
    ran because an earlier one failed are ``skipped``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERRORED = "errored"
    CANCELED = "canceled"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)


# The build's status is the worst of its jobs' statuses, in this order.
SEVERITY = [
    Status.SKIPPED,
    Status.PASSED,
    Status.QUEUED,
    Status.RUNNING,
    Status.FAILED,
    Status.CANCELED,
    Status.ERRORED,
]


def worst(statuses: list[Status]) -> Status:
    """Return the most severe status of ``statuses`` (``passed`` when empty)."""
    return max(statuses, key=SEVERITY.index, default=Status.PASSED)
