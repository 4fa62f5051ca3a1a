"""Who is asking: sign-in and sign-out, the session cookie, API tokens and CSRF.

A browser signs in once and is known by Flask's signed session cookie (``HttpOnly``,
``SameSite=Lax``); a script sends ``Authorization: Bearer <token>``. Every request
that changes something and arrives with the cookie must also carry the session's
CSRF token (a form field, or the ``X-CSRF-Token`` header), because a browser sends
the cookie along with a form another site makes it post. A Bearer token is never
sent by a browser on its own, so such requests need none.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask import session as cookie
from redis.exceptions import RedisError
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import TooManyRequests, Unauthorized
from werkzeug.wrappers import Response

from ci import store
from ci.accounts import access, users
from ci.store.models import Repo, User
from ci.views.resources import redis, session

bp = Blueprint("auth", __name__)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SESSION_LIFETIME = timedelta(days=30)
#: Requests from forges, authenticated by their own signatures, and static files.
UNAUTHENTICATED_PREFIXES = ("/hooks/", "/static/")
#: The metrics, which carry their own token (``SLIPWAY_METRICS_TOKEN``), not a user's. A
#: path, not a prefix: a repository's owner may be called ``metrics…``.
UNAUTHENTICATED_PATHS = ("/metrics",)


def init_app(app: Flask) -> None:
    # Behind TLS the cookie is never sent in clear; on plain http (a laptop) it must be.
    secure = app.extensions["slipway"].settings.base_url.startswith("https://")
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=secure, PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)
    app.before_request(_identify)
    app.before_request(_check_csrf)
    app.add_template_global(current_user)
    app.add_template_global(csrf_token)
    app.add_template_global(CSRF_FIELD, "csrf_field")


def current_user() -> User | None:
    """The signed-in user or the owner of the request's API token; None: anonymous."""
    return g.get("user")


def _bearer_token() -> str | None:
    """The request's ``Authorization: Bearer`` token. Other schemes are not Slipway's
    (a proxy in front may use Basic), so they are ignored rather than refused."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _identify() -> None:
    if request.path.startswith(UNAUTHENTICATED_PREFIXES) or request.path in UNAUTHENTICATED_PATHS:
        return
    token = _bearer_token()
    if token is not None:
        g.user = users.user_for_token(session(), token) if token else None
        if g.user is None:
            raise unauthorized("this API token is unknown or was revoked; create a new one "
                               "with `slipway token create USER`")
        return
    user_id = cookie.get("user_id")
    if user_id is None:
        return
    user = store.get_user_by_id(session(), user_id)
    if user is not None and hmac.compare_digest(cookie.get("key", ""), users.session_key(user)):
        g.user = user
    else:  # the user was removed (or removed and added again) since signing in
        cookie.clear()


def unauthorized(message: str) -> Unauthorized:
    """A 401 that tells the client which credentials to send."""
    return Unauthorized(message, www_authenticate=WWWAuthenticate("Bearer"))


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = cookie.get("csrf")
    if not token:
        token = cookie["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    if request.method in SAFE_METHODS or request.path.startswith(UNAUTHENTICATED_PREFIXES):
        return
    if _bearer_token() is not None:
        return  # a browser never adds one by itself, so it cannot be forged cross-site
    if request.path.startswith("/api/") and current_user() is None:
        return  # nobody is signed in: the route itself answers 401
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = cookie.get("csrf") or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        if request.path.startswith("/api/"):
            abort(400, description=f"this request uses the session cookie, so it needs the "
                                   f"session's CSRF token in the {CSRF_HEADER} header; or send "
                                   "an API token as `Authorization: Bearer <token>` instead")
        abort(400, description="the form's security token (CSRF) is missing or out of date, "
                               "so nothing was changed; reload the page and try again")


def require_write(db_session, repo: Repo) -> User:
    """The user, if they may change ``repo``; else 404 (cannot see it), 401 or 403."""
    user = current_user()
    if not access.can_read(db_session, user, repo):
        abort(404, description=f"repository {repo.full_name} is not registered")
    if not access.can_write(db_session, user, repo):
        _refuse(user, f"change {repo.full_name}",
                f"slipway repo grant {repo.full_name} {user.name if user else 'USER'} "
                "--permission write")
    return user


def require_admin(what: str) -> User:
    """The user, if an admin; else 401 or 403 saying that only admins may ``what``."""
    user = current_user()
    if user is None:
        raise unauthorized(f"sign in or send an API token of an admin to {what}")
    if not user.admin:
        abort(403, description=f"only admins may {what}, and {user.name} is not one")
    return user


def _refuse(user: User | None, what: str, fix: str) -> None:
    if user is None:
        raise unauthorized(f"sign in or send an API token to {what}")
    abort(403, description=f"{user.name} may not {what}; an admin can allow it: `{fix}`")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path on this site, never another host."""
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") \
            or target.startswith(("//", "/\\")):
        return url_for("pages.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, name="", error=None)
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    try:
        wait = users.sign_in_wait(redis(), name, address)
        if wait:
            raise TooManyRequests(f"too many failed sign-ins as {name} from your address; try "
                                  f"again in {(wait + 59) // 60} minute(s)", retry_after=wait)
        user = users.authenticate(session(), name, password)
        if user is None:
            users.sign_in_failed(redis(), name, address)
            return render_template("login.html", next=target, name=name,
                                   error="Wrong user name or password."), 401
        users.sign_in_succeeded(redis(), name, address)
    except RedisError:
        abort(503, description="signing in needs Redis, which does not answer; try again "
                               "in a moment")
    cookie.clear()  # a fresh session (and CSRF token) for the signed-in user
    cookie.permanent = True
    cookie["user_id"], cookie["key"] = user.id, users.session_key(user)
    flash(f"Signed in as {user.name}.")
    return redirect(target)


@bp.post("/logout")
def logout() -> Response:
    cookie.clear()
    flash("Signed out.")
    return redirect(url_for("pages.index"))
