"""The JSON API under ``/api/``: repositories, their secrets and badges, and who asks.

Builds, jobs and logs are in ``ci.views.api_builds``; ``ci.views.openapi``
describes every route. Reads of a private repository, and every change, need a
user: an API token (``Authorization: Bearer``) or the session cookie of a page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request, url_for

from ci import store
from ci.accounts import access, repo_secrets, webhook_secrets
from ci.store.models import Repo
from ci.views.auth import current_user, require_admin, unauthorized
from ci.views.badges import shown_state
from ci.views.lookup import MAX_PAGE, repo_or_404, writable_repo
from ci.views.present import repo_json
from ci.views.resources import session, settings, write_session

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_PER_PAGE = 100


def page_args() -> tuple[int, int]:
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", settings().builds_per_page))
    except ValueError:
        abort(400, description="page and per_page must be whole numbers")
    return min(max(page, 1), MAX_PAGE), min(max(per_page, 1), MAX_PER_PAGE)


def json_object(fields: dict[str, type], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The request's JSON object, holding only ``fields`` of their types and all ``required``."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deeply for the parser: not an object we can use
        body = None
    if not isinstance(body, dict):
        abort(400, description="send a JSON object with Content-Type: application/json; "
                               f"fields: {', '.join(fields)}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        abort(400, description=f"unknown field(s) {', '.join(unknown)}; "
                               f"known: {', '.join(fields)}")
    for key in required:
        if key not in body:
            abort(400, description=f"{key} is missing")
    for key, value in body.items():
        # bool is an int in Python, and an int is no bool: compare types exactly.
        if type(value) is not fields[key]:
            abort(400, description=f"{key} must be a {_JSON_TYPES[fields[key]]}")
        if isinstance(value, str) and "\x00" in value:
            abort(400, description=f"{key} contains a NUL character")
    return body


_JSON_TYPES = {str: "string", bool: "boolean (true or false)"}


def _repo_answer(repo: Repo) -> dict[str, Any]:
    latest, _total = store.search_builds(session(), repo, 1, 1)
    data = repo_json(repo, latest[0] if latest else None, settings().base_url)
    # Only readable repositories are answered: who has no grant reads a public one.
    granted = access.permission(session(), current_user(), repo) or access.Permission.READ
    data["permission"] = str(granted)
    return data


@bp.get("/user")
def whoami():
    user = current_user()
    if user is None:
        raise unauthorized("nobody is signed in; send `Authorization: Bearer <token>`")
    return {"name": user.name, "admin": user.admin}


@bp.get("/repos")
def repos():
    base = settings().base_url
    rows = access.visible(session(), current_user(), store.list_repos(session()))
    return {"repos": [repo_json(repo, latest, base) for repo, latest in rows]}


@bp.post("/repos")
def add_repo():
    require_admin("register repositories")
    body = json_object({"full_name": str, "forge": str, "clone_url": str, "secret": str,
                        "default_branch": str, "private": bool},
                       required=("full_name", "clone_url", "secret"))
    db_session = write_session()
    if store.get_repo(db_session, body["full_name"]) is not None:
        abort(409, description=f"{body['full_name']} is already registered")
    try:
        store.validate_branch(body.get("default_branch", "main"))
        repo = webhook_secrets.register(db_session, settings(), body["full_name"],
                                        body.get("forge", "github"), body["clone_url"],
                                        body["secret"], body.get("default_branch", "main"))
        if body.get("private"):
            store.update_repo(db_session, repo, private=True)
    except store.StoreError as exc:
        abort(400, description=str(exc))
    data = _repo_answer(repo)
    data["webhook_url"] = f"{settings().base_url}/hooks/{repo.forge}"
    return data, 201, {"Location": url_for("api.get_repo", owner=repo.owner, name=repo.name)}


@bp.get("/repos/<owner>/<name>")
def get_repo(owner: str, name: str):
    return _repo_answer(repo_or_404(owner, name))


@bp.patch("/repos/<owner>/<name>")
def update_repo(owner: str, name: str):
    repo = writable_repo(owner, name)
    body = json_object({"default_branch": str, "clone_url": str, "private": bool})
    if "clone_url" in body:
        # What runners clone and the web host asks with `git ls-remote`: a local path or
        # an internal address there is an admin's call, like registering the repository.
        require_admin("change a repository's clone URL")
    try:
        store.update_repo(write_session(), repo, **body)
    except store.StoreError as exc:
        abort(400, description=str(exc))
    return _repo_answer(repo)


@bp.delete("/repos/<owner>/<name>")
def remove_repo(owner: str, name: str):
    repo = repo_or_404(owner, name)
    require_admin("remove repositories")
    store.remove_repo(write_session(), repo.full_name)
    return "", 204


@bp.get("/repos/<owner>/<name>/badge")
def badge(owner: str, name: str):
    repo = repo_or_404(owner, name)
    branch = request.args.get("branch")
    url = url_for("badges.badge", owner=repo.owner, name=repo.name, branch=branch)
    return {"state": shown_state(repo, branch), "url": settings().base_url + url}


@bp.get("/repos/<owner>/<name>/secrets")
def list_secrets(owner: str, name: str):
    return {"secrets": repo_secrets.names(writable_repo(owner, name))}


@bp.put("/repos/<owner>/<name>/secrets/<secret_name>")
def put_secret(owner: str, name: str, secret_name: str):
    repo = writable_repo(owner, name)
    body = json_object({"value": str}, required=("value",))
    try:
        repo_secrets.set_secret(write_session(), settings(), repo, secret_name, body["value"])
    except store.StoreError as exc:
        abort(400, description=str(exc))
    return {"secrets": repo_secrets.names(repo)}, 200


@bp.delete("/repos/<owner>/<name>/secrets/<secret_name>")
def delete_secret(owner: str, name: str, secret_name: str):
    repo = writable_repo(owner, name)
    if not repo_secrets.remove_secret(write_session(), repo, secret_name):
        abort(404, description=f"{repo.full_name} has no secret {secret_name}")
    return {"secrets": repo_secrets.names(repo)}, 200
