"""A repository's settings page (its writers and admins): visibility and default branch,
job limits (and how many jobs may run at once), build secrets, schedules, notifications,
the forge token, and the webhook URL to give the forge.

Each part is a form of its own that calls what the CLI calls (``store.update_repo``,
``ci.accounts.job_limits``, ``ci.accounts.repo_secrets``, ``ci.builds.schedules``,
``ci.notifications.config``, ``ci.forges.statuses``), so both behave the same. A change
goes back to the page with a message; a refusal shows the page again with what was sent
and why. Secret values, hook secrets and the forge token are write-only: no page shows
them, not even the one that refuses them (a hook secret made here is shown once).
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request
from flask import url_for

from ci import store
from ci.accounts import job_limits, repo_secrets
from ci.builds import cron, fair_queue, schedules
from ci.forges import statuses
from ci.notifications import config as notifications
from ci.notifications.outcome import ALWAYS, HOOK_EVENTS
from ci.pipeline.spec import Limits
from ci.store.models import Repo, utcnow
from ci.views.admin_access import readable_repo_for_writer, writable_repo_for_writer
from ci.views.admin_repos import webhook_url
from ci.views.auth import current_user
from ci.views.resources import redis, session, settings, write_session

bp = Blueprint("repo_settings", __name__)

PAGE = "/<owner>/<name>/settings"
#: Said when a refused form held a secret's value or a token, which no page shows.
NOT_KEPT = "For safety the value was not shown again; paste it again."


def _page_url(repo: Repo) -> str:
    return url_for("repo_settings.settings_page", owner=repo.owner, name=repo.name)


def _writable(owner: str, name: str) -> Repo:
    return writable_repo_for_writer(owner, name, back_to=f"/{owner}/{name}/settings")


def _page(repo: Repo, status: int = 200, section: str | None = None, error: str | None = None,
          sent: dict[str, object] | None = None) -> Response:
    """The page; after a refusal, ``section``'s form holds ``sent`` and shows ``error``."""
    limits = job_limits.limits_for(settings(), repo)
    shown = {
        "general": {"default_branch": repo.default_branch, "private": repo.private},
        "limits": {"memory": limits.memory, "cpus": f"{limits.cpus:g}", "pids": str(limits.pids),
                   "max_jobs": str(repo.max_concurrent_jobs or "")},
        "secret": {"name": ""},
        "schedule": {"branch": repo.default_branch, "expression": "",
                     "time_zone": cron.DEFAULT_TIME_ZONE},
        "forge": {"api_url": repo.api_url or ""},
        "email": {"address": ""},
        "hook": {"url": "", "events": ALWAYS},
    }
    if section is not None:
        shown[section] = {**shown[section], **(sent or {})}
    response = make_response(render_template(
        "admin/settings.html", repo=repo, form=shown, section=section, error=error,
        defaults=settings().limits, maxima=settings().max_limits, secrets=repo.secrets,
        max_jobs=settings().max_jobs_per_repo,
        schedules=store.list_schedules(session(), repo), shown_time=cron.shown,
        emails=store.notification_emails(session(), repo),
        hooks=store.notification_hooks(session(), repo), hook_events=HOOK_EVENTS,
        mail_ready=bool(settings().smtp_url),
        token_set=bool(repo.forge_token), statuses_missing=statuses.missing_access(repo),
        hook_url=webhook_url(repo.forge)), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(PAGE)
def settings_page(owner: str, name: str) -> Response:
    return _page(readable_repo_for_writer(owner, name))


@bp.post(PAGE + "/general")
def save_general(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    branch = request.form.get("default_branch", "").strip()
    private = request.form.get("private") == "on"
    try:
        store.update_repo(write_session(), repo, default_branch=branch, private=private)
    except store.StoreError as exc:
        write_session().rollback()
        return _page(repo, 400, "general", str(exc),
                     {"default_branch": branch, "private": private})
    flash(f"Saved: default branch {branch}, {'private' if private else 'public'}.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/limits")
def save_limits(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    sent = {key: request.form.get(key, "").strip()
            for key in ("memory", "cpus", "pids", "max_jobs")}
    try:
        changed = _changed_limits(job_limits.limits_for(settings(), repo), sent["memory"],
                                  sent["cpus"], sent["pids"])
        # Left out of the form (an older page, a script): kept as it is.
        now = job_limits.set_limits(write_session(), settings(), repo, **changed,
                                    max_jobs=request.form.get("max_jobs"))
    except store.StoreError as exc:
        write_session().rollback()
        return _page(repo, 400, "limits", str(exc), sent)
    at_once = job_limits.max_jobs_for(settings(), repo)
    fair_queue.apply_limit(redis(), repo.id, at_once)
    flash(f"Job limits: memory {now.memory}, CPUs {now.cpus:g}, processes {now.pids}. "
          f"Jobs at once: {at_once or 'no limit'}.")
    return redirect(_page_url(repo))


def _changed_limits(current: Limits, memory: str, cpus: str,
                    pids: str) -> dict[str, str | float | int]:
    """The limits given that differ from ``current``: a repository that keeps a default
    is not pinned to it, and follows when the administrator changes the defaults."""
    changed: dict[str, str | float | int] = {}
    if memory and job_limits.memory_bytes(memory) != job_limits.memory_bytes(current.memory):
        changed["memory"] = memory
    if cpus:
        try:
            value = float(cpus)
        except ValueError:
            raise store.StoreError(f"CPUs {cpus!r} is not a number; write e.g. 2 or 0.5") from None
        if value != current.cpus:
            changed["cpus"] = value
    if pids:
        if not pids.isdigit():
            raise store.StoreError(f"processes {pids!r} is not a whole number; write e.g. 1024")
        if int(pids) != current.pids:
            changed["pids"] = int(pids)
    return changed


@bp.post(PAGE + "/secrets")
def set_secret(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    secret_name = request.form.get("name", "").strip()
    value = request.form.get("value", "")
    replaced = secret_name in repo_secrets.names(repo)
    try:
        if not value:
            raise store.StoreError(f"the value of {secret_name or 'the secret'} is empty; "
                                   "type it in the value field")
        repo_secrets.set_secret(write_session(), settings(), repo, secret_name, value)
    except store.StoreError as exc:
        write_session().rollback()
        note = f" {NOT_KEPT}" if value else ""
        return _page(repo, 400, "secret", f"{exc}.{note}", {"name": secret_name})
    flash(f"Secret {secret_name} {'replaced' if replaced else 'added'}.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/secrets/<secret_name>/remove")
def remove_secret(owner: str, name: str, secret_name: str) -> Response:
    repo = _writable(owner, name)
    if repo_secrets.remove_secret(write_session(), repo, secret_name):
        flash(f"Secret {secret_name} removed.")
    else:
        flash(f"{repo.full_name} has no secret {secret_name}; nothing was removed.", "error")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/schedules")
def add_schedule(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    sent = {key: request.form.get(key, "").strip()
            for key in ("branch", "expression", "time_zone")}
    try:
        added = schedules.add(write_session(), repo, sent["branch"], sent["expression"],
                              sent["time_zone"], current_user().name, utcnow())
    except store.StoreError as exc:
        write_session().rollback()
        return _page(repo, 400, "schedule", str(exc), sent)
    flash(f"Schedule added: {added.branch} builds at '{added.expression}' "
          f"({added.time_zone}), next {cron.shown(added.next_due, added.time_zone)}.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/schedules/<int:schedule_id>/<any(enable, disable):action>")
def switch_schedule(owner: str, name: str, schedule_id: int, action: str) -> Response:
    repo = _writable(owner, name)
    found = store.get_schedule(write_session(), repo, schedule_id)
    if found is None:
        flash(f"{repo.full_name} has no schedule {schedule_id}; nothing was changed.", "error")
        return redirect(_page_url(repo))
    schedules.switch(write_session(), found, action == "enable", utcnow())
    flash(f"Schedule '{found.expression}' of {found.branch} {action}d.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/schedules/<int:schedule_id>/remove")
def remove_schedule(owner: str, name: str, schedule_id: int) -> Response:
    repo = _writable(owner, name)
    if store.remove_schedule(write_session(), repo, schedule_id):
        flash(f"Schedule {schedule_id} removed; its builds stay.")
    else:
        flash(f"{repo.full_name} has no schedule {schedule_id}; nothing was removed.", "error")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/notifications/emails")
def add_email(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    address = request.form.get("address", "").strip()
    try:
        notifications.change_emails(write_session(), repo, [address], [])
    except store.StoreError as exc:
        write_session().rollback()
        return _page(repo, 400, "email", str(exc), {"address": address})
    flash(f"{address} is mailed when a build fails or is fixed.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/notifications/emails/remove")
def remove_email(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    address = request.form.get("address", "").strip()
    try:
        notifications.change_emails(write_session(), repo, [], [address])
    except store.StoreError as exc:
        write_session().rollback()
        flash(f"{exc}; nothing was removed.", "error")
        return redirect(_page_url(repo))
    flash(f"{address} is no longer mailed.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/notifications/hooks")
def add_hook(owner: str, name: str) -> Response:
    """A hook's secret may be typed in (one the receiver already has) or made here; a made
    one is shown once, in the message after the redirect, like the CLI shows it once."""
    repo = _writable(owner, name)
    url = request.form.get("url", "").strip()
    events = request.form.get("events", ALWAYS)
    typed = request.form.get("secret", "").strip()
    secret = typed or secrets.token_hex(20)
    try:
        hook = notifications.add_hook(write_session(), settings(), repo, url, secret, events)
    except store.StoreError as exc:
        write_session().rollback()
        note = f" {NOT_KEPT}" if typed else ""
        return _page(repo, 400, "hook", f"{exc}.{note}", {"url": url, "events": events})
    shown = "the secret you gave" if typed else f"the secret {secret} (shown only now)"
    flash(f"Hook {hook.id} added: {events} builds are posted to {hook.url}, signed with "
          f"{shown}.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/notifications/hooks/<int:hook_id>/remove")
def remove_hook(owner: str, name: str, hook_id: int) -> Response:
    repo = _writable(owner, name)
    if store.remove_notification_hook(write_session(), repo, hook_id):
        flash(f"Hook {hook_id} removed.")
    else:
        flash(f"{repo.full_name} has no hook {hook_id}; nothing was removed.", "error")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/forge")
def save_forge(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    token = request.form.get("token", "").strip()
    api_url = request.form.get("api_url", "").strip()
    try:
        statuses.set_forge_access(write_session(), settings(), repo, token or None,
                                  api_url or None)
    except store.StoreError as exc:
        write_session().rollback()
        note = f" {NOT_KEPT}" if token else ""
        return _page(repo, 400, "forge", f"{exc}.{note}", {"api_url": api_url})
    if not api_url and repo.api_url:
        store.forget_api_url(write_session(), repo)
    missing = statuses.missing_access(repo)
    flash(f"Forge access saved{'; token replaced' if token else ''}. Commit statuses "
          f"{'are reported' if missing is None else 'are not reported: ' + missing}.")
    return redirect(_page_url(repo))


@bp.post(PAGE + "/forge/clear")
def clear_token(owner: str, name: str) -> Response:
    repo = _writable(owner, name)
    store.forget_forge_token(write_session(), repo)
    flash("Forge token removed: commit statuses are no longer reported.")
    return redirect(_page_url(repo))
