"""Notifications: a real SMTP server (aiosmtpd) on 127.0.0.1 receives the mails, a real HTTP
server the webhooks; runner events go through the real recorder, and an in-process
``slipway reporter`` (RQ, with its scheduler) sends what the build's end queued."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from rq import Queue
from sqlalchemy import select

from ci import store
from ci.builds.recorder import Recorder
from ci.forges import statuses
from ci.notifications import config, mail
from ci.notifications import queue as notify_queue
from ci.pipeline import keys
from ci.pipeline.spec import Event, EventType
from ci.settings import SettingsError, load_settings
from ci.store.models import Build, Job, NotificationHook
from tests.conftest import add_user, free_port, post_hook, push_payload, token_headers, wait_for

HOOK_SECRET = "hook secret, shared with the receiver"
ADDRESSES = ["dev@example.com", "ops@example.org"]


class Inbox:
    """What the SMTP server received: (envelope sender, envelope recipients, message)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def inbox(monkeypatch):
    """A mail server on a free loopback port, named by SLIPWAY_SMTP_URL for the reporter."""
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("SLIPWAY_SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("SLIPWAY_MAIL_FROM", "Slipway <ci@example.com>")
    box.port = port
    yield box
    controller.stop()


@dataclass
class Delivery:
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Receiver:
    """A webhook receiver: records every POST and answers the scripted codes (200 after)."""

    def __init__(self) -> None:
        self.received: list[Delivery] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(Delivery(
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length)))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                """Quiet: the tests assert on what was received."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ci"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def reporter_env(monkeypatch):
    """The reporter reads its settings from the environment, like every Slipway process;
    retries wait 1 s here instead of minutes."""
    monkeypatch.setenv("SLIPWAY_BASE_URL", "http://ci.test")
    monkeypatch.setenv("SLIPWAY_NOTIFY_RETRY_SECONDS", "1,1,1,1")
    monkeypatch.delenv("SLIPWAY_SMTP_URL", raising=False)
    monkeypatch.setattr(notify_queue, "_told_no_smtp", [])


def publish(redis_client, job: Job, seq: int, kind: EventType, **data) -> None:
    """What a runner sends for ``job``, numbered as a runner numbers its events."""
    event = Event(type=kind, job_id=job.id, attempt=job.attempt, at=time.time(), data=data,
                  seq=seq)
    redis_client.xadd(keys.EVENTS_STREAM, {"e": event.to_json()})


def finish_build(client, session, resources, redis_client, status: str, sha: str,
                 branch: str = "main", message: str = "Make it faster\n\nDetails.") -> Build:
    """Push ``sha`` and have its one job end with ``status`` (its step "test" exiting 0,
    or 2 when it failed) through the recorder."""
    assert post_hook(client, push_payload("octo/project", sha, branch=branch,
                                          message=message)).status_code == 202
    session.rollback()
    job = session.scalars(select(Job).order_by(Job.id.desc())).first()
    publish(redis_client, job, 1, EventType.JOB_STARTED, runner="runner-1")
    publish(redis_client, job, 2, EventType.STEPS_PLANNED, steps=["lint", "test"], image="x:1")
    publish(redis_client, job, 3, EventType.STEP_FINISHED, step=0, status="passed", exit_code=0)
    publish(redis_client, job, 4, EventType.STEP_FINISHED, step=1, status=status,
            exit_code=0 if status == "passed" else 2)
    publish(redis_client, job, 5, EventType.JOB_FINISHED, status=status, error=None)
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    session.rollback()
    build = session.get(Build, job.build_id)
    assert build.status == status
    return build


def notify_jobs(redis_client) -> Queue:
    return Queue(keys.NOTIFY_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)


def finished_results(redis_client) -> list:
    """What the notification jobs that ran returned."""
    queue = notify_jobs(redis_client)
    return [queue.fetch_job(job_id).return_value()
            for job_id in queue.finished_job_registry.get_job_ids()]


def run_reporter(redis_client) -> None:
    """What ``slipway reporter`` does, until the queues are empty; due retries first."""
    statuses.reporter(redis_client).work(burst=True, with_scheduler=True)


def test_a_failed_build_is_mailed_then_fixed_once(client, session, resources, redis_client,
                                                 registered, inbox):
    config.change_emails(session, registered, ADDRESSES, [])

    failed = finish_build(client, session, resources, redis_client, "failed", "a" * 40)
    run_reporter(redis_client)

    [(sender, recipients, message)] = inbox.received
    assert (sender, recipients) == ("ci@example.com", ADDRESSES)
    assert message["Subject"] == "[octo/project] #1 failed on main: Make it faster"
    assert message["To"] == "dev@example.com, ops@example.org"
    assert message["From"] == "Slipway <ci@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    for line in ("Build #1 of octo/project failed.", "Repository: octo/project",
                 "Build:      #1 (push)", "Branch:     main", f"Commit:     {'a' * 40}",
                 f"Author:     {failed.author}", "Failed jobs:", "  job 1: failed",
                 "    step 2 'test': failed, exit code 2",
                 "http://ci.test/octo/project/builds/1"):
        assert line in body.splitlines(), (line, body)
    assert "'lint'" not in body

    finish_build(client, session, resources, redis_client, "passed", "b" * 40)
    run_reporter(redis_client)
    assert len(inbox.received) == 2
    fixed = inbox.received[1][2]
    assert fixed["Subject"] == "[octo/project] #2 fixed on main: Make it faster"
    assert ("Build #2 of octo/project passed; the previous build of main failed."
            in fixed.get_content())
    assert "Failed jobs:" not in fixed.get_content()

    finish_build(client, session, resources, redis_client, "passed", "c" * 40)
    run_reporter(redis_client)
    assert len(inbox.received) == 2  # passing again is no news


def test_a_branch_failing_again_is_mailed_and_other_branches_do_not_count(
        client, session, resources, redis_client, registered, inbox):
    config.change_emails(session, registered, ADDRESSES[:1], [])
    finish_build(client, session, resources, redis_client, "failed", "a" * 40)
    finish_build(client, session, resources, redis_client, "passed", "b" * 40, branch="other")
    finish_build(client, session, resources, redis_client, "errored", "c" * 40)
    run_reporter(redis_client)

    assert [item[2]["Subject"] for item in inbox.received] == [
        "[octo/project] #1 failed on main: Make it faster",
        "[octo/project] #3 errored on main: Make it faster"]


def verify(delivery: Delivery) -> dict:
    """The delivery's body, after checking its signature as a receiver would."""
    expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), delivery.body,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery.headers["x-slipway-signature-256"], expected)
    return json.loads(delivery.body)


