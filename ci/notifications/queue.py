"""Notifications in the queue: one job when a build finishes, then one per mail and hook.

Where a build's commit statuses are reported, a finished build also enqueues
:func:`fan_out` on ``slipway-notifications`` (one Redis round trip, no SQL), once per
end of the build: a redelivered runner event, or a second recorder, finds the end claimed.
``slipway reporter`` runs it: it reads the build, decides who hears of it and queues one
job per mail and per hook, each with the words it sends, so that each is retried on its
own (``SLIPWAY_NOTIFY_RETRY_SECONDS``) and a mail is never sent again because a hook
failed. What was sent is noted in Redis (``keys.notified``), so a job run twice (its
reporter died) sends nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job

from ci import store
from ci.accounts import crypto, repo_secrets
from ci.notifications import mail, message, outcome, webhook
from ci.pipeline import keys
from ci.pipeline.status import Status
from ci.settings import Settings, load_settings
from ci.store import Session, db
from ci.store.models import Build

log = logging.getLogger(__name__)

FAN_OUT = "ci.notifications.queue.fan_out"
SEND_MAIL = "ci.notifications.queue.send_mail"
SEND_HOOK = "ci.notifications.queue.send_hook"
#: The functions the reporter runs from the notifications queue, and no other.
FUNCTIONS = (FAN_OUT, SEND_MAIL, SEND_HOOK)
#: :func:`fan_out` fails only while the database or Redis does; soon tried again.
FAN_OUT_RETRY = Retry(max=5, interval=[1, 5, 30, 60, 300])
#: Longer than a mail server or a hook may take (their own timeouts are shorter).
JOB_TIMEOUT_SECONDS = 60
NOTIFIED_TTL_SECONDS = 30 * 86400
SENT = b"sent"
#: Whether this process has said that mail is not configured (it says so once).
_told_no_smtp: list[bool] = []


def _queue(redis: Redis) -> Queue:
    return Queue(keys.NOTIFY_QUEUE, connection=redis, serializer=keys.RQ_SERIALIZER)


def _claim(redis: Redis, build_id: int, finished: str, channel: str) -> bool:
    """Take the right to queue one channel's notification of one end of a build."""
    return bool(redis.set(keys.notified(build_id, finished, channel), "queued", nx=True,
                          ex=NOTIFIED_TTL_SECONDS))


def build_finished(redis: Redis, build: Build) -> bool:
    """Queue the notifications of ``build`` if it has just finished; True when this call
    queued them (False: not finished, skipped, already queued, or Redis is down)."""
    status = Status(build.status)
    if not status.finished or status == Status.SKIPPED or build.finished_at is None:
        return False
    finished = build.finished_at.isoformat()
    try:
        if not _claim(redis, build.id, finished, "build"):
            return False
        _queue(redis).enqueue_call(
            FAN_OUT, args=(build.id, finished), retry=FAN_OUT_RETRY,
            timeout=JOB_TIMEOUT_SECONDS, result_ttl=86400, failure_ttl=7 * 86400,
            description=f"notifications of {build.repo.full_name} build #{build.number}")
    except RedisError as exc:
        log.warning("%s build #%s: no notifications, Redis unavailable (%s)",
                    build.repo.full_name, build.number, exc)
        return False
    return True


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _retry(settings: Settings) -> Retry:
    return Retry(max=len(settings.notify_retry_seconds),
                 interval=list(settings.notify_retry_seconds))


def fan_out(build_id: int, finished: str) -> list[str]:
    """The RQ job: queue the mail and the hook calls ``build_id``'s end calls for.

    Returns:
        What was queued or why not, kept as the RQ result.
    """
    settings = load_settings()
    redis = get_current_job().connection
    with _session(settings) as session:
        build = store.get_build_by_id(session, build_id)
        if build is None:
            return ["the build was deleted"]
        if build.finished_at is None or build.finished_at.isoformat() != finished:
            return ["the build ran again since; its next end is notified"]
        result = outcome.outcome_of(session, build)
        done = [_fan_out_mail(session, redis, settings, build, result)]
        for hook in store.notification_hooks(session, build.repo):
            if not outcome.hook_hears(hook.events, result):
                done.append(f"hook {hook.id}: not for a build that {result.word}")
            elif _claim(redis, build_id, finished, f"hook-{hook.id}"):
                body = message.hook_body(settings.base_url, build, result)
                _queue(redis).enqueue_call(
                    SEND_HOOK, args=(build_id, finished, hook.id, str(uuid.uuid4()), body),
                    retry=_retry(settings), timeout=JOB_TIMEOUT_SECONDS, result_ttl=86400,
                    failure_ttl=7 * 86400,
                    description=f"hook {hook.id} of {build.repo.full_name} #{build.number}")
                done.append(f"hook {hook.id}: queued")
        return done


