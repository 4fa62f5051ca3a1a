"""A repository's branches and pull requests pages (the newest build of each), and what
they share with its builds page: the tabs' context and paging.

Like every page, they are complete without JavaScript; ``static/lists.js`` keeps them
current from the repository's change stream (``ci.views.list_events``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from flask import Blueprint, render_template, request

from ci import store
from ci.accounts import access
from ci.store import Session
from ci.store.models import Build, Repo
from ci.views.auth import current_user
from ci.views.build_filters import BadFilter, parse_page
from ci.views.list_events import repo_live
from ci.views.lookup import MAX_PAGE, repo_or_404
from ci.views.resources import session, settings

bp = Blueprint("lists", __name__)

#: The query that lists the newest build of each branch or pull request, one page of it.
HeadsQuery = Callable[[Session, Repo, int, int], tuple[list[Build], int]]


@dataclass(frozen=True)
class Paging:
    """Which page of a list is shown, of how many."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(math.ceil(self.total / self.per_page), 1)

    @property
    def out_of_range(self) -> bool:
        """Past the last page: the page says so and links to the last one."""
        return self.page > self.pages


def repo_tab(repo: Repo, tab: str) -> dict[str, Any]:
    """What the heading and tabs of a repository's list pages need. Call it before the
    lists are read: it takes the live stream's position."""
    return {"repo": repo, "tab": tab, "live": repo_live(repo.owner, repo.name),
            "can_write": access.can_write(session(), current_user(), repo)}


def one_page(page: int, query: Callable[[int, int], tuple[list[Build], int]],
             ) -> tuple[list[Build], Paging]:
    """Page ``page`` of a list (``query(page, per_page)``); no SQL offset past
    :data:`MAX_PAGE`, which is out of range anyway."""
    per_page = settings().builds_per_page
    builds, total = query(min(page, MAX_PAGE), per_page)
    return builds, Paging(page=page, per_page=per_page, total=total)


@bp.get("/<owner>/<name>/branches")
def branches(owner: str, name: str) -> tuple[str, int]:
    return _heads(owner, name, "branches", store.branch_heads)


@bp.get("/<owner>/<name>/pulls")
def pulls(owner: str, name: str) -> tuple[str, int]:
    return _heads(owner, name, "pulls", store.pull_request_heads)


def _heads(owner: str, name: str, tab: str, heads: HeadsQuery) -> tuple[str, int]:
    repo = repo_or_404(owner, name)
    context = repo_tab(repo, tab)
    try:
        page = parse_page(request.args)
    except BadFilter as bad:
        return render_template(f"{tab}.html", problems=bad.problems, builds=[], paging=None,
                               **context), 400
    builds, paging = one_page(page, lambda number, size: heads(session(), repo, number, size))
    html = render_template(f"{tab}.html", problems=[], builds=builds, paging=paging, **context)
    return html, 200
