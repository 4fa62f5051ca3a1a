"""The JSON API of builds, jobs and logs: list, read, trigger, cancel, restart, rerun.

Actions call the build service (``ci.builds.service``) exactly as the pages and the CLI do.
A job's log can be tailed: ``GET …/log?offset=N`` answers the bytes from ``N`` on
and ``X-Next-Offset`` (where to ask from next); ``X-Log-Complete: true`` says the
job has finished and nothing more will come; ``410 Gone`` says when retention removed it.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, Response, abort, request, url_for
from redis.exceptions import RedisError

from ci import store
from ci.builds import service
from ci.logs import storage
from ci.pipeline.logformat import to_text
from ci.pipeline.redact import without_credentials
from ci.pipeline.status import Status
from ci.store.models import Build, Repo
from ci.views.api import json_object, page_args
from ci.views.auth import current_user
from ci.views.build_filters import BadFilter, parse_filters
from ci.views.lookup import (build_or_404, job_of_or_404, job_or_404, repo_or_404, writable_build,
                             writable_repo)
from ci.views.present import build_json, job_json
from ci.views.removed_logs import removal
from ci.views.resources import redis, session, settings, write_session

bp = Blueprint("api_builds", __name__, url_prefix="/api")

BUILD = "/repos/<owner>/<name>/builds/<int:number>"
JOB = BUILD + "/jobs/<int:job_number>"


def _build_url(repo: Repo, build: Build) -> str:
    return url_for("api_builds.get_build", owner=repo.owner, name=repo.name, number=build.number)


@bp.get("/repos/<owner>/<name>/builds")
def list_builds(owner: str, name: str):
    repo = repo_or_404(owner, name)
    page, per_page = page_args()
    try:
        filters = parse_filters(request.args)  # as the repository page reads them
    except BadFilter as bad:
        abort(400, description=str(bad))
    items, total = store.search_builds(session(), repo, page, per_page, branch=filters.branch,
                                       status=filters.status, event=filters.event)
    base = settings().base_url
    return {"builds": [build_json(build, base, repo) for build in items],
            "page": page, "per_page": per_page, "total": total}


@bp.post("/repos/<owner>/<name>/builds")
def trigger(owner: str, name: str):
    repo = writable_repo(owner, name)
    body = json_object({"branch": str, "sha": str})
    try:
        wanted = service.manual_trigger(write_session(), repo, branch=body.get("branch"),
                                        sha=body.get("sha"), who=current_user().name)
    except store.StoreError as exc:
        abort(400, description=without_credentials(str(exc)))
    accepted = service.accept(write_session(), redis(), settings(), repo, wanted)
    data = _with_jobs(repo, accepted.build)
    data["queued"] = accepted.enqueued
    return data, 201, {"Location": _build_url(repo, accepted.build)}


@bp.get(BUILD)
def get_build(owner: str, name: str, number: int):
    repo, found = build_or_404(owner, name, number)
    return _with_jobs(repo, found)


def _on_build(owner: str, name: str, number: int,
              act: Callable[[Repo, Build], tuple[dict[str, Any], int, dict[str, str]]]):
    """Do ``act`` to a build the asker may change; 409 when the build's state does not
    allow it, 503 when Redis, which tells runners what to do, does not answer."""
    repo = writable_repo(owner, name)
    build = writable_build(repo, number)
    try:
        return act(repo, build)
    except store.StoreError as exc:
        abort(409, description=without_credentials(str(exc)))
    except RedisError:
        abort(503, description="Redis, which tells runners what to do, does not answer; "
                               "nothing was done; try again in a moment")


def _cancel(owner: str, name: str, number: int, job_number: int | None):
    def act(repo: Repo, build: Build):
        job = job_of_or_404(repo, build, job_number) if job_number is not None else None
        count = service.cancel(write_session(), redis(), build, current_user().name, only=job)
        return {"canceled_jobs": count, "build": _with_jobs(repo, build)}, 202, {}

    return _on_build(owner, name, number, act)


@bp.post(BUILD + "/cancel")
def cancel(owner: str, name: str, number: int):
    return _cancel(owner, name, number, None)


@bp.post(BUILD + "/restart")
def restart(owner: str, name: str, number: int):
    def act(repo: Repo, build: Build):
        again = service.restart(write_session(), redis(), settings(), build).build
        return (build_json(again, settings().base_url, repo), 201,
                {"Location": _build_url(repo, again)})

    return _on_build(owner, name, number, act)


@bp.post(BUILD + "/rerun-failed")
def rerun_failed(owner: str, name: str, number: int):
    def act(repo: Repo, build: Build):
        count = service.rerun_failed(write_session(), redis(), settings(), build)
        return {"rerun_jobs": count, "build": _with_jobs(repo, build)}, 202, {}

    return _on_build(owner, name, number, act)


def _with_jobs(repo: Repo, build: Build) -> dict[str, Any]:
    return build_json(build, settings().base_url, repo, with_jobs=True)


@bp.get(JOB)
def get_job(owner: str, name: str, number: int, job_number: int):
    repo, found, job = job_or_404(owner, name, number, job_number)
    return job_json(job, settings().base_url, repo, found)


@bp.post(JOB + "/cancel")
def cancel_job(owner: str, name: str, number: int, job_number: int):
    return _cancel(owner, name, number, job_number)


@bp.get(JOB + "/log")
def job_log(owner: str, name: str, number: int, job_number: int) -> Response:
    _repo, found, job = job_or_404(owner, name, number, job_number)
    try:
        offset = int(request.args.get("offset", 0))
    except ValueError:
        abort(400, description="offset must be a whole number of bytes")
    if notice := removal(job, found):
        abort(410, description=notice)
    text = to_text(storage.read_all(redis(), settings().log_dir, job)).encode()
    if not 0 <= offset <= len(text):
        # A rerun starts the log anew: a client past its end reads it from 0 again.
        abort(416, description=f"offset {offset} is outside the log, which has {len(text)} "
                               "bytes; start again from 0")
    response = Response(text[offset:], mimetype="text/plain")
    response.headers["X-Next-Offset"] = str(len(text))
    response.headers["X-Log-Complete"] = "true" if Status(job.status).finished else "false"
    response.headers["Cache-Control"] = "no-cache"
    return response
