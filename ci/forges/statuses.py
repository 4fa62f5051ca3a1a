"""Commit statuses out: tell the forge how a commit's build and each of its jobs are doing.

The web app and the recorder only enqueue a report (one Redis round trip) on the
``slipway-statuses`` queue; ``slipway reporter`` sends it, retrying with backoff,
so a forge that is slow, down or answering 5xx never fails or delays a build.

A report carries ids, not states: the sender reads the state from the database at
send time, while it holds the commit's lock, so reports are sent in the order the
states happened and a late or retried report can only repeat the newest state — a
stale "pending" never overwrites "success". What was last sent per context is kept
in Redis, so an unchanged state is not sent twice and an older build of the same
commit never overwrites a newer one's statuses.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import urlsplit

from redis import Redis
from redis.exceptions import LockError, RedisError
from rq import Queue, Retry, SimpleWorker, get_current_job
from rq.job import Job as RQJob

from ci import forges, store
from ci.accounts import crypto, repo_secrets
from ci.forges.api_client import OPENER
from ci.forges.types import CommitStatus, Forge, StatusRequest
from ci.notifications import queue as notifications
from ci.pipeline import keys
from ci.pipeline.durations import human_duration
from ci.pipeline.spec import EventType
from ci.pipeline.status import Status
from ci.settings import Settings, load_settings
from ci.store import Session, StoreError, db
from ci.store.models import Build, Job, Repo

log = logging.getLogger(__name__)

#: The RQ job that sends reports; enqueued by name.
DELIVER = "ci.forges.statuses.deliver"
#: Runner events after which a job's status (and its build's) is reported. A job's
#: context names its matrix cell, which is settled once the job has planned its steps.
STATUS_EVENTS = (EventType.JOB_STARTED, EventType.STEPS_PLANNED, EventType.JOB_FINISHED)
#: A forge that answers 5xx or not at all gets the report again after 1, 2, 5, 10, 30 s.
RETRY = Retry(max=5, interval=[1, 2, 5, 10, 30])
HTTP_TIMEOUT_SECONDS = 10
#: How long one report may take (RQ stops it then, and retries it like a 5xx).
REPORT_TIMEOUT_SECONDS = 20
#: How long after its timeout a report whose reporter vanished is handed to another.
HEARTBEAT_GRACE_SECONDS = 5
#: How often a reporter looks for reports whose reporter vanished (and retries to run).
MAINTENANCE_SECONDS = 5
#: Longer than one send can take; a reporter that dies holding the lock frees it then.
LOCK_SECONDS = 30
SENT_TTL_SECONDS = 30 * 86400
#: How often a repository without a token (or API URL) is mentioned in the log.
UNREPORTED_LOG_SECONDS = 86400
#: When each repository registration was last logged as unreported, in this process.
_unreported_told: dict[tuple[int, object], float] = {}
BUILD_CONTEXT = "slipway"


class ForgeUnavailable(RuntimeError):
    """The forge did not take the report (no answer, 5xx, 429); RQ tries again later."""


def report_build(redis: Redis, build: Build) -> None:
    """Bring the forge's statuses for ``build`` up to date: its own and every job's; and
    have its notifications sent if it has just finished."""
    notifications.build_finished(redis, build)
    _enqueue(redis, build, None)


def report_job(redis: Redis, job: Job) -> None:
    """Bring the forge's statuses for ``job`` and for its build up to date; and have the
    build's notifications sent if it has just finished."""
    notifications.build_finished(redis, job.build)
    _enqueue(redis, job.build, job.id)


