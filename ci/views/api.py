"""The JSON read API under ``/api/``."""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, request

from ci import builds, secrets, store
from ci.resources import redis, session, settings, write_session
from ci.views.lookup import build_or_404, repo_or_404
from ci.views.present import build_json, repo_json

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_PER_PAGE = 100


def _page_args() -> tuple[int, int]:
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", settings().builds_per_page))
    except ValueError:
        abort(400, description="page and per_page must be whole numbers")
    return max(page, 1), min(max(per_page, 1), MAX_PER_PAGE)


@bp.get("/repos")
def repos():
    base = settings().base_url
    return {"repos": [repo_json(repo, latest, base)
                      for repo, latest in store.list_repos(session())]}


@bp.get("/repos/<owner>/<name>/builds")
def list_builds(owner: str, name: str):
    repo = repo_or_404(owner, name)
    page, per_page = _page_args()
    items, total = store.list_builds(session(), repo, page, per_page)
    base = settings().base_url
    return {"builds": [build_json(build, base, repo) for build in items],
            "page": page, "per_page": per_page, "total": total}


@bp.get("/repos/<owner>/<name>/builds/<int:number>")
def get_build(owner: str, name: str, number: int):
    repo, found = build_or_404(owner, name, number)
    return build_json(found, settings().base_url, repo, with_jobs=True)


def _require_token() -> None:
    """Actions need ``Authorization: Bearer $SLIPWAY_API_TOKEN``; without one set, none are allowed."""
    expected = settings().api_token
    if not expected:
        abort(403, description="actions through the API are disabled; set SLIPWAY_API_TOKEN "
                               "on the server and send it as a Bearer token")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        abort(401, description="send Authorization: Bearer <token> with the server's "
                               "SLIPWAY_API_TOKEN")


def _action_build(owner: str, name: str, number: int):
    _require_token()
    repo = repo_or_404(owner, name)
    found = store.get_build(write_session(), repo, number)
    if found is None:
        abort(404, description=f"{repo.full_name} has no build #{number}")
    return repo, found


@bp.post("/repos/<owner>/<name>/builds/<int:number>/cancel")
def cancel(owner: str, name: str, number: int):
    repo, found = _action_build(owner, name, number)
    count = builds.cancel(write_session(), redis(), found, "the API")
    return {"canceled_jobs": count,
            "build": build_json(found, settings().base_url, repo, with_jobs=True)}, 202


@bp.post("/repos/<owner>/<name>/builds/<int:number>/restart")
def restart(owner: str, name: str, number: int):
    repo, found = _action_build(owner, name, number)
    try:
        accepted = builds.restart(write_session(), redis(), settings(), found)
    except store.StoreError as exc:
        abort(409, description=str(exc))
    return build_json(accepted.build, settings().base_url, repo), 201


@bp.post("/repos/<owner>/<name>/builds/<int:number>/rerun-failed")
def rerun_failed(owner: str, name: str, number: int):
    repo, found = _action_build(owner, name, number)
    try:
        count = builds.rerun_failed(write_session(), redis(), settings(), found)
    except store.StoreError as exc:
        abort(409, description=str(exc))
    return {"rerun_jobs": count,
            "build": build_json(found, settings().base_url, repo, with_jobs=True)}, 202


@bp.get("/repos/<owner>/<name>/secrets")
def list_secrets(owner: str, name: str):
    _require_token()
    return {"secrets": secrets.names(repo_or_404(owner, name))}


@bp.put("/repos/<owner>/<name>/secrets/<secret_name>")
def put_secret(owner: str, name: str, secret_name: str):
    _require_token()
    repo = store.get_repo(write_session(), f"{owner}/{name}") or repo_or_404(owner, name)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        abort(400, description='send a JSON object {"value": "..."}')
    try:
        secrets.set_secret(write_session(), settings(), repo, secret_name, body["value"])
    except store.StoreError as exc:
        abort(400, description=str(exc))
    return {"secrets": secrets.names(repo)}, 200


@bp.delete("/repos/<owner>/<name>/secrets/<secret_name>")
def delete_secret(owner: str, name: str, secret_name: str):
    _require_token()
    repo = store.get_repo(write_session(), f"{owner}/{name}") or repo_or_404(owner, name)
    if not secrets.remove_secret(write_session(), repo, secret_name):
        abort(404, description=f"{repo.full_name} has no secret {secret_name}")
    return {"secrets": secrets.names(repo)}, 200
