"""Gitea webhooks — and Forgejo's and Gogs', which speak the same dialect: ``push``
(branches and tags) and ``pull_request``; commit statuses through
``POST /repos/{owner}/{repo}/statuses/{sha}``.

Each fork renames the headers (``X-Gitea-*``, ``X-Forgejo-*``, ``X-Gogs-*``) but
signs the same way: the hex HMAC-SHA256 of the raw body. Payload shapes follow
the recorded deliveries in ``tests/fixtures/webhooks/gitea`` and ``…/gogs``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ci.forges.payload import (ZERO_SHA, commit_sha, dig, first_header, object_at,
                               pull_request_fields, push_trigger, required)
from ci.forges.signatures import verify_hex_signature
from ci.forges.types import (COMMIT_STATES, CommitStatus, Ignored, StatusRequest, Trigger,
                             WebhookRejected)

NAME = "gitea"
ALIASES: tuple[str, ...] = ("forgejo", "gogs")
#: Every Gitea is self-hosted: a repo that wants statuses sets ``https://HOST/api/v1``.
DEFAULT_API_URL = None
#: Where a payload names the repository, needed to find its secret.
REPO_NAME_AT = ("repository", "full_name")
SIGNATURE_HEADERS = ("X-Forgejo-Signature", "X-Gitea-Signature", "X-Gogs-Signature")
EVENT_HEADERS = ("X-Forgejo-Event", "X-Gitea-Event", "X-Gogs-Event")
#: The finer event type, e.g. ``pull_request_sync`` for new commits on a pull request.
EVENT_TYPE_HEADERS = ("X-Forgejo-Event-Type", "X-Gitea-Event-Type", "X-Gogs-Event-Type")
DELIVERY_HEADERS = ("X-Forgejo-Delivery", "X-Gitea-Delivery", "X-Gogs-Delivery")
PR_ACTIONS = {"opened", "synchronized", "reopened"}
#: Gitea stores descriptions as text; kept as short as GitLab's so they read well.
DESCRIPTION_LIMIT = 255
#: GitHub's four states; ``warning`` is how an allowed failure shows.
STATES = COMMIT_STATES


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise 401 unless the Forgejo, Gitea or Gogs signature header matches ``body``."""
    header = first_header(headers, SIGNATURE_HEADERS)
    if not header:
        raise WebhookRejected(401, "X-Gitea-Signature (or X-Forgejo-Signature, "
                              "X-Gogs-Signature) header is missing; set a secret on the "
                              "webhook", "signature_missing")
    if not verify_hex_signature(secret, body, header):
        raise WebhookRejected(401, "the webhook signature does not match the body for this "
                              "repository's secret", "signature_mismatch")


def parse(headers: Mapping[str, str], payload: dict[str, Any]) -> Trigger | Ignored:
    """Turn a verified Gitea, Forgejo or Gogs delivery into a :class:`Trigger` or an
    :class:`Ignored`.

    Raises:
        WebhookRejected: a required field is missing (400).
    """
    event = first_header(headers, EVENT_HEADERS)
    if not event:
        raise WebhookRejected(400, "X-Gitea-Event (or X-Forgejo-Event, X-Gogs-Event) header "
                              "is missing", "missing_header")
    if "pull_request_sync" in (event, first_header(headers, EVENT_TYPE_HEADERS)):
        event = "pull_request"
    delivery = first_header(headers, DELIVERY_HEADERS)
    if event == "push":
        return _push(payload, delivery)
    if event == "pull_request":
        return _pull_request(payload, delivery)
    if event == "create":
        return Ignored("create events do not trigger builds; the push of the new branch "
                       "or tag does")
    if event == "delete":
        return Ignored("delete events do not trigger builds; a deleted branch or tag has "
                       "nothing to build")
    return Ignored(f"event {event!r} does not trigger builds")


def _push(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    ref = required(payload, "ref")
    if payload.get("after") == ZERO_SHA:
        return Ignored(f"{ref} was deleted; nothing to build")
    sha = commit_sha(required(payload, "after"))
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    head = payload.get("head_commit") or next(
        (c for c in commits if str(c.get("id", "")).lower() == sha),
        commits[-1] if commits else {})
    pusher = payload.get("pusher") or {}
    author = (dig(head, "author", "username") or pusher.get("login")
              or pusher.get("username") or dig(head, "author", "name") or "")
    return push_trigger(
        ref, repo=str(dig(payload, "repository", "full_name")), sha=sha, delivery=delivery,
        message=head.get("message") or "", author=author,
        compare_url=payload.get("compare_url") or None,
    )


def _pull_request(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    action = payload.get("action")
    if action not in PR_ACTIONS:
        return Ignored(f"pull_request action {action!r} does not trigger builds")
    pr = object_at(payload, "pull_request")
    if "head" not in pr and "head_branch" in pr:
        return Ignored("Gogs pull request payloads name no commit; the push to the pull "
                       "request's branch builds it")
    number, sha, base_branch = pull_request_fields(payload, pr)
    user = pr.get("user") or {}
    return Trigger(
        repo=str(dig(payload, "repository", "full_name")), event="pull_request",
        ref=f"refs/pull/{number}/head", sha=sha, branch=base_branch,
        pr_number=number, delivery=delivery, message=pr.get("title") or "",
        author=user.get("login") or user.get("username") or "",
        compare_url=pr.get("html_url"), fork=_side(pr, "head") != _side(pr, "base"),
    )


def _side(pr: dict[str, Any], side: str) -> tuple[Any, Any]:
    """The repository a pull request's head or base is in, as (id, full name)."""
    return (dig(pr, side, "repo_id") or dig(pr, side, "repo", "id"),
            dig(pr, side, "repo", "full_name"))


def status_request(api_url: str, token: str, repo: str, sha: str,
                   status: CommitStatus) -> StatusRequest:
    """``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` (``api`` ends in ``/api/v1``)."""
    state = "warning" if status.allowed_failure else STATES[status.status]
    return StatusRequest(
        url=f"{api_url.rstrip('/')}/repos/{repo}/statuses/{sha}",
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
        body={"state": state, "target_url": status.target_url,
              "description": status.short_description(DESCRIPTION_LIMIT),
              "context": status.context},
    )
