"""The lists of builds the pages show besides a repository's history: the newest build
of each branch and of each pull request, the builds a duration chart draws, and a
repository by its id (for the live lists, whose notices carry ids).

Each list is one query that stays fast on a repository with a long history: the
branches' walks the index ``ix_builds_repo_branch`` from one branch name to the next
(a loose index scan, written as a recursive query both SQLite and PostgreSQL run) and
reads each branch's newest build backwards from its end, so it costs a few index
lookups per branch, not a pass over every build.
"""

from __future__ import annotations

from sqlalchemy import CTE, Select, case, func, select
from sqlalchemy.orm import Session, aliased

from ci.store.models import Build, Repo

__all__ = ["branch_heads", "branch_names", "pull_request_heads", "recent_builds", "repo_by_id"]


def _branch_names_cte(repo: Repo) -> CTE:
    """The names of the branches ``repo`` has builds of, each found by one index lookup
    from the one before it."""
    first = (select(func.min(Build.branch).label("name"))
             .where(Build.repo_id == repo.id).cte("branch_names", recursive=True))
    following = (select(func.min(Build.branch))
                 .where(Build.repo_id == repo.id, Build.branch > first.c.name)
                 .scalar_subquery())
    return first.union_all(select(following).where(first.c.name.is_not(None)))


def branch_names(session: Session, repo: Repo, limit: int) -> list[str]:
    """The first ``limit`` names (in order) of the branches ``repo`` has builds of."""
    names = _branch_names_cte(repo)
    return list(session.scalars(select(names.c.name).where(names.c.name.is_not(None))
                                .order_by(names.c.name).limit(limit)))


def branch_heads(session: Session, repo: Repo, page: int,
                 per_page: int) -> tuple[list[Build], int]:
    """One page of the newest push or manual build of each of ``repo``'s branches, the
    default branch first and then the most recently built, and how many branches
    have one. Pull requests' builds say how the pull request does: not counted."""
    names = _branch_names_cte(repo)
    newest = aliased(Build)
    head_id = (select(newest.id)
               .where(newest.repo_id == repo.id, newest.branch == names.c.name,
                      newest.pr_number.is_(None))
               .order_by(newest.number.desc()).limit(1).scalar_subquery())
    return _one_page(session, select(Build).join(names, Build.id == head_id).order_by(
        case((Build.branch == repo.default_branch, 0), else_=1), Build.number.desc()),
        page, per_page)


def pull_request_heads(session: Session, repo: Repo, page: int,
                       per_page: int) -> tuple[list[Build], int]:
    """One page of the newest build of each of ``repo``'s pull requests, the most
    recently built first, and how many pull requests have builds."""
    latest = (select(func.max(Build.number).label("number"))
              .where(Build.repo_id == repo.id, Build.pr_number.is_not(None))
              .group_by(Build.pr_number).subquery())
    return _one_page(session, select(Build).join(
        latest, (Build.repo_id == repo.id) & (Build.number == latest.c.number))
        .order_by(Build.number.desc()), page, per_page)


def _one_page(session: Session, query: Select, page: int,
              per_page: int) -> tuple[list[Build], int]:
    """Page ``page`` of ``query``'s builds and how many it has in all, in one statement;
    a second one counts only when the page is past the end."""
    rows = session.execute(query.add_columns(func.count().over().label("total"))
                           .offset((page - 1) * per_page).limit(per_page)).all()
    if rows:
        return [row[0] for row in rows], rows[0].total
    if page == 1:
        return [], 0
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return [], session.scalar(counted) or 0


def recent_builds(session: Session, repo: Repo, limit: int,
                  branch: str | None = None) -> list[Build]:
    """The newest ``limit`` builds of ``repo`` (of ``branch`` when given), oldest first."""
    query = select(Build).where(Build.repo_id == repo.id)
    if branch is not None:
        query = query.where(Build.branch == branch)
    newest = session.scalars(query.order_by(Build.number.desc()).limit(limit)).all()
    return list(reversed(newest))


def repo_by_id(session: Session, repo_id: int) -> Repo | None:
    return session.get(Repo, repo_id)