def _enqueue(redis: Redis, build: Build, job_id: int | None) -> None:
    reason = missing_access(build.repo)
    if reason:
        # Once a day per process, not once per build: it is a choice, not an error. No
        # Redis call either: this runs on every webhook of every such repository.
        now, registration = time.monotonic(), (build.repo_id, build.repo.created_at)
        told = _unreported_told.get(registration, -UNREPORTED_LOG_SECONDS)
        if now - told >= UNREPORTED_LOG_SECONDS:
            _unreported_told[registration] = now
            log.info("no commit statuses for %s: %s", build.repo.full_name, reason)
        return
    try:
        Queue(keys.STATUS_QUEUE, connection=redis, serializer=keys.RQ_SERIALIZER).enqueue_call(
            DELIVER, args=(build.id, job_id), retry=RETRY, timeout=REPORT_TIMEOUT_SECONDS,
            result_ttl=3600, failure_ttl=86400,
            description=f"status of {build.repo.full_name} build #{build.number}",
        )
    except RedisError as exc:
        log.warning("status of %s build #%s not reported: Redis unavailable (%s)",
                    build.repo.full_name, build.number, exc)


def missing_access(repo: Repo) -> str | None:
    """Why statuses of ``repo`` cannot be reported (no token, no API URL), or None."""
    forge = forges.get(repo.forge)
    if forge is None:
        return f"forge {repo.forge!r} is not one Slipway knows"
    if not repo.forge_token:
        return f"it has no forge token; set one with `slipway repo set-token {repo.full_name}`"
    if not (repo.api_url or forge.DEFAULT_API_URL):
        return (f"{forge.NAME} has no default API URL; set one with `slipway repo set-token "
                f"{repo.full_name} --api-url https://HOST/api/v1`")
    return None


def set_forge_access(session: Session, settings: Settings, repo: Repo, token: str | None = None,
                     api_url: str | None = None) -> None:
    """Store ``repo``'s forge token (encrypted) and API base URL, and commit.

    Args:
        token: the API token statuses are sent with; None keeps the stored one.
        api_url: the API base (``https://HOST/api/v3`` for GitHub Enterprise,
            ``…/api/v4`` for GitLab, ``…/api/v1`` for Gitea); None keeps the stored one.

    Raises:
        StoreError: the token is empty or the URL is not an http(s) URL.
    """
    if token is not None and not token.strip():
        raise StoreError("the forge token is empty; give it on standard input")
    if api_url is not None:
        api_url = validate_api_url(api_url)
    encrypted = (crypto.encrypt(repo_secrets.key(settings), token.strip())
                 if token is not None else None)
    store.set_forge_access(session, repo, encrypted, api_url)


def validate_api_url(url: str) -> str:
    """``url`` without a trailing slash, or a :class:`StoreError` when it is not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StoreError(f"{url!r} is not an API URL; give the forge's API base, e.g. "
                         "https://gitea.example.com/api/v1")
    return url.rstrip("/")


class RefusedReport(RuntimeError):
    """A job in the reporter's queues names a function the reporter does not run."""


#: What the reporter runs: :func:`deliver`, and the notifications' jobs.
REPORTER_FUNCTIONS = (DELIVER, *notifications.FUNCTIONS)


class ReportJob(RQJob):
    """A job of the status or notifications queue, whose function must be one of
    :data:`REPORTER_FUNCTIONS`.

    Anyone who can write to Redis can put a job in the queue, naming any function
    (``os.system``); the reporter fails such a job instead of calling it.
    """

    @property
    def func(self) -> Callable[..., Any] | None:
        if self.func_name not in REPORTER_FUNCTIONS:
            raise RefusedReport(f"{self.func_name!r} is not one of the functions the reporter "
                                f"calls ({', '.join(REPORTER_FUNCTIONS)}); Slipway never "
                                "enqueues another")
        return super().func


class ReporterWorker(SimpleWorker):
    """An RQ worker that notices quickly when another reporter died mid-report.

    RQ hands a report whose worker vanished (SIGKILL, a lost host) to another worker
    once the report's heartbeat expires and a worker's periodic maintenance runs. By
    default that is minutes later; here a report's heartbeat outlives its timeout by
    :data:`HEARTBEAT_GRACE_SECONDS` and maintenance runs every few seconds, also while
    idle. A report taken over while it was in fact still being sent is harmless: reports
    are idempotent (see the module's docstring).
    """

    def get_heartbeat_ttl(self, job: RQJob, working_time: float = 0.0) -> int:
        return int(job.timeout or REPORT_TIMEOUT_SECONDS) + HEARTBEAT_GRACE_SECONDS


