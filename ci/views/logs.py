"""Job logs over HTTP: the raw text, and a live Server-Sent Events stream.

The SSE stream sends every entry after ``Last-Event-ID`` (the Redis stream id,
or the same id from the archive), then blocks on Redis for new ones, so a client
that connects mid-job gets all earlier lines and then each new one as it comes.
It holds no database connection while it streams.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

from flask import Blueprint, Response, request, stream_with_context

from ci import store
from ci.logs import storage
from ci.logs.render import LogRenderer
from ci.pipeline.logformat import END, to_text
from ci.views.lookup import job_or_404
from ci.views.resources import redis, resources, session, settings

bp = Blueprint("logs", __name__)

STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
KEEPALIVE_MS = 15_000


@bp.get("/<owner>/<name>/builds/<int:number>/jobs/<int:job_number>/log.txt")
def log_text(owner: str, name: str, number: int, job_number: int) -> Response:
    _repo, _build, job = job_or_404(owner, name, number, job_number)
    entries = storage.read_all(redis(), settings().log_dir, job)
    response = Response(to_text(entries), mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/<owner>/<name>/builds/<int:number>/jobs/<int:job_number>/events")
def log_events(owner: str, name: str, number: int, job_number: int) -> Response:
    _repo, _build, job = job_or_404(owner, name, number, job_number)
    job_id = job.id
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0-0"
    if not STREAM_ID.fullmatch(after):
        after = "0-0"
    archived = job.log_archived
    session().close()
    stream = _events(redis(), settings().log_dir, job_id, archived, after)
    response = Response(stream_with_context(stream), mimetype="text/event-stream")
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


def _sse(renderer: LogRenderer, entry) -> str:
    payload = {"kind": entry.kind, "step": entry.step, "html": renderer.render(entry)}
    if entry.kind == "step":
        payload["name"] = entry.data
    if entry.kind == END:
        payload["status"] = entry.data
    return f"id: {entry.id}\nevent: {entry.kind}\ndata: {json.dumps(payload)}\n\n"
