"""The buttons of the status pages: trigger, cancel, restart and rerun failed jobs.

Each is a form post (with the session's CSRF token, checked in ``ci.views.auth``)
that calls the same build service as the API and the CLI, then goes back to the
page with a message saying what happened: a refusal in the ``error`` category, shown
as an alert, and never with a clone URL's credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from flask import Blueprint, flash, redirect, request, url_for
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from ci import store
from ci.builds import service
from ci.pipeline.redact import without_credentials
from ci.store.models import Build, Repo
from ci.views.auth import current_user
from ci.views.lookup import job_of_or_404, repo_or_404, writable_build, writable_repo
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


def _on_build(owner: str, name: str, number: int, act: Callable[[Repo, Build], Done],
              refused: str) -> Response:
    """Do ``act`` to a build the asker may change, then show its message on the page it names.

    A refusal (the build's state does not allow it, Redis does not answer) is shown
    on the build's page, starting with ``refused``.
    """
    repo = _writable(owner, name, number)
    if isinstance(repo, Response):
        return repo
    try:
        done = act(repo, writable_build(repo, number))
    except store.StoreError as exc:
        done = Done(_refusal(refused, exc), number, ERROR)
    except RedisError:
        done = Done(f"{refused}: Redis, which tells runners what to do, does not answer.", number,
                    ERROR)
    flash(done.message, done.category)
    return redirect(_page_of(repo, done.page))


#: The flash category of a refusal; the page shows it as an alert.
ERROR = "error"


def _refusal(refused: str, exc: store.StoreError) -> str:
    """``refused`` and why: the service's words, which may quote what git said."""
    return without_credentials(f"{refused}: {exc}.")


@dataclass(frozen=True)
class Done:
    """What an action says, the number of the build page to show it on, and how."""

    message: str
    page: int
    category: str = "message"


@bp.post("/<owner>/<name>/builds")
def trigger(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    if isinstance(repo, Response):
        return repo
    try:
        wanted = service.manual_trigger(write_session(), repo,
                                        branch=request.form.get("branch") or None,
                                        who=current_user().name)
    except store.StoreError as exc:
        flash(_refusal("Nothing was built", exc), ERROR)
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
    def act(repo: Repo, build: Build) -> Done:
        job = job_of_or_404(repo, build, job_number) if job_number is not None else None
        count = service.cancel(write_session(), redis(), build, current_user().name, only=job)
        return Done(f"Asked {count} job(s) to stop.", number)

    return _on_build(owner, name, number, act, "Nothing was canceled")


@bp.post("/<owner>/<name>/builds/<int:number>/restart")
def restart(owner: str, name: str, number: int) -> Response:
    def act(_repo: Repo, build: Build) -> Done:
        again = service.restart(write_session(), redis(), settings(), build).build
        return Done(f"Build #{again.number} queued: build #{number} again.", again.number)

    return _on_build(owner, name, number, act, "Not restarted")


@bp.post("/<owner>/<name>/builds/<int:number>/rerun-failed")
def rerun_failed(owner: str, name: str, number: int) -> Response:
    def act(_repo: Repo, build: Build) -> Done:
        count = service.rerun_failed(write_session(), redis(), settings(), build)
        return Done(f"Rerunning {count} job(s)." if count else "No failed jobs to rerun.", number)

    return _on_build(owner, name, number, act, "Nothing was rerun")
