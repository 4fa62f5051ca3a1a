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
#: Refs, branches and tags are kept in columns of 255; counted in UTF-8 bytes, the
#: strictest reading, so that SQLite and PostgreSQL accept the same ones.
MAX_REF_BYTES = 255
#: Control characters, which git refuses in a ref, and lone surrogates, which JSON can
#: carry (``"\ud800"``) but no database can store.
UNSTORABLE_IN_REF = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
#: Pull and merge request numbers are kept in 32-bit integer columns.
MAX_NUMBER = 2**31 - 1


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        WebhookRejected: the body is not JSON, nests arrays or objects deeper than the
            parser's recursion limit (no forge sends such a body), or is not an object (400).
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc}", "malformed_json") from None
    except RecursionError:
        raise WebhookRejected(400, "body is not valid JSON for Slipway: its arrays or objects "
                              "are nested too deeply to read", "malformed_json") from None
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
    if isinstance(number, bool) or not 0 < number <= MAX_NUMBER:
        raise WebhookRejected(400, f"the pull or merge request number must be from 1 to "
                              f"{MAX_NUMBER}", "invalid_number")
    return number, commit_sha(sha), ref_name(branch, "target branch")


def ref_name(value: str, what: str) -> str:
    """``value``, a ref or branch the payload names, when it can be stored; ``what`` names
    it in the 400 otherwise.

    Raises:
        WebhookRejected: ``value`` is over :data:`MAX_REF_BYTES` long or holds a character
            git refuses in a ref (400).
    """
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_REF_BYTES:
        raise WebhookRejected(400, f"{what} is {size} bytes long; Slipway keeps refs of at "
                              f"most {MAX_REF_BYTES} bytes (UTF-8)", "invalid_ref")
    if UNSTORABLE_IN_REF.search(value):
        raise WebhookRejected(400, f"{what} {value!r} holds a control character or a lone "
                              "surrogate, which git refuses in a ref", "invalid_ref")
    return value


def push_trigger(ref: str, **common: Any) -> Trigger | Ignored:
    """The build a push of ``ref`` asks for: a tag's or a branch's. Every forge names the
    pushed ref the git way, so only the ``common`` Trigger fields are its own.

    Raises:
        WebhookRejected: ``ref`` cannot be stored (400; see :func:`ref_name`).
    """
    ref = ref_name(ref, "ref")
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
