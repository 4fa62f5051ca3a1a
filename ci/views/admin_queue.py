"""The queue page (anyone signed in): per repository, how many jobs wait for a runner,
the one waiting longest, and how many of them RQ holds. Private repositories are shown
only to those who may read them; RQ's count of all jobs only to admins.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from ci.accounts import access
from ci.builds.queue_depth import queue_depth
from ci.views.admin_access import signed_in
from ci.views.resources import redis, session

bp = Blueprint("admin_queue", __name__)


@bp.get("/admin/queue")
def queue_page() -> str:
    user = signed_in()
    depth = queue_depth(session(), redis())
    rows = [row for _repo, row in
            access.visible(session(), user, [(row.repo, row) for row in depth.repos])]
    return render_template("admin/queue.html", rows=rows, redis_length=depth.redis_length,
                           redis_down=depth.redis_length is None, show_total=user.admin)
