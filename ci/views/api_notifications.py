"""The JSON API of a repository's notifications: the addresses mailed and the hooks called.

Both reading and changing need write permission: addresses are personal, and a hook's URL
may itself be a secret (a chat's incoming-webhook URL). Hook secrets are write-only. A PUT
replaces what it names (``emails``, ``hooks``) and leaves what it omits; a hook kept is
named by its ``id``, so its secret need not be sent again. Changes call
``ci.notifications.config``, as the CLI does; a bad value is a 400 that says why, and
changes nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request

from ci import store
from ci.notifications import config
from ci.notifications.outcome import ALWAYS
from ci.store.models import Repo
from ci.views.lookup import MAX_NUMBER, writable_repo
from ci.views.present import iso
from ci.views.resources import settings, write_session

bp = Blueprint("api_notifications", __name__, url_prefix="/api")

NOTIFICATIONS = "/repos/<owner>/<name>/notifications"
_HOOK_FIELDS = {"id": int, "url": str, "secret": str, "events": str}


def notifications_json(repo: Repo) -> dict[str, Any]:
    """What ``repo``'s builds notify, without the hooks' secrets."""
    db_session = write_session()
    return {
        "emails": store.notification_emails(db_session, repo),
        "hooks": [{"id": hook.id, "url": hook.url, "events": hook.events,
                   "created_at": iso(hook.created_at)}
                  for hook in store.notification_hooks(db_session, repo)],
        "mail_configured": bool(settings().smtp_url),
    }


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        abort(400, description=f"{what} must be a list of strings")
    if any("\x00" in item for item in value):
        abort(400, description=f"{what} contains a NUL character")
    return value


def _hook_change(item: Any) -> config.HookChange:
    """One item of ``hooks``: ``{"id": 3, "events": …}`` or ``{"url", "secret", "events"}``."""
    if not isinstance(item, dict):
        abort(400, description="each hook is an object: {\"id\": N} to keep one, or "
                               "{\"url\": …, \"secret\": …} to add one")
    unknown = sorted(set(item) - set(_HOOK_FIELDS))
    if unknown:
        abort(400, description=f"unknown hook field(s) {', '.join(unknown)}; "
                               f"known: {', '.join(_HOOK_FIELDS)}")
    for key, value in item.items():
        if type(value) is not _HOOK_FIELDS[key]:  # bool is an int in Python: compare exactly
            abort(400, description=f"a hook's {key} must be a "
                                   f"{'whole number' if key == 'id' else 'string'}")
        if isinstance(value, str) and "\x00" in value:
            abort(400, description=f"a hook's {key} contains a NUL character")
    if "id" in item and ("url" in item or "secret" in item):
        abort(400, description="a hook named by its id keeps its url and secret; to change "
                               "them, leave it out and add a new one")
    if "id" in item and not 0 < item["id"] <= MAX_NUMBER:
        abort(400, description=f"hook id {item['id']} names no hook")
    return config.HookChange(item.get("id"), item.get("url"), item.get("secret"),
                             item.get("events", ALWAYS))


@bp.get(NOTIFICATIONS)
def get_notifications(owner: str, name: str):
    return notifications_json(writable_repo(owner, name))


@bp.put(NOTIFICATIONS)
def put_notifications(owner: str, name: str):
    repo = writable_repo(owner, name)
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deeply for the parser: not an object we can use
        body = None
    if not isinstance(body, dict):
        abort(400, description="send a JSON object with Content-Type: application/json; "
                               "fields: emails, hooks")
    unknown = sorted(set(body) - {"emails", "hooks"})
    if unknown:
        abort(400, description=f"unknown field(s) {', '.join(unknown)}; known: emails, hooks")
    emails = _strings(body["emails"], "emails") if "emails" in body else None
    hooks = None
    if "hooks" in body:
        if not isinstance(body["hooks"], list):
            abort(400, description="hooks must be a list of objects")
        hooks = [_hook_change(item) for item in body["hooks"]]
    try:
        config.replace(write_session(), settings(), repo, emails, hooks)
    except store.StoreError as exc:
        write_session().rollback()
        abort(400, description=str(exc))
    return notifications_json(repo)
