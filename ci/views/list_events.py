"""Server-Sent Events that tell an open list of builds to refresh itself.

``/events/builds`` serves the repository index, ``/<owner>/<name>/events/builds`` one
repository's lists. Each reads the build change notices (``ci.builds.changes``) and
passes on only those about repositories the asker may read, as ``event: change`` with
the repositories' names and the notice's id (``Last-Event-ID`` on a reconnect, or
``?after=`` from the page, resumes there, so nothing between the page's rendering and
the stream's start is missed). The page then fetches itself again; a notice carries no
build data. No database connection is held while the stream waits on Redis.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from flask import Blueprint, Response, request, stream_with_context, url_for
from redis import Redis
from redis.exceptions import RedisError

from ci import store
from ci.accounts import access
from ci.builds import changes
from ci.store.models import utcnow
from ci.views.auth import current_user
from ci.views.logs import STREAM_ID
from ci.views.lookup import repo_or_404
from ci.views.present import iso
from ci.views.resources import redis, resources, session

bp = Blueprint("list_events", __name__)

#: How long a stream waits on Redis before it sends a comment to keep the connection
#: open (under the Redis client's 30 s socket timeout).
KEEPALIVE_MS = 15_000


@dataclass(frozen=True)
class Live:
    """What a list page's script needs: its stream, where to start it (the newest
    notice before the page read the database; None when Redis did not answer) and
    the server's clock (to count "x ago" and running durations right)."""

    events_url: str
    after: str | None
    now: str


def live(events_url: str) -> Live:
    """The stream position for a page about to read its lists: call it first."""
    try:
        after = changes.latest_id(redis())
    except RedisError:
        after = None
    return Live(events_url=events_url, after=after, now=iso(utcnow()) or "")


def index_live() -> Live:
    return live(url_for("list_events.all_builds"))


def repo_live(owner: str, name: str) -> Live:
    return live(url_for("list_events.repo_builds", owner=owner, name=name))


@bp.get("/events/builds")
def all_builds() -> Response:
    user = current_user()
    repos = store.list_repos(session())
    readable = {repo.id for repo, _latest in access.visible(session(), user, repos)}
    names: dict[int, str | None] = {repo.id: repo.full_name if repo.id in readable else None
                                    for repo, _latest in repos}
    user_id = user.id if user is not None else None

    def name_of(repo_id: int) -> str | None:
        if repo_id not in names:  # registered after the stream began
            names[repo_id] = _readable_name(user_id, repo_id)
        return names[repo_id]

    return _stream_response(name_of)


@bp.get("/<owner>/<name>/events/builds")
def repo_builds(owner: str, name: str) -> Response:
    repo = repo_or_404(owner, name)
    repo_id, full_name = repo.id, repo.full_name
    return _stream_response(lambda changed: full_name if changed == repo_id else None)


def _readable_name(user_id: int | None, repo_id: int) -> str | None:
    """The repository's name when the user (None: anonymous) may read it, else None;
    read in a session of its own, closed before the stream waits again."""
    with resources().sessions() as db_session:
        repo = store.repo_by_id(db_session, repo_id)
        user = store.get_user_by_id(db_session, user_id) if user_id is not None else None
        return repo.full_name if repo and access.can_read(db_session, user, repo) else None


def _stream_response(name_of: Callable[[int], str | None]) -> Response:
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or ""
    if not STREAM_ID.fullmatch(after):
        after = _newest_or_next()
    session().close()
    stream = _notices(redis(), after, name_of)
    response = Response(stream_with_context(stream), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _newest_or_next() -> str:
    """Where a stream given no position starts: after the newest notice, or, when Redis
    does not answer now, at whatever comes next (the stream then ends at once and the
    browser tries again)."""
    try:
        return changes.latest_id(redis())
    except RedisError:
        return "$"


def _notices(redis_client: Redis, after: str,
             name_of: Callable[[int], str | None]) -> Iterator[str]:
    """``change`` events for notices after ``after`` about repositories ``name_of`` names;
    a comment when nothing was sent for a while. Ends when Redis fails (the browser
    reconnects from the last id it got)."""
    yield "retry: 2000\n\n"
    quiet_since = time.monotonic()
    while True:
        try:
            notices = changes.wait(redis_client, after, KEEPALIVE_MS)
        except RedisError:
            return
        if notices:
            after = notices[-1].id
            shown = sorted({name for notice in notices if (name := name_of(notice.repo_id))})
            if shown:
                yield f"id: {after}\nevent: change\ndata: {json.dumps({'repos': shown})}\n\n"
                quiet_since = time.monotonic()
                continue
        if time.monotonic() - quiet_since >= KEEPALIVE_MS / 1000:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
