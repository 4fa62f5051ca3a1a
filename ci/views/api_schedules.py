"""The JSON API of a repository's schedules: list, read, add, enable or disable, remove.

Reading needs read access to the repository (anyone, for a public one); every change needs
write permission, as triggering a build does. Changes call ``ci.builds.schedules``, as the
CLI and the settings page do; a bad expression, time zone or branch is a 400 that says why.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, url_for

from ci import store
from ci.builds import cron, schedules
from ci.store.models import Repo, Schedule, utcnow
from ci.views.api import json_object
from ci.views.auth import current_user
from ci.views.lookup import repo_or_404, writable_repo
from ci.views.present import build_json, iso
from ci.views.resources import session, settings, write_session

bp = Blueprint("api_schedules", __name__, url_prefix="/api")

SCHEDULES = "/repos/<owner>/<name>/schedules"
SCHEDULE = SCHEDULES + "/<int:schedule_id>"


def schedule_json(schedule: Schedule, repo: Repo) -> dict[str, Any]:
    """A schedule with when it builds next and what its last time made."""
    base = settings().base_url
    build = schedule.last_build
    return {
        "id": schedule.id, "branch": schedule.branch, "expression": schedule.expression,
        "time_zone": schedule.time_zone, "enabled": schedule.enabled,
        "created_by": schedule.created_by, "created_at": iso(schedule.created_at),
        "next_due": iso(schedule.next_due) if schedule.enabled else None,
        "last_slot": iso(schedule.last_slot), "error": schedule.error,
        "last_build": build_json(build, base, repo) if build else None,
        "url": base + url_for("api_schedules.get_schedule", owner=repo.owner, name=repo.name,
                              schedule_id=schedule.id),
    }


def _schedule_or_404(db_session: store.Session, repo: Repo, schedule_id: int) -> Schedule:
    found = store.get_schedule(db_session, repo, schedule_id)
    if found is None:
        abort(404, description=f"{repo.full_name} has no schedule {schedule_id}")
    return found


@bp.get(SCHEDULES)
def list_schedules(owner: str, name: str):
    repo = repo_or_404(owner, name)
    return {"schedules": [schedule_json(item, repo)
                          for item in store.list_schedules(session(), repo)]}


@bp.post(SCHEDULES)
def add_schedule(owner: str, name: str):
    repo = writable_repo(owner, name)
    body = json_object({"expression": str, "branch": str, "time_zone": str},
                       required=("expression",))
    try:
        added = schedules.add(write_session(), repo, body.get("branch", repo.default_branch),
                              body["expression"],
                              body.get("time_zone", cron.DEFAULT_TIME_ZONE),
                              current_user().name, utcnow())
    except store.StoreError as exc:
        abort(400, description=str(exc))
    data = schedule_json(added, repo)
    return data, 201, {"Location": data["url"]}


@bp.get(SCHEDULE)
def get_schedule(owner: str, name: str, schedule_id: int):
    repo = repo_or_404(owner, name)
    return schedule_json(_schedule_or_404(session(), repo, schedule_id), repo)


@bp.patch(SCHEDULE)
def update_schedule(owner: str, name: str, schedule_id: int):
    repo = writable_repo(owner, name)
    body = json_object({"enabled": bool}, required=("enabled",))
    found = _schedule_or_404(write_session(), repo, schedule_id)
    return schedule_json(schedules.switch(write_session(), found, body["enabled"], utcnow()),
                         repo)


@bp.delete(SCHEDULE)
def remove_schedule(owner: str, name: str, schedule_id: int):
    repo = writable_repo(owner, name)
    if not store.remove_schedule(write_session(), repo, schedule_id):
        abort(404, description=f"{repo.full_name} has no schedule {schedule_id}")
    return "", 204