def test_a_webhook_is_signed_and_says_what_happened(client, session, resources, redis_client,
                                                   registered, receiver):
    config.add_hook(session, resources.settings, registered, receiver.url, HOOK_SECRET)

    build = finish_build(client, session, resources, redis_client, "failed", "a" * 40)
    run_reporter(redis_client)

    [delivery] = receiver.received
    body = verify(delivery)
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-slipway-event"] == "build"
    assert uuid.UUID(delivery.headers["x-slipway-delivery"])
    assert {key: body[key] for key in ("repository", "build", "status", "previous_status",
                                       "outcome", "branch", "sha", "author", "url")} == {
        "repository": "octo/project", "build": 1, "status": "failed", "previous_status": None,
        "outcome": "failed", "branch": "main", "sha": "a" * 40, "author": build.author,
        "url": "http://ci.test/octo/project/builds/1"}
    assert body["message"] == "Make it faster\n\nDetails."
    assert body["jobs"][0]["status"] == "failed"
    assert body["jobs"][0]["steps"][1] == {"number": 2, "name": "test", "status": "failed",
                                           "exit_code": 2}
    assert body["text"] == (f"<http://ci.test/octo/project/builds/1|octo/project #1> failed "
                            f"on main: Make it faster ({build.author})")

    finish_build(client, session, resources, redis_client, "passed", "b" * 40)
    run_reporter(redis_client)
    fixed = verify(receiver.received[1])
    assert (fixed["status"], fixed["previous_status"], fixed["outcome"]) == (
        "passed", "failed", "fixed")


