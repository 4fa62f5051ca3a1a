"""``GET /OWNER/NAME/badge.svg``: the status of a branch's latest build as a badge.

Sent with ``Cache-Control: no-cache`` and an ETag, so image proxies revalidate
every time and get a cheap 304 until the status changes.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, request

from ci import store
from ci.badges import badge_state, render_badge
from ci.store.models import Repo
from ci.views.resources import session

bp = Blueprint("badges", __name__)


def shown_state(repo: Repo | None, branch: str | None) -> str:
    """What the badge says. A private repository's says "unknown" to everyone: badges
    are embedded where no one is signed in, and must not tell its builds' results."""
    if repo is None or repo.private:
        return badge_state(None)
    build = store.latest_branch_build(session(), repo, branch or repo.default_branch)
    return badge_state(build.status if build else None)


@bp.get("/<owner>/<name>/badge.svg")
def badge(owner: str, name: str) -> Response:
    full_name = f"{owner}/{name}"
    repo = store.get_repo(session(), full_name) if store.REPO_NAME.fullmatch(full_name) else None
    state = shown_state(repo, request.args.get("branch"))
    svg = render_badge(state)
    response = Response(svg, mimetype="image/svg+xml")
    response.set_etag(hashlib.sha256(svg.encode()).hexdigest()[:20])
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)
