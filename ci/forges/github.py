"""GitHub webhooks: ``push`` (branches and tags), ``pull_request`` and ``ping``;
commit statuses through ``POST /repos/{owner}/{repo}/statuses/{sha}``.

Payload shapes follow GitHub's documented events; see the recorded deliveries in
``tests/fixtures/webhooks/github``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ci.forges.payload import (ZERO_SHA, commit_sha, dig, object_at, pull_request_fields,
                               push_trigger, required)
from ci.forges.signatures import verify_github_signature
from ci.forges.types import (COMMIT_STATES, CommitStatus, Ignored, StatusRequest, Trigger,
                             WebhookRejected)

NAME = "github"
ALIASES: tuple[str, ...] = ()
#: GitHub Enterprise Server repos set ``https://HOST/api/v3`` instead.
DEFAULT_API_URL = "https://api.github.com"
#: Where a payload names the repository, needed to find its secret.
REPO_NAME_AT = ("repository", "full_name")
PR_ACTIONS = {"opened", "synchronize", "reopened"}
#: GitHub answers 422 to a longer status description.
DESCRIPTION_LIMIT = 140
#: GitHub knows only four states.
STATES = COMMIT_STATES


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise 401 unless ``X-Hub-Signature-256`` matches ``body`` for ``secret``."""
    header = headers.get("X-Hub-Signature-256")
    if not header:
        raise WebhookRejected(401, "X-Hub-Signature-256 header is missing; set a secret "
                              "on the webhook", "signature_missing")
    if not verify_github_signature(secret, body, header):
        raise WebhookRejected(401, "X-Hub-Signature-256 does not match the body for this "
                              "repository's secret", "signature_mismatch")


def parse(headers: Mapping[str, str], payload: dict[str, Any]) -> Trigger | Ignored:
    """Turn a verified GitHub delivery into a :class:`Trigger` or an :class:`Ignored`.

    Raises:
        WebhookRejected: a required field is missing (400).
    """
    event = headers.get("X-GitHub-Event", "")
    if not event:
        raise WebhookRejected(400, "X-GitHub-Event header is missing", "missing_header")
    delivery = headers.get("X-GitHub-Delivery") or None
    if event == "ping":
        return Ignored("ping received; the webhook works")
    if event == "push":
        return _push(payload, delivery)
    if event == "pull_request":
        return _pull_request(payload, delivery)
    return Ignored(f"event {event!r} does not trigger builds")


def _push(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    ref = required(payload, "ref")
    if payload.get("deleted") or payload.get("after") == ZERO_SHA:
        return Ignored(f"{ref} was deleted; nothing to build")
    sha = commit_sha(required(payload, "after"))
    head = payload.get("head_commit") or {}
    author = (head.get("author") or {}).get("username") or (head.get("author") or {}).get("name")
    pusher = (payload.get("pusher") or {}).get("name") or ""
    return push_trigger(
        ref, repo=repo_name_from(payload), sha=sha, delivery=delivery,
        message=head.get("message") or "", author=author or pusher,
        compare_url=payload.get("compare"),
    )


def _pull_request(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    action = payload.get("action")
    if action not in PR_ACTIONS:
        return Ignored(f"pull_request action {action!r} does not trigger builds")
    pr = object_at(payload, "pull_request")
    number, sha, base_branch = pull_request_fields(payload, pr)
    head_repo = dig(pr, "head", "repo", "full_name")
    base_repo = dig(pr, "base", "repo", "full_name")
    return Trigger(
        repo=repo_name_from(payload), event="pull_request", ref=f"refs/pull/{number}/head",
        sha=sha, branch=base_branch, pr_number=number, delivery=delivery,
        message=pr.get("title") or "", author=(pr.get("user") or {}).get("login") or "",
        compare_url=pr.get("html_url"), fork=bool(head_repo and head_repo != base_repo),
    )


def repo_name_from(payload: dict[str, Any]) -> str:
    return str(dig(payload, "repository", "full_name"))


def status_request(api_url: str, token: str, repo: str, sha: str,
                   status: CommitStatus) -> StatusRequest:
    """``POST {api}/repos/{owner}/{repo}/statuses/{sha}``; an allowed failure is a success."""
    state = "success" if status.allowed_failure else STATES[status.status]
    return StatusRequest(
        url=f"{api_url.rstrip('/')}/repos/{repo}/statuses/{sha}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                 "X-GitHub-Api-Version": "2022-11-28"},
        body={"state": state, "target_url": status.target_url,
              "description": status.short_description(DESCRIPTION_LIMIT),
              "context": status.context},
    )
