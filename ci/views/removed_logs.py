"""What a log's URLs answer once retention removed the log (``ci.builds.retention``):
``410 Gone``, saying when it went and why, rather than an empty log that looks like a job
that printed nothing. The links of the pages get it as plain text; the API routes answer
it as their JSON error (``abort(410, description=…)``).
"""

from __future__ import annotations

from flask import Response

from ci.builds import retention
from ci.store.models import Build, Job
from ci.views.resources import settings


def removal(job: Job, build: Build) -> str | None:
    """The sentence saying the job's log was removed, or None when it is kept."""
    return retention.removal_notice(job, build, settings().keep_days)


def gone(notice: str) -> Response:
    """The plain-text ``410 Gone`` of a removed log."""
    response = Response(notice + "\n", status=410, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response
