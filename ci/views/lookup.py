"""Finding the repo, build or job a URL names, or answering 404.

A private repository the asker may not read is answered exactly like one that
does not exist, so its name does not leak.
"""

from __future__ import annotations

from flask import abort

from ci import store
from ci.accounts import access
from ci.store.models import Build, Job, Repo
from ci.views.auth import current_user, require_write
from ci.views.resources import session, write_session

#: Build and job numbers are 32-bit in the database; a larger one names nothing.
MAX_NUMBER = 2**31 - 1
#: Pages of builds past this are empty anyway; the bound keeps the SQL offset small.
MAX_PAGE = 1_000_000


def repo_or_404(owner: str, name: str) -> Repo:
    full_name = f"{owner}/{name}"
    # A name that could never be registered is not looked up (nor sent to the database).
    repo = store.get_repo(session(), full_name) if store.REPO_NAME.fullmatch(full_name) else None
    if repo is None or not access.can_read(session(), current_user(), repo):
        abort(404, description=f"repository {owner}/{name} is not registered")
    return repo


def writable_repo(owner: str, name: str) -> Repo:
    """The repo, loaded for writing, when the asker may change it (else 404, 401 or 403)."""
    repo = repo_or_404(owner, name)
    require_write(session(), repo)
    writable = store.get_repo(write_session(), repo.full_name)
    if writable is None:  # removed a moment ago
        abort(404, description=f"repository {repo.full_name} is not registered")
    return writable


def build_or_404(owner: str, name: str, number: int) -> tuple[Repo, Build]:
    repo = repo_or_404(owner, name)
    build = store.get_build(session(), repo, number) if number <= MAX_NUMBER else None
    if build is None:
        abort(404, description=f"{repo.full_name} has no build #{number}")
    return repo, build


def writable_build(repo: Repo, number: int) -> Build:
    """Build ``number`` of a repo already found writable, loaded for writing (else 404)."""
    build = store.get_build(write_session(), repo, number) if number <= MAX_NUMBER else None
    if build is None:
        abort(404, description=f"{repo.full_name} has no build #{number}")
    return build


def job_or_404(owner: str, name: str, number: int, job_number: int) -> tuple[Repo, Build, Job]:
    repo, build = build_or_404(owner, name, number)
    return repo, build, job_of_or_404(repo, build, job_number)


def job_of_or_404(repo: Repo, build: Build, job_number: int) -> Job:
    """Job ``job_number`` of a build already found (and allowed)."""
    job = store.job_of_build(build, job_number)
    if job is None:
        abort(404, description=f"build #{build.number} of {repo.full_name} has no job {job_number}")
    return job