def test_hooks_hear_only_the_builds_they_ask_for(client, session, resources, redis_client,
                                                registered, receiver):
    for events in ("failure", "fixed", "always"):
        config.add_hook(session, resources.settings, registered, f"{receiver.url}/{events}",
                        HOOK_SECRET, events)

    for status, sha in (("failed", "a"), ("passed", "b"), ("passed", "c")):
        finish_build(client, session, resources, redis_client, status, sha * 40)
        run_reporter(redis_client)

    heard = [(json.loads(item.body)["build"], item.headers["x-slipway-delivery"])
             for item in receiver.received]
    assert sorted(number for number, _delivery in heard) == [1, 1, 2, 2, 3]
    assert len({delivery for _number, delivery in heard}) == 5


def test_a_hook_answering_500_twice_gets_the_third_delivery(
        client, session, resources, redis_client, registered, receiver, caplog):
    config.add_hook(session, resources.settings, registered, receiver.url, HOOK_SECRET)
    receiver.answers = [500, 500]

    with caplog.at_level(logging.INFO, logger="ci.notifications.queue"):
        finish_build(client, session, resources, redis_client, "failed", "a" * 40)

        def delivered() -> bool:
            run_reporter(redis_client)
            return len(receiver.received) == 3

        wait_for(delivered, timeout=30, what="three deliveries")

    first, second, third = receiver.received
    assert first.body == second.body == third.body
    assert (first.headers["x-slipway-delivery"] == second.headers["x-slipway-delivery"]
            == third.headers["x-slipway-delivery"])
    assert verify(third)["status"] == "failed"
    assert "not delivered, tried again later (4 more tries): 127.0.0.1 answered 500" in caplog.text
    assert "not delivered, tried again later (3 more tries): 127.0.0.1 answered 500" in caplog.text
    assert "delivered (200)" in caplog.text
    run_reporter(redis_client)
    assert len(receiver.received) == 3


def test_a_hook_answering_400_is_not_tried_again(client, session, resources, redis_client,
                                                registered, receiver, caplog):
    config.add_hook(session, resources.settings, registered, receiver.url, HOOK_SECRET)
    receiver.answers = [400]
    finish_build(client, session, resources, redis_client, "failed", "a" * 40)

    with caplog.at_level(logging.WARNING, logger="ci.notifications.queue"):
        run_reporter(redis_client)

    assert "refused (400)" in finished_results(redis_client)
    assert len(receiver.received) == 1
    assert "refused (400); not tried again" in caplog.text
    assert notify_jobs(redis_client).scheduled_job_registry.get_job_ids() == []


def test_a_build_end_queues_one_notification_even_if_its_last_event_comes_again(
        client, session, resources, redis_client, registered, receiver):
    config.add_hook(session, resources.settings, registered, receiver.url, HOOK_SECRET)
    build = finish_build(client, session, resources, redis_client, "failed", "a" * 40)
    assert len(notify_jobs(redis_client)) == 1

    [job] = build.jobs
    publish(redis_client, job, 5, EventType.JOB_FINISHED, status="failed", error=None)
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    assert recorder.drain() == 1
    statuses.report_build(redis_client, build)  # a cancel or a reconcile reporting it too
    assert len(notify_jobs(redis_client)) == 1

    run_reporter(redis_client)
    assert len(receiver.received) == 1


def test_without_smtp_there_is_no_mail_and_one_log_line(client, session, resources,
                                                        redis_client, registered, caplog):
    config.change_emails(session, registered, ADDRESSES, [])
    with caplog.at_level(logging.INFO, logger="ci.notifications.queue"):
        for sha in "ab":
            finish_build(client, session, resources, redis_client, "failed", sha * 40)
            run_reporter(redis_client)

    assert finished_results(redis_client) == [["mail: SLIPWAY_SMTP_URL is not set"]] * 2
    assert caplog.text.count("SLIPWAY_SMTP_URL is not set") == 1


