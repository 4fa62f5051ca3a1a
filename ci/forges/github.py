"""GitHub webhooks: ``push`` (branches and tags), ``pull_request`` and ``ping``.

Payload shapes follow GitHub's documented events; see the recorded deliveries in
``tests/fixtures/webhooks/github``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from ci.forges.types import Ignored, Trigger, WebhookRejected
from ci.signatures import verify_github_signature

NAME = "github"
ZERO_SHA = "0" * 40
SHA = re.compile(r"[0-9a-fA-F]{40}")
PR_ACTIONS = {"opened", "synchronize", "reopened"}


def repo_name(body: bytes) -> str:
    """The ``owner/name`` the webhook is about, needed to find its secret.

    Raises:
        WebhookRejected: the body is not JSON or names no repository (400).
    """
    payload = _json(body)
    name = _get(payload, "repository", "full_name")
    if not isinstance(name, str) or "/" not in name:
        raise WebhookRejected(400, "payload has no repository.full_name", "missing_field")
    return name


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise 401 unless ``X-Hub-Signature-256`` matches ``body`` for ``secret``."""
    header = headers.get("X-Hub-Signature-256")
    if not header:
        raise WebhookRejected(401, "X-Hub-Signature-256 header is missing; set a secret "
                              "on the webhook", "signature_missing")
    if not verify_github_signature(secret, body, header):
        raise WebhookRejected(401, "X-Hub-Signature-256 does not match the body for this "
                              "repository's secret", "signature_mismatch")


def parse(headers: Mapping[str, str], body: bytes) -> Trigger | Ignored:
    """Turn a verified GitHub delivery into a :class:`Trigger` or an :class:`Ignored`.

    Raises:
        WebhookRejected: malformed JSON or a required field is missing (400).
    """
    event = headers.get("X-GitHub-Event", "")
    if not event:
        raise WebhookRejected(400, "X-GitHub-Event header is missing", "missing_header")
    payload = _json(body)
    delivery = headers.get("X-GitHub-Delivery") or None
    if event == "ping":
        return Ignored("ping received; the webhook works")
    if event == "push":
        return _push(payload, delivery)
    if event == "pull_request":
        return _pull_request(payload, delivery)
    return Ignored(f"event {event!r} does not trigger builds")


def _push(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    ref = _required(payload, "ref")
    if payload.get("deleted") or payload.get("after") == ZERO_SHA:
        return Ignored(f"{ref} was deleted; nothing to build")
    sha = _sha(_required(payload, "after"))
    head = payload.get("head_commit") or {}
    author = (head.get("author") or {}).get("username") or (head.get("author") or {}).get("name")
    pusher = (payload.get("pusher") or {}).get("name") or ""
    common = dict(
        repo=repo_name_from(payload), ref=ref, sha=sha, delivery=delivery,
        message=head.get("message") or "", author=author or pusher,
        compare_url=payload.get("compare"),
    )
    if ref.startswith("refs/tags/"):
        return Trigger(event="tag", tag=ref.removeprefix("refs/tags/"), **common)
    if ref.startswith("refs/heads/"):
        return Trigger(event="push", branch=ref.removeprefix("refs/heads/"), **common)
    return Ignored(f"push to {ref} is neither a branch nor a tag")


def _pull_request(payload: dict[str, Any], delivery: str | None) -> Trigger | Ignored:
    action = payload.get("action")
    if action not in PR_ACTIONS:
        return Ignored(f"pull_request action {action!r} does not trigger builds")
    pr = payload.get("pull_request")
    if not isinstance(pr, dict):
        raise WebhookRejected(400, "payload has no pull_request object", "missing_field")
    number = payload.get("number", pr.get("number"))
    sha = _get(pr, "head", "sha")
    base_branch = _get(pr, "base", "ref")
    if not isinstance(number, int) or not isinstance(sha, str) or not isinstance(base_branch, str):
        raise WebhookRejected(400, "pull_request needs number, head.sha and base.ref",
                              "missing_field")
    sha = _sha(sha)
    head_repo = _get(pr, "head", "repo", "full_name")
    base_repo = _get(pr, "base", "repo", "full_name")
    return Trigger(
        repo=repo_name_from(payload), event="pull_request", ref=f"refs/pull/{number}/head",
        sha=sha, branch=base_branch, pr_number=number, delivery=delivery,
        message=pr.get("title") or "", author=(pr.get("user") or {}).get("login") or "",
        compare_url=pr.get("html_url"), fork=bool(head_repo and head_repo != base_repo),
    )


def repo_name_from(payload: dict[str, Any]) -> str:
    return str(_get(payload, "repository", "full_name"))


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc}", "malformed_json") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body must be a JSON object", "malformed_json")
    return payload


def _required(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookRejected(400, f"payload has no {key!r}", "missing_field")
    return value


def _sha(value: str) -> str:
    if not SHA.fullmatch(value):
        raise WebhookRejected(400, f"{value!r} is not a commit sha (40 hex digits)", "invalid_sha")
    return value.lower()


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
