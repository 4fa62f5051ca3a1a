"""Who may open the admin pages: someone signed in; for what concerns every repository, an
admin; for a repository's settings, its writers.

Someone not signed in is sent to the sign-in page, which brings them back; someone signed
in without the right gets 403. Neither sees any of the page's data.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for

from ci.store.models import Repo, User
from ci.views.auth import current_user, require_admin, require_write
from ci.views.lookup import repo_or_404, writable_repo
from ci.views.resources import session


def signed_in(back_to: str | None = None) -> User:
    """The signed-in user; else the sign-in page, coming back to ``back_to`` (this page)."""
    user = current_user()
    if user is None:
        flash("Sign in to see that page.")
        target = back_to or request.full_path.rstrip("?")
        abort(redirect(url_for("auth.login", next=target)))
    return user


def admin(what: str, back_to: str | None = None) -> User:
    """The signed-in user if an admin; else the sign-in page, or 403 saying only admins
    may ``what``."""
    signed_in(back_to)
    return require_admin(what)


def readable_repo_for_writer(owner: str, name: str) -> Repo:
    """The repository, to show its settings, when the asker may change it."""
    repo = repo_or_404(owner, name)
    signed_in()
    require_write(session(), repo)
    return repo


def writable_repo_for_writer(owner: str, name: str, back_to: str) -> Repo:
    """The repository, loaded for writing, when the asker may change it."""
    repo = repo_or_404(owner, name)
    signed_in(back_to)
    return writable_repo(repo.owner, repo.name)
