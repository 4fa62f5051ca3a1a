"""The page that adds a repository (admins): register it as ``slipway repo add`` does and,
given a forge token, make its webhook on the forge (``ci.forges.webhook_setup``).

The webhook secret, chosen or generated, is shown once, on the answer to the form, with
the webhook URL, so that it can be pasted into the forge when the forge was not asked or
refused. Neither the forge token nor a clone URL's credentials are ever shown.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

from flask import Blueprint, Response, make_response, render_template, request, url_for

from ci import forges, store
from ci.accounts import webhook_secrets
from ci.forges import statuses, webhook_setup
from ci.store.models import Repo
from ci.views.admin_access import admin
from ci.views.resources import settings, write_session

bp = Blueprint("admin_repos", __name__)

WHAT = "add repositories"
#: Bytes of randomness in a generated webhook secret.
SECRET_BYTES = 32


@dataclass
class RepoForm:
    """What the form holds, to show it again as it was sent. The forge token is not kept:
    a token is not written back into a page."""

    full_name: str = ""
    forge: str = "github"
    clone_url: str = ""
    default_branch: str = "main"
    private: bool = False
    secret: str = ""
    api_url: str = ""

    @classmethod
    def sent(cls) -> RepoForm:
        fields = {key: request.form.get(key, default).strip()
                  for key, default in asdict(cls()).items() if key != "private"}
        return cls(private=request.form.get("private") == "on", **fields)


def webhook_url(forge: str) -> str:
    """Where the forge delivers the repository's webhooks."""
    return f"{settings().base_url}/hooks/{forge}"


def _form_page(form: RepoForm, error: str | None = None, status: int = 200) -> Response:
    response = make_response(render_template("admin/repo_new.html", form=form, error=error,
                                             forges=store.FORGES), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/repos/new")
def new_repo() -> Response:
    admin(WHAT)
    return _form_page(RepoForm())


@bp.post("/admin/repos/new")
def add_repo() -> Response:
    admin(WHAT, back_to=url_for("admin_repos.new_repo"))
    form = RepoForm.sent()
    token = request.form.get("token", "").strip()
    problem = _problem(form, token)
    if problem:
        return _form_page(form, _with_token_note(problem, token), 400)
    secret = form.secret or secrets.token_urlsafe(SECRET_BYTES)
    try:
        repo = _register(form, secret, token)
    except store.StoreError as exc:
        write_session().rollback()
        return _form_page(form, _with_token_note(str(exc), token), 400)
    created, failure = None, None
    if token:
        try:
            created = webhook_setup.create_webhook(repo.forge, repo.api_url, token,
                                                   repo.full_name, webhook_url(repo.forge), secret)
        except webhook_setup.WebhookSetupError as exc:
            failure = str(exc)
    response = make_response(render_template(
        "admin/repo_added.html", repo=repo, secret=secret, hook_url=webhook_url(repo.forge),
        created=created, failure=failure,
        statuses_missing=statuses.missing_access(repo)), 201)
    response.headers["Cache-Control"] = "no-store"  # it holds the webhook secret
    return response


def _problem(form: RepoForm, token: str) -> str | None:
    """What is wrong with the form, before anything is stored; None when nothing."""
    try:
        store.validate_repo_name(form.full_name)
        store.validate_branch(form.default_branch)
        if form.api_url:
            statuses.validate_api_url(form.api_url)
    except store.StoreError as exc:
        return str(exc)
    if form.forge not in store.FORGES:
        return f"choose the forge: one of {', '.join(store.FORGES)}"
    if not form.clone_url or form.clone_url.startswith("-"):
        return "give the clone URL: an https, ssh or file:// URL or a local path"
    if token and not form.api_url and _default_api_url(form.forge) is None:
        return (f"{form.forge} has no default API URL: give the forge's API URL, e.g. "
                "https://gitea.example.com/api/v1, or leave the token empty")
    if store.get_repo(write_session(), form.full_name) is not None:
        return f"{form.full_name} is already registered; change it on its settings page"
    return None


def _default_api_url(forge: str) -> str | None:
    known = forges.get(forge)
    return known.DEFAULT_API_URL if known else None


def _with_token_note(message: str, token: str) -> str:
    if not token:
        return message
    return f"{message}. The forge token was not kept; paste it again."


def _register(form: RepoForm, secret: str, token: str) -> Repo:
    """Register the repository as ``slipway repo add`` does, and commit."""
    db_session = write_session()
    repo = webhook_secrets.register(db_session, settings(), form.full_name, form.forge,
                                    form.clone_url, secret, form.default_branch)
    if form.private:
        store.update_repo(db_session, repo, private=True)
    if token or form.api_url:
        statuses.set_forge_access(db_session, settings(), repo, token or None,
                                  form.api_url or None)
    return repo
