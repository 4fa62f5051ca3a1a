"""The buttons of the status pages: trigger, cancel, restart and rerun failed jobs.

Each is a form post (with the session's CSRF token, checked in ``ci.views.auth``)
that calls the same build service as the API and the CLI, then goes back to the
page with a message saying what happened.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from ci import store
from ci.builds import service
from ci.store.models import Build, Repo
from ci.views.auth import current_user
from ci.views.lookup import job_of_or_404, repo_or_404, writable_repo
from ci.views.resources import redis, settings, write_session

bp = Blueprint("actions", __name__)


def _writable(owner: str, name: str, number: int | None = None) -> Repo | Response:
    """The repo when the asker may change it; when nobody is signed in, the sign-in
    page, which comes back to the page the button was on."""
    if current_user() is None:
        repo = repo_or_404(owner, name)
        flash("Sign in to do that.")
        return redirect(url_for("auth.login", next=_page_of(repo, number)))
    return writable_repo(owner, name)


def _page_of(repo: Repo, number: int | None = None) -> str:
    if number is None:
        return url_for("pages.repo_page", owner=repo.owner, name=repo.name)
    return url_for("pages.build_page", owner=repo.owner, name=repo.name, number=number)


def _writable_build(owner: str, name: str, number: int) -> tuple[Repo, Build] | Response:
    repo = _writable(owner, name, number)
    if isinstance(repo, Response):
        return repo
    build = store.get_build(write_session(), repo, number)
    if build is None:
        abort(404, description=f"{repo.full_name} has no build #{number}")
    return repo, build


@bp.post("/<owner>/<name>/builds")
def trigger(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    if isinstance(repo, Response):
        return repo
    try:
        wanted = service.manual_trigger(repo, branch=request.form.get("branch") or None)
    except store.StoreError as exc:
        flash(f"Nothing was built: {exc}.")
        return redirect(_page_of(repo))
    accepted = service.accept(write_session(), redis(), settings(), repo, wanted)
    flash(f"Build #{accepted.build.number} of {wanted.branch} queued.")
    return redirect(_page_of(repo, accepted.build.number))


@bp.post("/<owner>/<name>/builds/<int:number>/cancel")
def cancel(owner: str, name: str, number: int) -> Response:
    return _cancel(owner, name, number, None)


@bp.post("/<owner>/<name>/builds/<int:number>/jobs/<int:job_number>/cancel")
def cancel_job(owner: str, name: str, number: int, job_number: int) -> Response:
    return _cancel(owner, name, number, job_number)


def _cancel(owner: str, name: str, number: int, job_number: int | None) -> Response:
    found = _writable_build(owner, name, number)
    if isinstance(found, Response):
        return found
    repo, build = found
    job = job_of_or_404(repo, build, job_number) if job_number is not None else None
    try:
        count = service.cancel(write_session(), redis(), build, current_user().name, only=job)
    except RedisError:
        flash("Nothing was canceled: Redis, which tells runners to stop, does not answer.")
        return redirect(_page_of(repo, number))
    flash(f"Asked {count} job(s) to stop." if count else "Nothing to cancel: it has finished.")
    return redirect(_page_of(repo, number))


@bp.post("/<owner>/<name>/builds/<int:number>/restart")
def restart(owner: str, name: str, number: int) -> Response:
    found = _writable_build(owner, name, number)
    if isinstance(found, Response):
        return found
    repo, build = found
    try:
        again = service.restart(write_session(), redis(), settings(), build).build
    except store.StoreError as exc:
        flash(f"Not restarted: {exc}.")
        return redirect(_page_of(repo, number))
    flash(f"Build #{again.number} queued: build #{number} again.")
    return redirect(_page_of(repo, again.number))


@bp.post("/<owner>/<name>/builds/<int:number>/rerun-failed")
def rerun_failed(owner: str, name: str, number: int) -> Response:
    found = _writable_build(owner, name, number)
    if isinstance(found, Response):
        return found
    repo, build = found
    try:
        count = service.rerun_failed(write_session(), redis(), settings(), build)
    except store.StoreError as exc:
        flash(f"Nothing was rerun: {exc}.")
        return redirect(_page_of(repo, number))
    flash(f"Rerunning {count} job(s)." if count else "No failed jobs to rerun.")
    return redirect(_page_of(repo, number))
