"""What a forge webhook means to Slipway, and what Slipway tells a forge about a commit,
independent of the forge; :class:`Forge` is the contract each forge module meets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ci.pipeline.status import Status

#: Slipway's states in the four-state status API GitHub and Gitea share: a cancel shows
#: as an error, a skip as a success.
COMMIT_STATES = {
    Status.QUEUED: "pending", Status.RUNNING: "pending", Status.PASSED: "success",
    Status.FAILED: "failure", Status.ERRORED: "error", Status.CANCELED: "error",
    Status.SKIPPED: "success",
}


class WebhookRejected(Exception):
    """The request is not a webhook Slipway can accept (answered 4xx with ``message``)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Ignored:
    """A valid webhook that needs no build (a ping, a branch deletion, a closed PR)."""

    reason: str


@dataclass(frozen=True)
class Trigger:
    """A valid webhook that asks for a build of one commit.

    ``repo`` is the full name of the repository the hook is registered for (the
    pull request's base); the clone URL always comes from the registered repo,
    never from the payload.
    """

    repo: str
    event: str
    ref: str
    sha: str
    branch: str | None = None
    tag: str | None = None
    pr_number: int | None = None
    message: str = ""
    author: str = ""
    compare_url: str | None = None
    delivery: str | None = None
    fork: bool = False


@dataclass(frozen=True)
class CommitStatus:
    """One status to show on a commit, before a forge's own vocabulary is applied.

    ``allowed_failure`` marks a job that failed but may (its build still passes):
    each forge shows that the least alarming way it can.
    """

    status: Status
    context: str
    description: str
    target_url: str
    allowed_failure: bool = False

    def short_description(self, limit: int) -> str:
        """The description cut to ``limit`` characters; forges reject longer ones (422)."""
        text = " ".join(self.description.split())
        return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class StatusRequest:
    """The HTTP request that puts a :class:`CommitStatus` on a forge (sent as JSON)."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"


class Forge(Protocol):
    """What a forge module in ``ci/forges`` provides; the modules are the implementations.

    ``NAME`` is what repos register as, ``ALIASES`` further webhook paths served by
    the same module (Forgejo and Gogs speak Gitea's dialect), ``DEFAULT_API_URL``
    the API base when a repo sets none (None: the repo must set one), ``REPO_NAME_AT``
    the keys under which a payload names the repository (to find its secret).
    """

    NAME: str
    ALIASES: tuple[str, ...]
    DEFAULT_API_URL: str | None
    REPO_NAME_AT: tuple[str, ...]

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise :class:`WebhookRejected` (401) unless the request proves it knows ``secret``."""

    def parse(self, headers: Mapping[str, str], payload: dict[str, Any]) -> Trigger | Ignored:
        """A verified webhook as a build to make or a reason not to (400 when malformed)."""

    def status_request(self, api_url: str, token: str, repo: str, sha: str,
                       status: CommitStatus) -> StatusRequest:
        """The request that reports ``status`` for commit ``sha`` of ``repo``."""
