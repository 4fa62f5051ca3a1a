"""``GET /api/openapi.json``: the OpenAPI 3 description of the API and the webhooks.

Written out by hand as data, next to the routes it describes; a test checks that
every route under ``/api/`` and ``/hooks/`` is here with its methods, and fuzzes
the live app against it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ci import forges
from ci.builds.cron import MAX_EXPRESSION_CHARS
from ci.notifications import config as notify_config
from ci.notifications.outcome import HOOK_EVENTS
from ci.pipeline.artifacts import MAX_PATH_CHARS
from ci.pipeline.events import EVENTS
from ci.pipeline.status import Status
from ci.store import MAX_BRANCH_BYTES
from ci.views.api import MAX_PER_PAGE
from ci.views.lookup import MAX_NUMBER

bp = Blueprint("openapi", __name__)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "nullable": True, **extra}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


_ERRORS = {
    400: "the request is malformed; the message says what to send",
    401: "nobody is signed in, or the API token is unknown",
    403: "the user lacks the permission; the message names the command that grants it",
    404: "no such repository (or a private one the user may not read), build or job",
    409: "the build is in a state that does not allow this",
    410: "retention removed the log; the message says when and why",
    503: "Redis does not answer",
}


def _op(summary: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...] = (404,),
        params: tuple[str, ...] = (), query: tuple[dict[str, Any], ...] = (),
        body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One operation: its success answers, the error answers it may give, its inputs."""
    responses: dict[str, Any] = {str(code): answer for code, answer in ok.items()}
    for code in (*errors, 401):
        responses[str(code)] = _json(_ref("Error"), _ERRORS[code])
    operation: dict[str, Any] = {
        "summary": summary, "responses": responses,
        "parameters": [{"$ref": f"#/components/parameters/{name}"} for name in params]
        + list(query),
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return operation


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


REPO = ("owner", "name")
BUILD = (*REPO, "number")
JOB = (*BUILD, "job_number")
ATTEMPT = (*JOB, "attempt")
ARTIFACT = (*JOB, "path")
ACTION = (400, 403, 404)

#: Path parameters by component name: the name in the URL, its schema, an example.
_PATH_PARAMETERS = {
    "owner": ("owner", {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$"}, "octo"),
    "name": ("name", {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$"}, "project"),
    "number": ("number", {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER}, 1),
    "job_number": ("job_number", {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER}, 1),
    "attempt": ("attempt", {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER}, 1),
    "schedule_id": ("schedule_id", {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER}, 1),
    "path": ("path", {"type": "string", "minLength": 1, "maxLength": MAX_PATH_CHARS},
             "dist/app.whl"),
    "secret_name": ("secret_name", {"type": "string", "pattern": r"^[A-Z_][A-Z0-9_]{0,99}$"},
                    "DEPLOY_TOKEN"),
    "forge": ("name", {"type": "string", "enum": sorted(
        {alias for forge in forges.FORGES.values() for alias in (forge.NAME, *forge.ALIASES)})},
        "github"),
}

_BUILD_FIELDS = {
    "id": {"type": "integer"}, "number": {"type": "integer"},
    "status": {"type": "string", "enum": list(Status)},
    "event": {"type": "string", "enum": list(EVENTS)}, "ref": {"type": "string"},
    "branch": _nullable("string"), "tag": _nullable("string"),
    "pull_request": _nullable("integer"), "sha": {"type": "string"},
    "message": {"type": "string"}, "author": {"type": "string"}, "error": _nullable("string"),
    "created_at": {"type": "string", "format": "date-time"},
    "started_at": _nullable("string", format="date-time"),
    "finished_at": _nullable("string", format="date-time"),
    "duration_seconds": _nullable("number"), "url": {"type": "string"},
    "jobs": {"type": "array", "items": _ref("Job"), "description": "only on a single build"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "example": "not_found"},
                       "message": {"type": "string"}}}}},
    "User": {"type": "object", "required": ["name", "admin"],
             "properties": {"name": {"type": "string"}, "admin": {"type": "boolean"}}},
    "Repo": {"type": "object", "required": ["full_name", "forge", "default_branch", "private"],
             "properties": {
                 "full_name": {"type": "string"}, "forge": {"type": "string"},
                 "default_branch": {"type": "string"}, "private": {"type": "boolean"},
                 "url": {"type": "string"}, "badge_url": {"type": "string"},
                 "latest_build": {**_ref("Build"), "nullable": True},
                 "permission": {"type": "string", "enum": ["read", "write"],
                                "description": "what the asker may do (single repo only)"},
                 "webhook_url": {"type": "string", "description": "only when just added"}}},
    "NewRepo": {"type": "object", "additionalProperties": False,
                "required": ["full_name", "clone_url", "secret"], "properties": {
                    "full_name": {"type": "string", "example": "octo/hello",
                                  "pattern": r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"},
                    "forge": {"type": "string", "enum": list(forges.FORGES)},
                    "clone_url": {"type": "string"}, "secret": {"type": "string"},
                    "default_branch": {"type": "string"}, "private": {"type": "boolean"}}},
    "RepoChanges": {"type": "object", "additionalProperties": False, "properties": {
        "default_branch": {"type": "string"}, "clone_url": {"type": "string"},
        "private": {"type": "boolean"}}},
    "Trigger": {"type": "object", "additionalProperties": False, "properties": {
        "branch": {"type": "string", "description": "its head is built (default branch)"},
        "sha": {"type": "string", "pattern": "^[0-9a-f]{40}$"}}},
    "Build": {"type": "object", "required": ["number", "status", "sha"],
              "properties": _BUILD_FIELDS},
    "BuildPage": {"type": "object", "required": ["builds", "page", "per_page", "total"],
                  "properties": {"builds": {"type": "array", "items": _ref("Build")},
                                 "page": {"type": "integer"}, "per_page": {"type": "integer"},
                                 "total": {"type": "integer"}}},
    "Job": {"type": "object", "required": ["number", "name", "status", "steps"], "properties": {
        "number": {"type": "integer"}, "name": {"type": "string"},
        "status": {"type": "string", "enum": list(Status)}, "attempt": {"type": "integer"},
        "image": _nullable("string"), "runner": _nullable("string"),
        "error": _nullable("string"), "duration_seconds": _nullable("number"),
        "pruned_at": _nullable("string", format="date-time",
                               description="when retention removed the job's logs and "
                                           "artifacts; null: they are kept"),
        "log_url": {"type": "string"}, "events_url": {"type": "string"},
        "artifacts_url": {"type": "string", "description": "the files the job kept"},
        "steps": {"type": "array", "items": _ref("Step")},
        "attempts": {"type": "array", "items": _ref("Attempt"),
                     "description": "every attempt, oldest first; the last is the current"}}},
    "Attempt": {"type": "object", "required": ["number", "current", "status", "log_url"],
                "properties": {
                    "number": {"type": "integer"}, "current": {"type": "boolean"},
                    "status": {"type": "string", "enum": list(Status)},
                    "image": _nullable("string"), "runner": _nullable("string"),
                    "error": _nullable("string"),
                    "started_at": _nullable("string", format="date-time"),
                    "finished_at": _nullable("string", format="date-time"),
                    "duration_seconds": _nullable("number"),
                    "log_url": {"type": "string", "description": "the attempt's log as text"},
                    "steps": {"type": "array", "items": _ref("Step")}}},
    "Step": {"type": "object", "required": ["number", "name", "status"], "properties": {
        "number": {"type": "integer"}, "name": {"type": "string"},
        "status": {"type": "string", "enum": list(Status)},
        "exit_code": _nullable("integer"), "duration_seconds": _nullable("number")}},
    "Canceled": {"type": "object", "properties": {"canceled_jobs": {"type": "integer"},
                                                  "build": _ref("Build")}},
    "Rerun": {"type": "object", "properties": {"rerun_jobs": {"type": "integer"},
                                               "build": _ref("Build")}},
    "Secrets": {"type": "object", "properties": {
        "secrets": {"type": "array", "items": {"type": "string"}}}},
    "Artifacts": {"type": "object", "required": ["attempt", "total_size", "zip_url", "artifacts"],
                  "properties": {
                      "attempt": {"type": "integer", "description": "the job's current attempt, "
                                                                    "whose files these are"},
                      "total_size": {"type": "integer", "description": "bytes, in all"},
                      "zip_url": {"type": "string", "description": "every file in one zip"},
                      "artifacts": {"type": "array", "items": _ref("Artifact"),
                                    "description": "by path"}}},
    "Artifact": {"type": "object", "required": ["path", "size", "sha256", "url"], "properties": {
        "path": {"type": "string", "example": "dist/app.whl",
                 "description": "relative to the workspace, `/` between directories"},
        "size": {"type": "integer"}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "url": {"type": "string", "description": "the file, to download"}}},
    "Queue": {"type": "object", "required": ["repos", "redis_answers", "redis_holds"],
              "properties": {
                  "repos": {"type": "array", "items": _ref("RepoQueue"),
                            "description": "the repository served next first"},
                  "redis_answers": {"type": "boolean"},
                  "redis_holds": _nullable("integer", description="jobs Redis holds for the "
                                           "runners, all repositories (admins only)")}},
    "RepoQueue": {"type": "object", "required": [
        "full_name", "url", "running", "waiting", "max_jobs", "in_redis", "why",
        "waiting_longest"], "properties": {
            "full_name": {"type": "string"}, "url": {"type": "string"},
            "running": {"type": "integer"}, "waiting": {"type": "integer"},
            "max_jobs": _nullable("integer", description="how many of its jobs may run at "
                                                         "once; null: no limit"),
            "in_redis": _nullable("integer", description="how many waiting jobs Redis holds"),
            "why": _nullable("string", example="at its limit of 2 jobs at once",
                             description="why its jobs wait: next in line for a runner, at "
                                         "its limit, or waiting its turn behind N other "
                                         "repositories; null when none waits"),
            "waiting_longest": {"type": "object", "nullable": True, "properties": {
                "build": {"type": "integer"}, "job": {"type": "integer"},
                "name": {"type": "string"}, "since": {"type": "string", "format": "date-time"},
                "url": {"type": "string"}}}}},
    "Badge": {"type": "object", "required": ["state", "url"], "properties": {
        "state": {"type": "string", "enum": ["passing", "failing", "error", "running",
                                             "canceled", "unknown"]},
        "url": {"type": "string"}}},
    "Schedule": {"type": "object", "required": ["id", "branch", "expression", "time_zone",
                                                "enabled", "next_due"], "properties": {
        "id": {"type": "integer"}, "branch": {"type": "string"},
        "expression": {"type": "string", "example": "0 3 * * *"},
        "time_zone": {"type": "string", "example": "Europe/Paris"},
        "enabled": {"type": "boolean"}, "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "next_due": _nullable("string", format="date-time",
                              description="when it builds next; null while disabled"),
        "last_slot": _nullable("string", format="date-time",
                               description="the last time it was due (the newest of those "
                                           "missed while no recorder ran)"),
        "error": _nullable("string", description="why its last time made no build"),
        "last_build": {**_ref("Build"), "nullable": True,
                       "description": "the last build it made"},
        "url": {"type": "string"}}},
    "Schedules": {"type": "object", "required": ["schedules"], "properties": {
        "schedules": {"type": "array", "items": _ref("Schedule")}}},
    "NewSchedule": {"type": "object", "additionalProperties": False, "required": ["expression"],
                    "properties": {
                        "expression": {
                            "type": "string", "maxLength": MAX_EXPRESSION_CHARS,
                            "example": "0 3 * * *",
                            "description": "five cron fields (minute hour day-of-month month "
                                           "day-of-week) or @hourly, @daily, @weekly, "
                                           "@monthly, @yearly"},
                        "branch": {"type": "string", "maxLength": MAX_BRANCH_BYTES,
                                   "description": "whose head is built (default branch)"},
                        "time_zone": {"type": "string", "maxLength": 64,
                                      "example": "Europe/Paris",
                                      "description": "an IANA name (default UTC)"}}},
    "ScheduleChanges": {"type": "object", "additionalProperties": False,
                        "required": ["enabled"], "properties": {"enabled": {
                            "type": "boolean",
                            "description": "enabled again, it builds from its next time on"}}},
    "Notifications": {"type": "object", "required": ["emails", "hooks", "mail_configured"],
                      "properties": {
                          "emails": {"type": "array", "items": {"type": "string"}},
                          "hooks": {"type": "array", "items": {
                              "type": "object", "required": ["id", "url", "events"],
                              "properties": {
                                  "id": {"type": "integer"}, "url": {"type": "string"},
                                  "events": {"type": "string", "enum": list(HOOK_EVENTS)},
                                  "created_at": {"type": "string", "format": "date-time"}}}},
                          "mail_configured": {"type": "boolean",
                                              "description": "whether SLIPWAY_SMTP_URL is set"}}},
    "NotificationChanges": {
        "type": "object", "additionalProperties": False,
        "description": "each field given replaces the current one; one left out stays",
        "properties": {
            "emails": {"type": "array", "maxItems": notify_config.MAX_RECIPIENTS,
                       "items": {"type": "string", "format": "email",
                                 "maxLength": notify_config.MAX_ADDRESS_CHARS},
                       "description": "mailed when a build fails or is fixed"},
            "hooks": {"type": "array", "maxItems": notify_config.MAX_HOOKS,
                      "description": "hooks not named are removed",
                      "items": {"oneOf": [
                          {"type": "object", "additionalProperties": False,
                           "required": ["id"], "description": "a hook kept, with its secret",
                           "properties": {
                               "id": {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER},
                               "events": {"type": "string", "enum": list(HOOK_EVENTS)}}},
                          {"type": "object", "additionalProperties": False,
                           "required": ["url", "secret"], "description": "a new hook",
                           "properties": {
                               "url": {"type": "string", "format": "uri",
                                       "pattern": "^https?://",
                                       "maxLength": notify_config.MAX_URL_CHARS},
                               "secret": {"type": "string", "minLength": 1,
                                          "maxLength": notify_config.MAX_SECRET_CHARS,
                                          "description": "keys the body's HMAC-SHA256; "
                                                         "never shown again"},
                               "events": {"type": "string", "enum": list(HOOK_EVENTS)}}}]}}}},
    "HookAnswer": {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["accepted", "ignored", "duplicate", "skipped"]},
        "reason": {"type": "string"}, "queued": {"type": "boolean"},
        "build": {"type": "object"}}},
    # The data of the build page's live stream's events (see BUILD_EVENTS).
    "BuildState": {"type": "object", "required": ["number", "status", "jobs", "now"],
                   "properties": {
                       **{key: _BUILD_FIELDS[key] for key in (
                           "number", "status", "error", "started_at", "finished_at")},
                       "now": {"type": "string", "format": "date-time",
                               "description": "the server's clock, for running durations"},
                       "jobs": {"type": "array", "items": {"type": "object", "properties": {
                           "number": {"type": "integer"}, "name": {"type": "string"},
                           "status": {"type": "string", "enum": list(Status)},
                           "attempt": {"type": "integer"}, "image": _nullable("string"),
                           "runner": _nullable("string"), "error": _nullable("string"),
                           "started_at": _nullable("string", format="date-time"),
                           "finished_at": _nullable("string", format="date-time"),
                           "steps": {"type": "array", "items": _ref("Step")}}}}}},
    "LogEvent": {"type": "object", "required": ["job", "attempt", "entries"], "properties": {
        "job": {"type": "integer"}, "attempt": {"type": "integer"},
        "reset": {"type": "boolean",
                  "description": "a new attempt began: drop the job's lines shown so far"},
        "entries": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string", "example": "1700000000000-0"},
            "kind": {"type": "string", "enum": ["step", "out", "info", "end"]},
            "step": {"type": "integer", "description": "-1: the job's own; -2 and below: "
                                                       "services"},
            "html": {"type": "string", "description": "escaped text, a line per newline"},
            "name": {"type": "string", "description": "a step's, on kind step"},
            "status": {"type": "string", "description": "the job's, on kind end"}}}}}},
}

