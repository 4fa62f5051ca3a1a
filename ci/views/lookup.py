"""Finding the repo, build or job a URL names, or answering 404."""

from __future__ import annotations

from flask import abort

from ci import store
from ci.models import Build, Job, Repo
from ci.resources import session


def repo_or_404(owner: str, name: str) -> Repo:
    repo = store.get_repo(session(), f"{owner}/{name}")
    if repo is None:
        abort(404, description=f"repository {owner}/{name} is not registered")
    return repo


def build_or_404(owner: str, name: str, number: int) -> tuple[Repo, Build]:
    repo = repo_or_404(owner, name)
    build = store.get_build(session(), repo, number)
    if build is None:
        abort(404, description=f"{repo.full_name} has no build #{number}")
    return repo, build


def job_or_404(owner: str, name: str, number: int, job_number: int) -> tuple[Repo, Build, Job]:
    repo, build = build_or_404(owner, name, number)
    job = store.job_of_build(build, job_number)
    if job is None:
        abort(404, description=f"build #{number} of {repo.full_name} has no job {job_number}")
    return repo, build, job
