"""``POST /hooks/<forge>``: verify, record, enqueue, answer 202 — in milliseconds.

No git, Docker or forge call happens here; the build row is committed before
the enqueue, so an unreachable Redis still yields 202 and a build that runs later.
"""

from __future__ import annotations

from flask import Blueprint, request

from ci import forges
from ci.accounts import webhook_secrets
from ci.builds import service
from ci.forges.payload import full_name_at, json_object
from ci.forges.types import Forge, Ignored, WebhookRejected
from ci.store import intake
from ci.store.models import Repo
from ci.views.errors import json_error
from ci.views.resources import redis, session, settings
from ci.views.webhook_timing import time_requests

bp = Blueprint("hooks", __name__)
time_requests(bp)


@bp.post("/hooks/<name>")
def receive(name: str):
    """Any forge's webhook: the forge module named in the path reads it."""
    forge = forges.get(name)
    if forge is None:
        return json_error(404, f"no forge is called {name!r}; point the webhook at "
                          f"/hooks/ followed by one of {', '.join(forges.FORGES)}",
                          "unknown_forge")
    body = request.get_data(cache=False)
    try:
        payload = json_object(body)
        repo = _verified_repo(forge, full_name_at(payload, *forge.REPO_NAME_AT), body)
        outcome = forge.parse(request.headers, payload)
    except WebhookRejected as rejected:
        return json_error(rejected.status, rejected.message, rejected.code)
    if isinstance(outcome, Ignored):
        return {"status": "ignored", "reason": outcome.reason}, 200
    base = settings().base_url
    accepted = service.accept(session(), redis(), settings(), repo, outcome)
    build = accepted.build
    url = f"{base}/{repo.full_name}/builds/{build.number}"
    if not accepted.created:
        return {"status": "duplicate", "reason": "this delivery was received before",
                "build": {"id": build.id, "number": build.number, "url": url}}, 200
    if accepted.skipped:
        return {"status": "skipped", "reason": build.error,
                "build": {"id": build.id, "number": build.number, "url": url}}, 200
    return ({"status": "accepted", "queued": accepted.enqueued,
             "build": {"id": build.id, "number": build.number, "url": url}},
            202, {"Location": url})


def _verified_repo(forge: Forge, full_name: str, body: bytes) -> Repo:
    """The registered repository that the webhook proves it comes from.

    A private repository whose signature (or token) fails is answered exactly like one
    that is not registered, so that trying names does not reveal which private ones
    exist; a public one, which anyone may see, says what is wrong (401).

    Raises:
        WebhookRejected: the repository is unknown to this forge (404), or the proof
            fails (401; 404 for a private repository).
    """
    repo = intake.get_repo_with_secrets(session(), full_name)
    if repo is None or repo.forge != forge.NAME:
        raise _not_registered(forge, full_name)
    try:
        forge.verify(webhook_secrets.reveal(settings(), repo), request.headers, body)
    except WebhookRejected:
        if repo.private:
            raise _not_registered(forge, full_name) from None
        raise
    return repo


def _not_registered(forge: Forge, full_name: str) -> WebhookRejected:
    return WebhookRejected(404, f"repository {full_name} is not registered; add it with "
                           f"`slipway repo add {full_name} --forge {forge.NAME} ...`",
                           "unknown_repo")