def _fan_out_mail(session: Session, redis: Redis, settings: Settings, build: Build,
                  result: outcome.Outcome) -> str:
    recipients = store.notification_emails(session, build.repo)
    if not recipients:
        return "mail: no addresses"
    if not outcome.mails(build, result):
        return f"mail: not for a {build.event} build that {result.word}"
    if not settings.smtp_url:
        if not _told_no_smtp:
            _told_no_smtp.append(True)
            log.info("notification mails are not sent: SLIPWAY_SMTP_URL is not set")
        return "mail: SLIPWAY_SMTP_URL is not set"
    if not _claim(redis, build.id, build.finished_at.isoformat(), "mail"):
        return "mail: already queued"
    _queue(redis).enqueue_call(
        SEND_MAIL, args=(build.id, build.finished_at.isoformat(), recipients,
                         message.subject(build, result),
                         message.mail_body(settings.base_url, build, result)),
        retry=_retry(settings), timeout=JOB_TIMEOUT_SECONDS, result_ttl=86400,
        failure_ttl=7 * 86400,
        description=f"mail of {build.repo.full_name} #{build.number}")
    return f"mail: queued for {len(recipients)}"


def _sender(settings: Settings) -> str:
    return settings.mail_from or f"slipway@{urlsplit(settings.base_url).hostname or 'localhost'}"


def _tries_left() -> str:
    left = get_current_job().retries_left
    return f"tried again later ({left} more tries)" if left else "given up"


def send_mail(build_id: int, finished: str, recipients: list[str], subject: str,
              body: str) -> str:
    """The RQ job: mail one build's notification.

    Raises:
        mail.MailUnavailable: the server did not take it; RQ tries again after a while.
    """
    settings = load_settings()
    redis = get_current_job().connection
    sent_key = keys.notified(build_id, finished, "mail")
    if redis.get(sent_key) == SENT:
        return "already sent"
    if not settings.smtp_url:
        return "SLIPWAY_SMTP_URL is not set any more"
    server = mail.parse_smtp_url(settings.smtp_url)
    try:
        refused = mail.send(server, mail.compose(_sender(settings), recipients, subject, body))
    except mail.MailRefused as exc:
        log.warning("mail %r refused for good: %s", subject, exc)
        return f"refused: {exc}"
    except mail.MailUnavailable as exc:
        log.warning("mail %r not sent, %s: %s", subject, _tries_left(), exc)
        raise
    redis.set(sent_key, SENT, ex=NOTIFIED_TTL_SECONDS)
    if refused:
        log.warning("mail %r refused for %s", subject, ", ".join(refused))
    log.info("mailed %r to %d address(es)", subject, len(recipients) - len(refused))
    return f"sent to {len(recipients) - len(refused)} of {len(recipients)}"


def send_hook(build_id: int, finished: str, hook_id: int, delivery: str, body: str) -> str:
    """The RQ job: POST one build's notification to one hook, signed with its secret.

    Raises:
        webhook.HookUnavailable: no answer, a 5xx or a 429; RQ tries again after a while.
    """
    settings = load_settings()
    redis = get_current_job().connection
    sent_key = keys.notified(build_id, finished, f"hook-{hook_id}")
    if redis.get(sent_key) == SENT:
        return "already sent"
    with _session(settings) as session:
        hook = store.get_notification_hook(session, hook_id)
        if hook is None:
            return "the hook was removed"
        url, encrypted = hook.url, hook.secret
    try:
        secret = crypto.decrypt(repo_secrets.key(settings), encrypted)
    except crypto.CryptoError as exc:
        log.warning("hook %s not called: %s", hook_id, exc)
        return str(exc)
    try:
        code = webhook.post(url, secret, delivery, body)
    except webhook.HookUnavailable as exc:
        log.warning("hook %s (delivery %s) not delivered, %s: %s", hook_id, delivery,
                    _tries_left(), exc)
        raise
    redis.set(sent_key, SENT, ex=NOTIFIED_TTL_SECONDS)
    if code >= 300:
        log.warning("hook %s (delivery %s): refused (%s); not tried again", hook_id,
                    delivery, code)
        return f"refused ({code})"
    log.info("hook %s (delivery %s): delivered (%s)", hook_id, delivery, code)
    return f"delivered ({code})"
