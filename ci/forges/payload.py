"""Reading webhook bodies: the checks every forge's payloads need, with 400 answers,
and the readings of a push and a pull request that the forges share."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from ci.forges.types import Ignored, Trigger, WebhookRejected

#: The ``after`` sha of a push that deleted its ref.
ZERO_SHA = "0" * 40
SHA = re.compile(r"[0-9a-fA-F]{40}")


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        WebhookRejected: the body is not JSON, or not an object (400).
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc}", "malformed_json") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body must be a JSON object", "malformed_json")
    return payload


def full_name_at(payload: dict[str, Any], *path: str) -> str:
    """The ``owner/name`` at ``path`` in the payload, needed to find the repo's secret.

    Raises:
        WebhookRejected: the payload has no such name (400).
    """
    name = dig(payload, *path)
    if not isinstance(name, str) or "/" not in name:
        raise WebhookRejected(400, f"payload has no {'.'.join(path)}", "missing_field")
    return name


def required(payload: dict[str, Any], key: str) -> str:
    """``payload[key]`` as a non-empty string, or a 400 naming the key."""
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookRejected(400, f"payload has no {key!r}", "missing_field")
    return value


def commit_sha(value: Any) -> str:
    """A full commit sha, lower-cased; anything else is a 400 (it reaches ``git`` later)."""
    if not isinstance(value, str) or not SHA.fullmatch(value):
        raise WebhookRejected(400, f"{value!r} is not a commit sha (40 hex digits)", "invalid_sha")
    return value.lower()


def object_at(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """``payload[key]`` as an object, or a 400 naming the key: a pull or merge request
    event keeps all its details in one such object."""
    value = payload.get(key)
    if not isinstance(value, dict):
        raise WebhookRejected(400, f"payload has no {key} object", "missing_field")
    return value


def pull_request_fields(payload: dict[str, Any], pr: dict[str, Any]) -> tuple[int, str, str]:
    """The number, head commit and base branch of ``pr``, the ``pull_request`` object of
    ``payload`` in the dialect GitHub and Gitea (Forgejo, Gogs) share.

    Raises:
        WebhookRejected: one is missing (400), or the head is not a commit sha (400).
    """
    return change_request(payload.get("number", pr.get("number")), dig(pr, "head", "sha"),
                          dig(pr, "base", "ref"),
                          needs="pull_request needs number, head.sha and base.ref")


def change_request(number: Any, sha: Any, branch: Any, needs: str) -> tuple[int, str, str]:
    """A pull or merge request's number, head commit and target branch, checked: each
    forge keeps them under other keys, so ``needs`` is the 400's message naming its keys.

    Raises:
        WebhookRejected: one is missing (400), or ``sha`` is not a commit sha (400).
    """
    if not isinstance(number, int) or not isinstance(sha, str) or not isinstance(branch, str):
        raise WebhookRejected(400, needs, "missing_field")
    return number, commit_sha(sha), branch


def push_trigger(ref: str, **common: Any) -> Trigger | Ignored:
    """The build a push of ``ref`` asks for: a tag's or a branch's. Every forge names the
    pushed ref the git way, so only the ``common`` Trigger fields are its own."""
    if ref.startswith("refs/tags/"):
        return Trigger(event="tag", ref=ref, tag=ref.removeprefix("refs/tags/"), **common)
    if ref.startswith("refs/heads/"):
        return Trigger(event="push", ref=ref, branch=ref.removeprefix("refs/heads/"), **common)
    return Ignored(f"push to {ref} is neither a branch nor a tag")


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]…``, or None where a level is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The value of the first of ``names`` present in ``headers`` (forks of a forge rename them)."""
    return next((headers[name] for name in names if headers.get(name)), None)