def reporter(redis: Redis) -> SimpleWorker:
    """The RQ worker of ``slipway reporter``: reads reports and notifications as JSON (never
    a pickle) and calls :data:`REPORTER_FUNCTIONS` only, statuses first. Run two or more:
    any of them may die at any moment."""
    return ReporterWorker([keys.STATUS_QUEUE, keys.NOTIFY_QUEUE], connection=redis,
                          job_class=ReportJob,
                          serializer=keys.RQ_SERIALIZER, worker_ttl=MAINTENANCE_SECONDS + 15,
                          maintenance_interval=MAINTENANCE_SECONDS)


def deliver(build_id: int, job_id: int | None = None) -> list[str]:
    """The RQ job: send the statuses of a build (and of one job, or of all of them).

    Runs in ``slipway reporter``, which reads the settings from the environment
    like every Slipway process.

    Returns:
        What happened to each context ("sent", "unchanged", …), kept as the RQ result.

    Raises:
        ForgeUnavailable: some context could not be sent; RQ retries the whole
            report, and the contexts already sent are then found unchanged.
    """
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            return send(session, get_current_job().connection, settings, build_id, job_id)
    finally:
        engine.dispose()


def send(session: Session, redis: Redis, settings: Settings, build_id: int,
         job_id: int | None = None) -> list[str]:
    """Send the statuses :func:`deliver` sends, with the connections given."""
    build = store.get_build_by_id(session, build_id)
    if build is None:
        return ["the build was deleted"]
    repo = build.repo
    reason = missing_access(repo)
    if reason:
        return [reason]
    forge = forges.get(repo.forge)
    try:
        token = crypto.decrypt(repo_secrets.key(settings), repo.forge_token)
    except crypto.CryptoError as exc:
        log.warning("statuses of %s not reported: %s", repo.full_name, exc)
        return [str(exc)]  # trying again would not help
    api_url = repo.api_url or forge.DEFAULT_API_URL
    job_ids = [job_id] if job_id is not None else [job.id for job in build.jobs]
    outcomes, failures = [], []
    try:
        with redis.lock(keys.status_lock(repo.id, build.sha), timeout=LOCK_SECONDS,
                        blocking_timeout=LOCK_SECONDS):
            newest = _last_sent(redis, build, BUILD_CONTEXT)
            if newest and newest["build"] > build.number:
                return [f"superseded by build #{newest['build']} of the same commit"]
            for target in [None, *job_ids]:
                session.rollback()  # read the state as it is now, not as it was
                try:
                    outcomes.append(_send_one(session, redis, settings, forge, api_url, token,
                                              build_id, target))
                except ForgeUnavailable as exc:
                    failures.append(str(exc))
    except LockError:
        raise ForgeUnavailable(f"statuses of {build.sha[:12]} are being sent by another "
                               "reporter") from None
    if failures:
        raise ForgeUnavailable("; ".join(failures))
    return outcomes


def _send_one(session: Session, redis: Redis, settings: Settings, forge: Forge, api_url: str,
              token: str, build_id: int, job_id: int | None) -> str:
    build = store.get_build_by_id(session, build_id)
    job = store.get_job(session, job_id) if job_id is not None else None
    if job is None and job_id is not None:
        return f"job {job_id} is gone"
    if job is not None and not _context_known(job):
        return f"job {job.number}: not planned yet"
    status = commit_status(settings, build, job)
    request = forge.status_request(api_url, token, build.repo.full_name, build.sha, status)
    last = _last_sent(redis, build, status.context)
    if last and last["build"] > build.number:
        return f"{status.context}: superseded by build #{last['build']}"
    if last and last["build"] == build.number and last["body"] == request.body:
        return f"{status.context}: unchanged"
    code = _post(request)
    if code >= 300:
        return f"{status.context}: rejected ({code})"
    redis.set(keys.status_sent(build.repo_id, build.sha, status.context),
              json.dumps({"build": build.number, "body": request.body}), ex=SENT_TTL_SECONDS)
    return f"{status.context}: sent {request.body.get('state')}"


