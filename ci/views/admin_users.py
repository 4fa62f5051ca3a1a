"""Users and what they may do (admins): add and remove users, make them admins or not,
grant and revoke read or write access to repositories.

The same operations as ``slipway user`` and ``slipway repo grant/revoke``, through the
same services (``ci.accounts.users``, ``ci.accounts.access``). An admin may not remove
themselves or take their own admin rights here, so that nobody locks themselves out.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request
from flask import url_for

from ci import store
from ci.accounts import access, users
from ci.store.models import Repo, User
from ci.views.admin_access import admin
from ci.views.resources import session, write_session

bp = Blueprint("admin_users", __name__)

WHAT = "manage users"
PAGE = "/admin/users"


def _admin() -> User:
    return admin(WHAT, back_to=PAGE)


def _page(status: int = 200, section: str | None = None, error: str | None = None,
          sent: dict[str, object] | None = None) -> Response:
    """The page; after a refusal, ``section``'s form holds ``sent`` and shows ``error``."""
    db_session = session()
    form = {"add": {"name": "", "admin": False}, "grant": {"user": "", "repo": "",
                                                           "permission": "read"}}
    if section is not None:
        form[section] = {**form[section], **(sent or {})}
    response = make_response(render_template(
        "admin/users.html", users=store.list_users(db_session),
        grants=store.grants_by_user(db_session),
        repos=[repo for repo, _latest in store.list_repos(db_session)],
        permissions=[str(permission) for permission in access.Permission],
        form=form, section=section, error=error), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _back() -> Response:
    return redirect(url_for("admin_users.users_page"))


@bp.get(PAGE)
def users_page() -> Response:
    admin(WHAT)
    return _page()


@bp.post(PAGE)
def add_user() -> Response:
    _admin()
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    make_admin = request.form.get("admin") == "on"
    sent = {"name": name, "admin": make_admin}
    try:
        if password != request.form.get("password_again", ""):
            raise store.StoreError("the two passwords differ")
        users.add_user(write_session(), name, password, make_admin)
    except store.StoreError as exc:
        write_session().rollback()
        note = " The password was not kept; type it again." if password else ""
        return _page(400, "add", f"{exc}.{note}", sent)
    flash(f"User {name} added{' as an admin' if make_admin else ''}.")
    return _back()


def _other_user(user_name: str, acting: User, refused: str) -> User | Response:
    """The user named in the URL; back to the page with a message when there is none or
    it is the admin acting (``refused`` says what they may not do to themselves)."""
    user = store.get_user(write_session(), user_name)
    if user is None:
        flash(f"There is no user {user_name}.", "error")
        return _back()
    if user.id == acting.id:
        flash(f"You may not {refused} yourself here; another admin can, or "
              "`slipway user` on the server.", "error")
        return _back()
    return user


@bp.post(PAGE + "/<user_name>/remove")
def remove_user(user_name: str) -> Response:
    user = _other_user(user_name, _admin(), "remove")
    if isinstance(user, Response):
        return user
    store.remove_user(write_session(), user.name)
    flash(f"User {user_name} removed, with their API tokens and access; they are signed out.")
    return _back()


@bp.post(PAGE + "/<user_name>/admin")
def set_admin(user_name: str) -> Response:
    user = _other_user(user_name, _admin(), "change the admin rights of")
    make_admin = request.form.get("admin") == "yes"
    if isinstance(user, Response):
        return user
    store.set_admin(write_session(), user, make_admin)
    flash(f"{user_name} is {'now an admin' if make_admin else 'no longer an admin'}.")
    return _back()


def _grant_parties() -> tuple[User, Repo] | str:
    """The user and repository a grant form names, or what is wrong with them."""
    user_name = request.form.get("user", "")
    full_name = request.form.get("repo", "")
    user = store.get_user(write_session(), user_name) if user_name else None
    if user is None:
        return "choose a user" if not user_name else f"there is no user {user_name}"
    repo = store.get_repo(write_session(), full_name) if full_name else None
    if repo is None:
        return "choose a repository" if not full_name else f"{full_name} is not registered"
    return user, repo


@bp.post("/admin/grants")
def grant() -> Response:
    _admin()
    permission = request.form.get("permission", "")
    sent = {"user": request.form.get("user", ""), "repo": request.form.get("repo", ""),
            "permission": permission}
    parties = _grant_parties()
    try:
        if isinstance(parties, str):
            raise store.StoreError(parties)
        access.grant(write_session(), parties[1], parties[0], permission)
    except store.StoreError as exc:
        write_session().rollback()
        return _page(400, "grant", f"{exc}.", sent)
    flash(f"{parties[0].name} may now {permission} {parties[1].full_name}.")
    return _back()


@bp.post("/admin/grants/revoke")
def revoke() -> Response:
    _admin()
    parties = _grant_parties()
    if isinstance(parties, str):
        flash(f"Nothing was revoked: {parties}.", "error")
    elif access.revoke(write_session(), parties[1], parties[0]):
        flash(f"{parties[0].name} no longer has access to {parties[1].full_name}.")
    else:
        flash(f"{parties[0].name} had no access to {parties[1].full_name}.")
    return _back()