#: The build page's stream: not an API route (it ends only once its build finished, so it
#: is not fuzzed), described with the build it follows.
BUILD_EVENTS = (
    "Live, the build page follows the build over one Server-Sent Events stream, "
    "`GET /{owner}/{name}/builds/{number}/events` (`text/event-stream`, readable by whoever "
    "may read the build): a `state` event (schema `BuildState`) at the start and at each "
    "change of the build; `log` events (schema `LogEvent`) with each job's new log entries; "
    "`end` once the build finished and every log was sent. A `log` event's `id` is a cursor "
    "(`1.1:1700000000000-0,2.1:1700000000123-4`: job number, attempt, last entry id) from "
    "which `Last-Event-ID` or `?after=` resumes every job's log without a gap or a repeat; "
    "a malformed one is answered 400.")

_LOG_HEADERS = {
    "X-Next-Offset": {"schema": {"type": "integer"},
                      "description": "the offset to ask from next (the log's length so far)"},
    "X-Log-Complete": {"schema": {"type": "string", "enum": ["true", "false"]},
                       "description": "true once the job has finished: nothing more will come"},
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/openapi.json": {"get": {"summary": "This description", "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3 document"}}}},
    "/api/user": {"get": _op("Who the request is authenticated as",
                             {200: _json(_ref("User"), "the user")}, errors=())},
    "/api/queue": {"get": _op(
        "What waits for a runner and why, per repository the asker may read (signed in)",
        {200: _json(_ref("Queue"), "the queue; Redis's counts are null when it does not "
                                   "answer")}, errors=())},
    "/api/repos": {
        "get": _op("Repositories the asker may read, with their latest build",
                   {200: _json({"type": "object", "properties": {
                       "repos": {"type": "array", "items": _ref("Repo")}}}, "repositories")},
                   errors=()),
        "post": _op("Register a repository (admins)", {201: _json(_ref("Repo"), "registered")},
                    errors=(400, 403, 409), body=_ref("NewRepo")),
    },
    "/api/repos/{owner}/{name}": {
        "get": _op("A repository", {200: _json(_ref("Repo"), "the repository")}, params=REPO),
        "patch": _op("Change a repository's settings (write permission; clone_url: admins)",
                     {200: _json(_ref("Repo"), "the changed repository")},
                     errors=ACTION, params=REPO, body=_ref("RepoChanges")),
        "delete": _op("Remove a repository with all its builds (admins)",
                      {204: {"description": "removed"}}, errors=(403, 404), params=REPO),
    },
    "/api/repos/{owner}/{name}/badge": {"get": _op(
        "What the repository's badge shows", {200: _json(_ref("Badge"), "the badge")},
        params=REPO, query=(_query("branch", {"type": "string"}, "default: default branch"),))},
    "/api/repos/{owner}/{name}/schedules": {
        "get": _op("The repository's schedules", {200: _json(_ref("Schedules"), "schedules")},
                   params=REPO),
        "post": _op("Build a branch at the times of a cron expression (write permission)",
                    {201: _json(_ref("Schedule"), "the schedule, with its first time")},
                    errors=ACTION, params=REPO, body=_ref("NewSchedule")),
    },
    "/api/repos/{owner}/{name}/schedules/{schedule_id}": {
        "get": _op("A schedule", {200: _json(_ref("Schedule"), "the schedule")},
                   params=(*REPO, "schedule_id")),
        "patch": _op("Enable or disable a schedule (write permission)",
                     {200: _json(_ref("Schedule"), "the changed schedule")}, errors=ACTION,
                     params=(*REPO, "schedule_id"), body=_ref("ScheduleChanges")),
        "delete": _op("Remove a schedule; its builds stay (write permission)",
                      {204: {"description": "removed"}}, errors=(403, 404),
                      params=(*REPO, "schedule_id")),
    },
    "/api/repos/{owner}/{name}/notifications": {
        "get": _op("Who hears of the repository's builds, without hook secrets (write "
                   "permission)", {200: _json(_ref("Notifications"), "addresses and hooks")},
                   errors=(403, 404), params=REPO),
        "put": _op("Set the addresses mailed and the hooks called (write permission)",
                   {200: _json(_ref("Notifications"), "addresses and hooks now")},
                   errors=ACTION, params=REPO, body=_ref("NotificationChanges")),
    },
    "/api/repos/{owner}/{name}/secrets": {"get": _op(
        "Names of the repository's secrets (write permission)",
        {200: _json(_ref("Secrets"), "names, never values")}, errors=(403, 404), params=REPO)},
    "/api/repos/{owner}/{name}/secrets/{secret_name}": {
        "put": _op("Set a secret (write permission)", {200: _json(_ref("Secrets"), "names")},
                   errors=ACTION, params=(*REPO, "secret_name"),
                   body={"type": "object", "required": ["value"], "additionalProperties": False,
                         "properties": {"value": {"type": "string", "minLength": 1}}}),
        "delete": _op("Remove a secret (write permission)",
                      {200: _json(_ref("Secrets"), "names")}, errors=(403, 404),
                      params=(*REPO, "secret_name")),
    },
    "/api/repos/{owner}/{name}/builds": {
        "get": _op("Builds, newest first", {200: _json(_ref("BuildPage"), "one page")},
                   errors=(400, 404), params=REPO, query=(
                       _query("branch", {"type": "string", "maxLength": MAX_BRANCH_BYTES},
                              "only builds of this branch (pull requests: into it); a name "
                              "git refuses is a 400, as on the repository page"),
                       _query("status", {"type": "string", "enum": list(Status)},
                              "only builds in this state"),
                       _query("event", {"type": "string", "enum": list(EVENTS)},
                              "only builds of this trigger"),
                       _query("page", {"type": "integer", "minimum": 1},
                              "from 1; past the last page the list is empty"),
                       _query("per_page", {"type": "integer", "minimum": 1,
                                           "maximum": MAX_PER_PAGE}, "builds per page"))),
        "post": _op("Build a branch's head or a commit by hand (write permission)",
                    {201: _json(_ref("Build"), "the queued build")}, errors=ACTION,
                    params=REPO, body=_ref("Trigger")),
    },
    "/api/repos/{owner}/{name}/builds/{number}": {"get": {**_op(
        "A build with its jobs and steps", {200: _json(_ref("Build"), "the build")},
        params=BUILD), "description": BUILD_EVENTS}},
    "/api/repos/{owner}/{name}/builds/{number}/cancel": {"post": _op(
        "Stop a build's unfinished jobs (write permission)",
        {202: _json(_ref("Canceled"), "asked to stop")}, errors=(403, 404, 409, 503),
        params=BUILD)},
    "/api/repos/{owner}/{name}/builds/{number}/restart": {"post": _op(
        "Run a finished build again as a new build (write permission)",
        {201: _json(_ref("Build"), "the new build")}, errors=(403, 404, 409), params=BUILD)},
    "/api/repos/{owner}/{name}/builds/{number}/rerun-failed": {"post": _op(
        "Run a finished build's failed jobs again (write permission)",
        {202: _json(_ref("Rerun"), "queued again")}, errors=(403, 404, 409), params=BUILD)},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}": {"get": _op(
        "A job with its steps", {200: _json(_ref("Job"), "the job")}, params=JOB)},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}/cancel": {"post": _op(
        "Stop one job (write permission)", {202: _json(_ref("Canceled"), "asked to stop")},
        errors=(403, 404, 409, 503), params=JOB)},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}/log": {"get": _op(
        "A job's log as text, from a byte offset (for tailing)",
        {200: {"description": "the log from offset on", "headers": _LOG_HEADERS,
               "content": {"text/plain": {"schema": {"type": "string"}}}},
         416: _json(_ref("Error"), "the offset is past the log's end; start from 0")},
        errors=(400, 404, 410), params=JOB,
        query=(_query("offset", {"type": "integer", "minimum": 0}, "bytes to skip"),))},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}/attempts/{attempt}/log": {
        "get": _op("The log of one attempt of a job as text: an earlier one a rerun or a "
                   "retry replaced, or the current",
                   {200: {"description": "the attempt's log",
                          "content": {"text/plain": {"schema": {"type": "string"}}}}},
                   errors=(404, 410), params=ATTEMPT)},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}/artifacts": {"get": _op(
        "The files the job's current attempt kept (`artifacts:` in `.slipway.yml`)",
        {200: _json(_ref("Artifacts"), "the files, by path; none while the job runs")},
        params=JOB)},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}/artifacts/{path}": {"get": _op(
        "One file the job kept, as an attachment; its sha256 is its ETag, byte ranges work",
        {200: {"description": "the file's bytes, whatever it holds",
               "content": {"application/octet-stream": {
                   "schema": {"type": "string", "format": "binary"}}}},
         304: {"description": "the file is the one of `If-None-Match`"},
         410: _json(_ref("Error"), "the file is no longer stored (retention removed it)")},
        params=ARTIFACT)},
    "/api/repos/{owner}/{name}/builds/{number}/jobs/{job_number}/artifacts.zip": {"get": _op(
        "Every file the job's current attempt kept, in one zip made as it is sent",
        {200: {"description": "the zip, `<owner>-<name>-<build>-<job>-artifacts.zip`",
               "content": {"application/zip": {
                   "schema": {"type": "string", "format": "binary"}}}}},
        params=JOB)},
    # A job's `log_url`, which is a page: its errors are pages too.
    "/{owner}/{name}/builds/{number}/jobs/{job_number}/log.txt": {"get": {
        "summary": "A job's log as plain text, without terminal escape sequences",
        "parameters": [{"$ref": f"#/components/parameters/{name}"} for name in JOB] + [
            _query("download", {"type": "string", "enum": ["0", "1"]},
                   "1: sent as a file to save, `<owner>-<name>-<build>-<job>.log`")],
        "responses": {
            "200": {"description": "the log",
                    "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                                        "description": "with download=1"}},
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            **{str(code): {"description": text, "content": {"text/html": {}}}
               for code, text in ((400, "download is neither 0 nor 1"), (401, _ERRORS[401]),
                                  (404, _ERRORS[404]))},
            "410": {"description": _ERRORS[410],
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/hooks/{name}": {"post": {
        "summary": "A forge's webhook (signed with the repository's webhook secret)",
        "security": [], "parameters": [{"$ref": "#/components/parameters/forge"}],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
        "responses": {
            "202": _json(_ref("HookAnswer"), "a build was recorded and queued"),
            "200": _json(_ref("HookAnswer"), "nothing to build, or a repeated delivery"),
            **{str(code): _json(_ref("Error"), text) for code, text in (
                (400, "malformed"), (401, "bad signature"),
                (404, "unknown repository or forge"), (413, "body too large"))}}}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Slipway", "version": "1",
             "description": "Continuous integration on your own servers. Authenticate with "
                            "`Authorization: Bearer <token>` (`slipway token create USER`)."},
    "paths": PATHS,
    "security": [{"bearerAuth": []}, {}],
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "parameters": {
            key: {"name": name, "in": "path", "required": True, "schema": schema,
                  "example": example}
            for key, (name, schema, example) in _PATH_PARAMETERS.items()},
    },
}


@bp.get("/api/openapi.json")
def document() -> dict[str, Any]:
    return DOCUMENT
