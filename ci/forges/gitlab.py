"""GitLab webhooks: ``Push Hook``, ``Tag Push Hook`` and ``Merge Request Hook``;
commit statuses through ``POST /projects/{url-encoded path}/statuses/{sha}``.

GitLab proves a webhook by echoing the secret token in ``X-Gitlab-Token`` (no
HMAC). Payload shapes follow GitLab's "Webhook events" documentation; see the
recorded deliveries in ``tests/fixtures/webhooks/gitlab``.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from ci.forges.payload import (ZERO_SHA, change_request, commit_sha, dig, object_at, push_trigger,
                               required)
from ci.forges.signatures import verify_token
from ci.forges.types import CommitStatus, Ignored, StatusRequest, Trigger, WebhookRejected
from ci.pipeline.status import Status

NAME = "gitlab"
ALIASES: tuple[str, ...] = ()
#: Self-hosted GitLab repos set ``https://HOST/api/v4`` instead.
DEFAULT_API_URL = "https://gitlab.com/api/v4"
#: Where a payload names the project (a merge request's target), to find its secret.
REPO_NAME_AT = ("project", "path_with_namespace")
PUSH_EVENTS = {"Push Hook", "Tag Push Hook"}
MR_EVENT = "Merge Request Hook"
#: ``update`` builds only when it brought commits (``oldrev`` is set); a new title does not.
MR_ACTIONS = {"open", "reopen", "update"}
#: GitLab's limit for ``description`` (and ``target_url``).
DESCRIPTION_LIMIT = 255
#: ``skipped`` exists only in newer GitLab releases, so a skipped build shows as a success.
STATES = {
    Status.QUEUED: "pending", Status.RUNNING: "running", Status.PASSED: "success",
    Status.FAILED: "failed", Status.ERRORED: "failed", Status.CANCELED: "canceled",
    Status.SKIPPED: "success",
}


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise 401 unless ``X-Gitlab-Token`` is this repository's webhook secret."""
    token = headers.get("X-Gitlab-Token")
    if not token:
        raise WebhookRejected(401, "X-Gitlab-Token header is missing; set the secret token "
                              "of the webhook to this repository's secret", "token_missing")
    if not verify_token(secret, token):
        raise WebhookRejected(401, "X-Gitlab-Token does not match this repository's secret",
                              "token_mismatch")


def parse(headers: Mapping[str, str], payload: dict[str, Any]) -> Trigger | Ignored:
    """Turn a verified GitLab delivery into a :class:`Trigger` or an :class:`Ignored`.

    ``Idempotency-Key`` stays the same when GitLab retries a delivery, so it is
    the delivery id that duplicates are recognised by.

    Raises:
        WebhookRejected: a required field is missing (400).
    """
    event = headers.get("X-Gitlab-Event", "")
    if not event:
        raise WebhookRejected(400, "X-Gitlab-Event header is missing", "missing_header")
    delivery = headers.get("Idempotency-Key") or headers.get("X-Gitlab-Event-UUID") or None
    if event in PUSH_EVENTS:
        return _push(payload, delivery)
    if event == MR_EVENT:
        return _merge_request(payload, delivery)
    return Ignored(f"event {event!r} does not trigger builds")


def _push(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    ref = required(payload, "ref")
    if payload.get("after") == ZERO_SHA:
        return Ignored(f"{ref} was deleted; nothing to build")
    # For an annotated tag ``after`` is the tag object; ``checkout_sha`` is its commit.
    sha = commit_sha(payload.get("checkout_sha") or required(payload, "after"))
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    head = next((c for c in commits if c.get("id") == sha), commits[-1] if commits else {})
    before = payload.get("before")
    web_url = dig(payload, "project", "web_url")
    compare = (f"{web_url}/-/compare/{before}...{sha}"
               if web_url and before and before != ZERO_SHA else None)
    return push_trigger(
        ref, repo=str(dig(payload, "project", "path_with_namespace")), sha=sha,
        delivery=delivery, message=head.get("message") or payload.get("message") or "",
        author=payload.get("user_username") or payload.get("user_name") or "",
        compare_url=compare,
    )


def _merge_request(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    attrs = object_at(payload, "object_attributes")
    action = attrs.get("action")
    if action not in MR_ACTIONS:
        return Ignored(f"merge request action {action!r} does not trigger builds")
    if action == "update" and not attrs.get("oldrev"):
        return Ignored("merge request update without new commits does not trigger builds")
    number, sha, target = change_request(
        attrs.get("iid"), dig(attrs, "last_commit", "id"), attrs.get("target_branch"),
        needs="merge request needs object_attributes.iid, last_commit.id and target_branch")
    return Trigger(
        repo=str(dig(payload, "project", "path_with_namespace")), event="pull_request",
        ref=f"refs/merge-requests/{number}/head", sha=sha, branch=target,
        pr_number=number, delivery=delivery, message=attrs.get("title") or "",
        author=dig(payload, "user", "username") or "", compare_url=attrs.get("url"),
        fork=attrs.get("source_project_id") != attrs.get("target_project_id"),
    )


def status_request(api_url: str, token: str, repo: str, sha: str,
                   status: CommitStatus) -> StatusRequest:
    """``POST {api}/projects/{owner%2Fname}/statuses/{sha}``, the context sent as ``name``."""
    state = "success" if status.allowed_failure else STATES[status.status]
    return StatusRequest(
        url=f"{api_url.rstrip('/')}/projects/{quote(repo, safe='')}/statuses/{sha}",
        headers={"PRIVATE-TOKEN": token},
        body={"state": state, "name": status.context, "target_url": status.target_url,
              "description": status.short_description(DESCRIPTION_LIMIT)},
    )