def _last_sent(redis: Redis, build: Build, context_name: str) -> dict | None:
    """The build number and body last sent for a context of the build's commit."""
    raw = redis.get(keys.status_sent(build.repo_id, build.sha, context_name))
    return json.loads(raw) if raw else None


def _context_known(job: Job) -> bool:
    """Whether the job's matrix cell, and so its context, is settled.

    The first job of a build is renamed to its cell when it plans the build; a
    status sent under its old name would stay pending on the forge for ever.
    """
    return (Status(job.status).finished or job.image is not None
            or len(job.build.jobs) > 1)


def context(job: Job | None) -> str:
    """``slipway`` for the build, ``slipway/PYTHON=3.12`` for a job (``slipway/job``
    for one without a matrix cell)."""
    if job is None:
        return BUILD_CONTEXT
    return f"{BUILD_CONTEXT}/{'job' if job.name == 'default' else job.name}"


def commit_status(settings: Settings, build: Build, job: Job | None) -> CommitStatus:
    """What the forge should show for ``build`` (``job`` None) or for one of its jobs."""
    url = f"{settings.base_url}/{build.repo.full_name}/builds/{build.number}"
    if job is None:
        return CommitStatus(Status(build.status), context(None), _build_summary(build), url)
    status = Status(job.status)
    allowed = job.allow_failure and status in (Status.FAILED, Status.ERRORED)
    text = str(status)
    if status.finished:
        text += f" in {_duration(job)}"
        if allowed:
            text += " (allowed to fail)"
        if job.error:
            text += f": {job.error}"
    return CommitStatus(status, context(job), text, url, allowed_failure=allowed)


def _build_summary(build: Build) -> str:
    """``3 passed, 1 failed in 2m 14s`` once finished; the state before."""
    status = Status(build.status)
    if not status.finished:
        return str(status)
    counts: dict[str, int] = {}
    for job in build.jobs:
        allowed = job.allow_failure and job.status in (Status.FAILED, Status.ERRORED)
        label = "allowed to fail" if allowed else str(job.status)
        counts[label] = counts.get(label, 0) + 1
    text = ", ".join(f"{count} {label}" for label, count in counts.items())
    text += f" in {_duration(build)}"
    return f"{text}: {build.error}" if build.error else text


def _duration(item: Build | Job) -> str:
    if item.started_at is None or item.finished_at is None:
        return "0s"
    return human_duration(int((item.finished_at - item.started_at).total_seconds()),
                          tenths=False)


def _post(request: StatusRequest) -> int:
    """Send ``request``; returns the HTTP status, after logging a refusal (3xx, 4xx).

    Raises:
        ForgeUnavailable: no answer, a 5xx or a 429 — worth trying again.
    """
    http = urllib.request.Request(
        request.url, data=json.dumps(request.body).encode(), method=request.method,
        headers={**request.headers, "Content-Type": "application/json",
                 "User-Agent": "Slipway"},
    )
    try:
        with OPENER.open(http, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code >= 500 or exc.code == 429:
            raise ForgeUnavailable(f"{request.url} answered {exc.code}: {detail}") from None
        if exc.code < 400:
            detail = (f"it redirected to {exc.headers.get('Location')}, where the forge token "
                      "is not sent; give the repository the API URL it redirects to")
        log.warning("%s refused the status (%s): %s", request.url, exc.code, detail)
        return exc.code
    except OSError as exc:
        raise ForgeUnavailable(f"{request.url} did not answer: {exc}") from None




def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(500).decode("utf-8", "replace")
    except OSError:
        return str(exc.reason)
    finally:
        exc.close()
