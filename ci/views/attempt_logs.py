"""The log of one attempt of a job, as text: a rerun or a retry keeps the logs of the
attempts it replaced, and each stays readable here.

``…/jobs/<m>/attempts/<a>/log.txt`` is the page's link (as ``…/jobs/<m>/log.txt`` is
for the current log), ``/api/repos/…/attempts/<a>/log`` the API's; both answer the same
text, under the same access rules as the job's own log. The current attempt's number
answers its log as it is now, live or archived. Once retention removed the job's logs, each
attempt's answers ``410 Gone`` with the reason.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort

from ci import store
from ci.logs import storage
from ci.logs.plain import strip_ansi
from ci.pipeline.logformat import to_text
from ci.views.lookup import job_or_404
from ci.views.removed_logs import gone, removal
from ci.views.resources import redis, settings

bp = Blueprint("attempt_logs", __name__)

ATTEMPT = "/builds/<int:number>/jobs/<int:job_number>/attempts/<int:attempt>"


@bp.get("/<owner>/<name>" + ATTEMPT + "/log.txt")
def attempt_log_text(owner: str, name: str, number: int, job_number: int,
                     attempt: int) -> Response:
    return _attempt_log(owner, name, number, job_number, attempt, api=False)


@bp.get("/api/repos/<owner>/<name>" + ATTEMPT + "/log")
def attempt_log(owner: str, name: str, number: int, job_number: int, attempt: int) -> Response:
    return _attempt_log(owner, name, number, job_number, attempt, api=True)


def _attempt_log(owner: str, name: str, number: int, job_number: int, attempt: int,
                 api: bool) -> Response:
    repo, build, job = job_or_404(owner, name, number, job_number)
    found = store.get_attempt(job, attempt)
    if found is None:
        abort(404, description=f"job {job_number} of build #{build.number} of "
                               f"{repo.full_name} has no attempt {attempt}")
    if notice := removal(job, build):
        if api:
            abort(410, description=notice)  # the API's errors are JSON
        return gone(notice)
    if found.current:
        entries = storage.read_all(redis(), settings().log_dir, job)
    else:
        entries = storage.read_attempt(settings().log_dir, job.id, attempt)
        if entries is None:
            abort(404, description=f"the log of attempt {attempt} of job {job_number} of "
                                   f"build #{build.number} is no longer kept")
    response = Response(strip_ansi(to_text(entries)), mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response
