"""``GET /OWNER/NAME/badge.svg``: the status of a branch's latest build as a badge.

Sent with ``Cache-Control: no-cache`` and an ETag, so image proxies revalidate
every time and get a cheap 304 until the status changes.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, request

from ci import store
from ci.badges import badge_state, render_badge
from ci.resources import session

bp = Blueprint("badges", __name__)


@bp.get("/<owner>/<name>/badge.svg")
def badge(owner: str, name: str) -> Response:
    repo = store.get_repo(session(), f"{owner}/{name}")
    status = None
    if repo is not None:
        branch = request.args.get("branch") or repo.default_branch
        build = store.latest_branch_build(session(), repo, branch)
        status = build.status if build else None
    state = badge_state(status)
    svg = render_badge(state)
    response = Response(svg, mimetype="image/svg+xml")
    response.set_etag(hashlib.sha256(svg.encode()).hexdigest()[:20])
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)
