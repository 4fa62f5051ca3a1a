"""What a forge webhook means to Slipway, independent of the forge that sent it."""

from __future__ import annotations

from dataclasses import dataclass


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