def test_a_password_is_never_sent_to_a_server_without_tls(inbox):
    server = mail.parse_smtp_url(f"smtp://me:secret@127.0.0.1:{inbox.port}")
    message = mail.compose("ci@example.com", ADDRESSES, "subject", "body")

    with pytest.raises(mail.MailRefused, match="offers no STARTTLS"):
        mail.send(server, message)
    assert inbox.received == []


def test_a_mail_server_that_is_down_is_tried_again():
    server = mail.parse_smtp_url(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(mail.MailUnavailable, match="did not take the mail"):
        mail.send(server, mail.compose("ci@example.com", ADDRESSES, "subject", "body"))


@pytest.mark.parametrize("name, value, message", [
    ("SLIPWAY_SMTP_URL", "http://mail.example.com", "is not an SMTP URL"),
    ("SLIPWAY_SMTP_URL", "smtp://me:hunter2@mail.example.com:x", "port that is not a number"),
    ("SLIPWAY_NOTIFY_RETRY_SECONDS", "10,soon", "is not a list of seconds"),
])
def test_bad_mail_and_retry_settings_are_refused(name, value, message):
    with pytest.raises(SettingsError, match=message) as refused:
        load_settings({name: value})
    assert "hunter2" not in str(refused.value)


def test_smtp_urls_name_the_server_and_its_tls():
    assert mail.parse_smtp_url("smtps://me%40x:p%2Fw@mail.example.com") == mail.SmtpServer(
        "mail.example.com", 465, True, "me@x", "p/w")
    assert mail.parse_smtp_url("smtp://localhost") == mail.SmtpServer("localhost", 25, False)


# The API ----------------------------------------------------------------------------------

NOTIFICATIONS = "/api/repos/octo/project/notifications"


def test_the_api_sets_addresses_and_hooks_and_never_shows_a_secret(
        client, session, registered, api_token, resources):
    answer = client.put(NOTIFICATIONS, headers=api_token, json={
        "emails": ["dev@example.com", "DEV@example.com", "ops@example.org"],
        "hooks": [{"url": "https://chat.example.com/hooks/abc", "secret": HOOK_SECRET,
                   "events": "failure"}]})

    assert answer.status_code == 200, answer.get_json()
    data = answer.get_json()
    assert data["emails"] == ["dev@example.com", "ops@example.org"]
    [hook] = data["hooks"]
    assert (hook["url"], hook["events"]) == ("https://chat.example.com/hooks/abc", "failure")
    assert HOOK_SECRET not in answer.get_data(as_text=True)
    session.rollback()
    stored = session.scalar(select(NotificationHook))
    assert stored.secret != HOOK_SECRET and HOOK_SECRET not in stored.secret

    kept = client.put(NOTIFICATIONS, headers=api_token,
                      json={"hooks": [{"id": hook["id"], "events": "always"}]}).get_json()
    assert kept["emails"] == ["dev@example.com", "ops@example.org"]
    assert [(item["id"], item["events"]) for item in kept["hooks"]] == [(hook["id"], "always")]
    session.rollback()
    assert session.scalar(select(NotificationHook)).secret == stored.secret
    assert client.get(NOTIFICATIONS, headers=api_token).get_json() == kept
    assert client.put(NOTIFICATIONS, headers=api_token,
                      json={"hooks": []}).get_json()["hooks"] == []


@pytest.mark.parametrize("body, message", [
    ({"emails": ["dev@example.com", "not an address"]}, "is not an e-mail address"),
    ({"emails": ["dev@example.com\r\nBcc: x@example.com"]}, "is not an e-mail address"),
    ({"emails": [f"dev{n}@example.com" for n in range(21)]}, "at most 20 addresses"),
    ({"emails": "dev@example.com"}, "emails must be a list of strings"),
    ({"hooks": [{"url": "ftp://example.com/", "secret": "s"}]}, "is not a hook URL"),
    ({"hooks": [{"url": "https://example.com/"}]}, "needs a url and a secret"),
    ({"hooks": [{"url": "https://example.com/", "secret": "s", "events": "often"}]},
     "is not a choice of builds"),
    ({"hooks": [{"id": 99}]}, "has no hook 99"),
    ({"hooks": [{"id": True}]}, "must be a whole number"),
    ({"hooks": [{"url": "https://example.com/", "secret": "s", "colour": "red"}]},
     "unknown hook field(s) colour"),
    ({"webhooks": []}, "unknown field(s) webhooks"),
])
def test_the_api_refuses_bad_input_and_changes_nothing(client, session, registered, api_token,
                                                       body, message):
    config.change_emails(session, registered, ["keep@example.com"], [])

    answer = client.put(NOTIFICATIONS, headers=api_token, json={"hooks": [], **body})

    assert answer.status_code == 400
    assert message in answer.get_json()["error"]["message"]
    assert client.get(NOTIFICATIONS, headers=api_token).get_json()["emails"] == [
        "keep@example.com"]


def test_the_api_needs_write_permission_even_to_read(client, session, registered):
    reader = token_headers(session, add_user(session, "reader", grants={registered: "read"}))

    assert client.get(NOTIFICATIONS, headers=reader).status_code == 403
    assert client.put(NOTIFICATIONS, headers=reader, json={"emails": []}).status_code == 403
    assert client.get(NOTIFICATIONS).status_code == 401


# The CLI ----------------------------------------------------------------------------------

def test_the_cli_adds_lists_and_removes(cli, registered, session):
    added = cli("notify", "email", "octo/project", "--add", "dev@example.com", "--add",
                "ops@example.org")
    assert added.exit_code == 0, added.output
    assert added.output == "octo/project mails: dev@example.com, ops@example.org\n"
    hook = cli("notify", "hook", "add", "octo/project", "https://chat.example.com/x",
               "--secret-stdin", "--on", "fixed", stdin=HOOK_SECRET + "\n")
    assert hook.output == "hook 1 of octo/project added: fixed builds to https://chat.example.com/x\n"
    made = cli("notify", "hook", "add", "octo/project", "https://example.com/y")
    secret = made.output.splitlines()[1].removeprefix("its secret (shown only now): ")
    assert len(secret) == 40

    listed = cli("notify", "list").output
    assert listed == ("octo/project\temail\tdev@example.com\n"
                      "octo/project\temail\tops@example.org\n"
                      "octo/project\thook 1\tfixed\thttps://chat.example.com/x\n"
                      "octo/project\thook 2\talways\thttps://example.com/y\n")
    assert HOOK_SECRET not in listed and secret not in listed
    assert cli("notify", "list", "octo/project").output == listed

    assert cli("notify", "email", "octo/project", "--remove", "ops@example.org").output == (
        "octo/project mails: dev@example.com\n")
    assert cli("notify", "hook", "remove", "octo/project", "1").output == (
        "hook 1 of octo/project removed\n")
    session.rollback()
    assert [hook.url for hook in store.notification_hooks(session, registered)] == [
        "https://example.com/y"]


@pytest.mark.parametrize("args, message", [
    (("email", "octo/project", "--add", "a@example.com", "--add", "nope"),
     "'nope' is not an e-mail address"),
    (("email", "octo/project", "--remove", "a@example.com"), "a@example.com is not mailed"),
    (("hook", "add", "octo/project", "file:///etc/passwd"),
     "'file:///etc/passwd' is not a hook URL"),
    (("hook", "remove", "octo/project", "7"), "octo/project has no hook 7"),
    (("email", "octo/other", "--add", "a@example.com"), "octo/other is not registered"),
])
def test_the_cli_refuses_bad_input_and_stores_nothing(cli, registered, session, args, message):
    refused = cli("notify", *args)

    assert refused.exit_code == 1
    assert f"Error: {message}" in refused.output
    session.rollback()
    assert store.notification_emails(session, registered) == []
    assert store.notification_hooks(session, registered) == []


def test_the_cli_refuses_an_unknown_choice_of_builds(cli, registered):
    refused = cli("notify", "hook", "add", "octo/project", "https://example.com/", "--on", "x")
    assert refused.exit_code == 2
    assert "'x' is not one of 'always', 'failure', 'fixed'" in refused.output
