"""The status pages: repositories, a repository's builds, one build with its live log.

Every page is complete without JavaScript; small scripts only keep the lists and the
log live. Finished builds are immutable, so their pages carry an ETag.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, make_response, render_template, request, url_for

from ci import store
from ci.accounts import access
from ci.pipeline.events import EVENTS
from ci.pipeline.status import Status
from ci.views import build_log, charts, present
from ci.views.assets import asset_url
from ci.views.auth import current_user
from ci.views.build_filters import BadFilter, parse_list_query
from ci.views.list_events import index_live
from ci.views.lists import one_page, repo_tab
from ci.views.lookup import build_or_404, repo_or_404
from ci.views.resources import redis, session, settings

bp = Blueprint("pages", __name__)

#: How many branch names the repository page's filter suggests.
BRANCH_SUGGESTIONS = 50


@bp.app_context_processor
def helpers() -> dict:
    return {"present": present}


@bp.get("/")
def index() -> str:
    live = index_live()
    rows = access.visible(session(), current_user(), store.list_repos(session()))
    return render_template("index.html", repos=rows, live=live)


@bp.get("/<owner>/<name>")
def repo_page(owner: str, name: str) -> tuple[str, int]:
    """A repository's builds, filtered by branch, event and status, newest first, under
    the duration chart of its (or the branch's) latest builds. Filters that name nothing
    a build can have are refused with the reason, the form keeping what was sent."""
    repo = repo_or_404(owner, name)
    context = repo_tab(repo, "builds")
    context.update(branch_names=store.branch_names(session(), repo, BRANCH_SUGGESTIONS),
                   events=EVENTS, statuses=tuple(Status))
    try:
        filters, page = parse_list_query(request.args)
    except BadFilter as bad:
        return render_template("repo.html", problems=bad.problems, **context), 400
    builds, paging = one_page(page, lambda number, size: store.search_builds(
        session(), repo, number, size, branch=filters.branch, status=filters.status,
        event=filters.event))
    recent = store.recent_builds(session(), repo, charts.SLOTS, branch=filters.branch)
    chart = charts.duration_chart(recent, lambda build: url_for(
        "pages.build_page", owner=repo.owner, name=repo.name, number=build.number))
    html = render_template("repo.html", problems=[], filters=filters, builds=builds,
                           paging=paging, chart=chart, **context)
    return html, 200


@bp.get("/<owner>/<name>/builds/<int:number>")
def build_page(owner: str, name: str, number: int) -> Response:
    """A build with its jobs' logs; while it runs, its script follows the build's one
    live stream (``logs.build_events``) from where the page ends."""
    repo, build = build_or_404(owner, name, number)
    earlier = _earlier_attempt()
    jobs = build_log.shown_jobs(redis(), settings().log_dir, build, earlier,
                                settings().keep_days)
    events = None
    # A page showing an earlier attempt shows what was: it does not follow the build.
    if not Status(build.status).finished and not any(job.earlier for job in jobs):
        events = url_for("logs.build_events", owner=repo.owner, name=repo.name,
                         number=build.number, after=build_log.cursor(jobs) or None)
    html = render_template("build.html", repo=repo, build=build, jobs=jobs, events=events,
                           focus=build_log.failure_anchor(build, jobs),
                           favicons={status: asset_url(f"favicon-{status}.svg")
                                     for status in Status},
                           grid=present.job_grid(build.jobs),
                           max_shown_lines=build_log.MAX_SHOWN_LINES,
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


def _earlier_attempt() -> dict[int, int]:
    """``?job=M&attempt=A``: show attempt A of job M (links of the attempts selector);
    anything else shows every job's current attempt."""
    job, attempt = request.args.get("job", ""), request.args.get("attempt", "")
    if job.isdigit() and attempt.isdigit() and len(job) < 10 and len(attempt) < 10:
        return {int(job): int(attempt)}
    return {}
