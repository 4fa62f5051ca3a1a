"""Job logs over HTTP: the raw text, and live Server-Sent Events streams.

A job's stream sends every entry after ``Last-Event-ID`` (the Redis stream id, or the
same id from the archive), then blocks on Redis for new ones, so a client that connects
mid-job gets all earlier lines and then each new one as it comes. A build's stream
(:mod:`ci.views.build_events`) does the same for all its jobs at once, with the build's
state, for the build page. Neither holds a database connection while it streams. Once
retention removed a job's log, its text and its stream answer ``410 Gone`` with the reason
(:mod:`ci.views.removed_logs`).
"""

from __future__ import annotations

import json
import re
from typing import Iterator

from flask import Blueprint, Response, abort, request, stream_with_context
from werkzeug.utils import secure_filename

from ci import store
from ci.logs import multiplex, storage
from ci.logs.plain import strip_ansi
from ci.logs.render import LogRenderer
from ci.pipeline.logformat import END, LogEntry, to_text
from ci.views.build_events import BuildEvents
from ci.views.lookup import build_or_404, job_or_404
from ci.views.removed_logs import gone, removal
from ci.views.resources import redis, resources, session, settings

bp = Blueprint("logs", __name__)

STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
KEEPALIVE_MS = 15_000


@bp.get("/<owner>/<name>/builds/<int:number>/jobs/<int:job_number>/log.txt")
def log_text(owner: str, name: str, number: int, job_number: int) -> Response:
    """The job's log as plain text, without the escape sequences a browser would show as
    ``[31m``; ``?download=1`` saves it as a file named for the repository, build and job."""
    repo, build, job = job_or_404(owner, name, number, job_number)
    download = request.args.get("download", "0")
    if download not in ("0", "1"):
        abort(400, description=f"download is 1 (save the log as a file) or 0, not {download!r}")
    if notice := removal(job, build):
        return gone(notice)
    entries = storage.read_all(redis(), settings().log_dir, job)
    response = Response(strip_ansi(to_text(entries)), mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    if download == "1":
        filename = secure_filename(f"{repo.owner}-{repo.name}-{number}-{job_number}.log")
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/<owner>/<name>/builds/<int:number>/events")
def build_events(owner: str, name: str, number: int) -> Response:
    """The build page's live stream: all its jobs' logs and the build's state, resumed
    from ``Last-Event-ID`` or ``?after=`` (a cursor of :mod:`ci.logs.multiplex`)."""
    repo, build = build_or_404(owner, name, number)
    cursor = request.headers.get("Last-Event-ID") or request.args.get("after", "")
    try:
        positions = multiplex.parse_cursor(cursor)
    except ValueError as exc:
        abort(400, description=f"after: {exc}")
    events = BuildEvents(redis(), resources().sessions, settings().log_dir, repo, build,
                         positions)
    session().close()
    return _event_stream(events.events())


@bp.get("/<owner>/<name>/builds/<int:number>/jobs/<int:job_number>/events")
def log_events(owner: str, name: str, number: int, job_number: int) -> Response:
    _repo, build, job = job_or_404(owner, name, number, job_number)
    if notice := removal(job, build):
        return gone(notice)  # an EventSource does not reconnect after an error status
    job_id = job.id
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0-0"
    if not STREAM_ID.fullmatch(after):
        after = "0-0"
    archived = job.log_archived
    session().close()
    return _event_stream(_events(redis(), settings().log_dir, job_id, archived, after))


def _event_stream(events: Iterator[str]) -> Response:
    response = Response(stream_with_context(events), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _events(redis_client, log_dir, job_id: int, archived_at_start: bool,
            after: str) -> Iterator[str]:
    renderer = LogRenderer()
    yield "retry: 2000\n\n"
    archived = storage.read_archive(log_dir, job_id, after) if archived_at_start else None
    entries = archived if archived is not None else storage.read_live(redis_client, job_id, after)
    while True:
        for entry in entries:
            yield _sse(renderer, entry)
            after = entry.id
            if entry.kind == END:
                return
        if archived is not None:
            return
        entries = storage.wait_live(redis_client, job_id, after, KEEPALIVE_MS)
        if not entries:
            # The live stream may have expired after the job was archived.
            archived = storage.read_archive(log_dir, job_id, after) if _archived(job_id) else None
            entries = archived or []
            if archived is None:
                yield ": keepalive\n\n"


def _archived(job_id: int) -> bool:
    """Whether the database says the job's log is archived (a file of that name may be
    another job's, left by a database restored from a backup)."""
    with resources().sessions() as db_session:
        return store.log_archived(db_session, job_id)


def _sse(renderer: LogRenderer, entry: LogEntry) -> str:
    payload = renderer.payload(entry)
    return f"id: {entry.id}\nevent: {entry.kind}\ndata: {json.dumps(payload)}\n\n"
