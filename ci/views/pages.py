"""The status pages: repositories, a repository's builds, one build with its live log.

Every page is complete without JavaScript; a small script only adds the live log.
Finished builds are immutable, so their pages carry an ETag.
"""

from __future__ import annotations

import hashlib
import math

from flask import Blueprint, Response, make_response, render_template, request

from ci import store
from ci.accounts import access
from ci.logs import storage
from ci.logs.render import LogRenderer
from ci.pipeline.status import Status
from ci.views import present
from ci.views.auth import current_user
from ci.views.lookup import MAX_PAGE, build_or_404, repo_or_404
from ci.views.resources import redis, session, settings

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def helpers() -> dict:
    return {"present": present}


@bp.get("/")
def index() -> str:
    rows = access.visible(session(), current_user(), store.list_repos(session()))
    return render_template("index.html", repos=rows)


@bp.get("/<owner>/<name>")
def repo_page(owner: str, name: str) -> str:
    repo = repo_or_404(owner, name)
    try:
        page = min(max(int(request.args.get("page", 1)), 1), MAX_PAGE)
    except ValueError:
        page = 1
    per_page = settings().builds_per_page
    builds, total = store.search_builds(session(), repo, page, per_page)
    pages = max(math.ceil(total / per_page), 1)
    return render_template("repo.html", repo=repo, builds=builds, page=page, pages=pages,
                           total=total, can_write=access.can_write(session(), current_user(), repo))


@bp.get("/<owner>/<name>/builds/<int:number>")
def build_page(owner: str, name: str, number: int) -> Response:
    repo, build = build_or_404(owner, name, number)
    jobs = []
    for job in build.jobs:
        entries = storage.read_all(redis(), settings().log_dir, job)
        jobs.append({
            "job": job,
            "sections": LogRenderer().sections(entries),
            "last_id": entries[-1].id if entries else "0-0",
            "live": not Status(job.status).finished,
        })
    html = render_template("build.html", repo=repo, build=build, jobs=jobs,
                           grid=present.job_grid(build.jobs),
                           can_write=access.can_write(session(), current_user(), repo))
    response = make_response(html)
    if Status(build.status).finished and all(job.log_archived for job in build.jobs):
        response.set_etag(hashlib.sha256(html.encode()).hexdigest()[:20])
        # A signed-in user's page holds their CSRF token; a private one, private builds.
        personal = current_user() is not None or repo.private
        response.headers["Cache-Control"] = "private, no-cache" if personal else "no-cache"
        return response.make_conditional(request)
    response.headers["Cache-Control"] = "no-store"
    return response
