"""The JSON read API under ``/api/``."""

from __future__ import annotations

from flask import Blueprint, abort, request

from ci import store
from ci.resources import session, settings
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
def builds(owner: str, name: str):
    repo = repo_or_404(owner, name)
    page, per_page = _page_args()
    items, total = store.list_builds(session(), repo, page, per_page)
    base = settings().base_url
    return {"builds": [build_json(build, base, repo) for build in items],
            "page": page, "per_page": per_page, "total": total}


@bp.get("/repos/<owner>/<name>/builds/<int:number>")
def build(owner: str, name: str, number: int):
    repo, found = build_or_404(owner, name, number)
    return build_json(found, settings().base_url, repo, with_jobs=True)
