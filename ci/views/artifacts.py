"""The files a job kept (``artifacts:``): their list, each file, and all of them as a zip.

Each is served twice, as the logs are: under ``/api/repos/…`` for programs (errors in
JSON; the list's URLs point there) and under the build page's own path for its links
(errors as pages). Whoever may read the build's log may read its files; a private
repository's are 404 to anyone else. A build's files are hostile content: they are only
ever sent as attachments of type ``application/octet-stream``, never shown as a page.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, request
from werkzeug.http import is_resource_modified
from werkzeug.utils import secure_filename, wrap_file

from ci import store
from ci.artifacts import artifact_store
from ci.artifacts.zipped import zip_stream
from ci.pipeline.artifacts import human_size, path_problem, shown
from ci.store.models import Artifact, Build, Job, Repo
from ci.views.lookup import job_or_404
from ci.views.resources import session, settings

bp = Blueprint("artifacts", __name__)

JOB = "/<owner>/<name>/builds/<int:number>/jobs/<int:job_number>"
API = "/api/repos" + JOB
#: What every file is sent as, whatever its name says: a browser saves it, never runs it.
BINARY = "application/octet-stream"


@bp.app_template_global()
def kept_files(job: Job) -> list[Artifact]:
    """The files the job's current attempt kept, by path (for the build page)."""
    return store.job_artifacts(session(), job.id, job.attempt)


@bp.app_template_filter("human_size")
def _human_size(size: int) -> str:
    return human_size(size)


def artifact_url(base: str, repo: Repo, build: Build, job: Job, path: str | None = None) -> str:
    """Where a job's files are under ``base``: their list, or file ``path``."""
    where = f"{base}/{repo.full_name}/builds/{build.number}/jobs/{job.number}/artifacts"
    return where + (f"/{quote(path)}" if path else "")


@bp.get(API + "/artifacts")
def list_artifacts(owner: str, name: str, number: int, job_number: int) -> dict:
    repo, build, job = job_or_404(owner, name, number, job_number)
    base = f"{settings().base_url}/api/repos"
    files = store.job_artifacts(session(), job.id, job.attempt)
    return {
        "attempt": job.attempt,
        "total_size": sum(file.size for file in files),
        "zip_url": f"{artifact_url(base, repo, build, job)}.zip",
        "artifacts": [{"path": file.path, "size": file.size, "sha256": file.sha256,
                       "url": artifact_url(base, repo, build, job, file.path)}
                      for file in files],
    }


@bp.get(API + "/artifacts/<path:path>")
@bp.get(JOB + "/artifacts/<path:path>", endpoint="page_download")
def download(owner: str, name: str, number: int, job_number: int, path: str) -> Response:
    """One file, as an attachment, with its sha256 as its ETag (and byte ranges)."""
    repo, build, job = job_or_404(owner, name, number, job_number)
    found = (store.job_artifact(session(), job.id, job.attempt, path)
             if path_problem(path) is None else None)
    if found is None:
        abort(404, description=f"job {job.number} of build #{build.number} of "
                               f"{repo.full_name} kept no file `{shown(path)[:300]}`")
    if not is_resource_modified(request.environ, etag=found.sha256):
        response = Response(status=304)
        response.set_etag(found.sha256)
        return response
    try:
        handle = artifact_store(settings()).open(job.id, job.attempt, found.path)
    except FileNotFoundError:
        abort(410, description=f"`{shown(path)}` of job {job.number} of build #{build.number} "
                               "is no longer stored")
    session().close()  # no database connection held while the file is sent
    response = Response(wrap_file(request.environ, handle), mimetype=BINARY,
                        direct_passthrough=True)
    response.content_length = found.size
    _as_attachment(response, found.path.rsplit("/", 1)[-1])
    response.set_etag(found.sha256)
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request, accept_ranges=True, complete_length=found.size)


@bp.get(API + "/artifacts.zip")
@bp.get(JOB + "/artifacts.zip", endpoint="page_download_zip")
def download_zip(owner: str, name: str, number: int, job_number: int) -> Response:
    """Every file of the job's current attempt in one zip, made as it is sent."""
    repo, build, job = job_or_404(owner, name, number, job_number)
    files = store.job_artifacts(session(), job.id, job.attempt)
    if not files:
        abort(404, description=f"job {job.number} of build #{build.number} of "
                               f"{repo.full_name} kept no files")
    session().close()  # no connection held while the zip is sent; the rows keep what they hold
    response = Response(zip_stream(artifact_store(settings()), files), mimetype="application/zip")
    _as_attachment(response, f"{repo.owner}-{repo.name}-{build.number}-{job.number}-artifacts.zip")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _as_attachment(response: Response, name: str) -> None:
    """Save-as, never show; the name as the build wrote it where the browser can take it."""
    ascii_name = secure_filename(name) or "artifact"
    names = {"filename": ascii_name}
    if ascii_name != name:
        names["filename*"] = f"UTF-8''{quote(name, safe='')}"
    response.headers.set("Content-Disposition", "attachment", **names)
    response.headers["X-Content-Type-Options"] = "nosniff"
