"""The queue page and ``GET /api/queue`` (anyone signed in): per repository, how many jobs
run and wait for a runner, its limit of jobs at once, why its jobs wait, the one waiting
longest, and how many of them Redis holds. Private repositories are shown only to those
who may read them; Redis's count of all jobs only to admins.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ci.accounts import access
from ci.builds.queue_depth import QueueDepth, RepoQueue, queue_depth
from ci.store.models import User
from ci.views.admin_access import signed_in
from ci.views.auth import current_user, unauthorized
from ci.views.present import iso
from ci.views.resources import redis, session, settings

bp = Blueprint("admin_queue", __name__)


def _visible(user: User) -> tuple[QueueDepth, list[RepoQueue]]:
    depth = queue_depth(session(), redis(), settings())
    return depth, [row for _repo, row in
                   access.visible(session(), user, [(row.repo, row) for row in depth.repos])]


@bp.get("/admin/queue")
def queue_page() -> str:
    user = signed_in()
    depth, rows = _visible(user)
    return render_template("admin/queue.html", rows=rows, redis_length=depth.redis_length,
                           redis_down=depth.redis_length is None, show_total=user.admin)


@bp.get("/api/queue")
def queue_api() -> dict[str, Any]:
    user = current_user()
    if user is None:
        raise unauthorized("sign in or send an API token to see the queue")
    depth, rows = _visible(user)
    return {"repos": [_row_json(row) for row in rows],
            "redis_answers": depth.redis_length is not None,
            "redis_holds": depth.redis_length if user.admin else None}


def _row_json(row: RepoQueue) -> dict[str, Any]:
    base, repo, oldest = settings().base_url, row.repo, row.oldest
    return {
        "full_name": repo.full_name, "url": f"{base}/{repo.full_name}",
        "running": row.running, "waiting": row.waiting, "max_jobs": row.max_jobs or None,
        "in_redis": row.in_redis, "why": row.why,
        "waiting_longest": None if oldest is None else {
            "build": oldest.build_number, "job": oldest.job_number, "name": oldest.job_name,
            "since": iso(oldest.since),
            "url": f"{base}/{repo.full_name}/builds/{oldest.build_number}#job-{oldest.job_number}"},
    }
