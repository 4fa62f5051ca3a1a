"""Commit statuses out: a real HTTP server on 127.0.0.1 plays each forge's API, a real
Redis carries the reports, and an in-process RQ worker sends them."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from rq import Queue
from rq.job import JobStatus
from sqlalchemy import select

from ci import store
from ci.accounts import crypto, repo_secrets
from ci.builds import service
from ci.builds.recorder import Recorder
from ci.cli.main import main
from ci.forges import gitea, github, gitlab, statuses
from ci.forges.types import CommitStatus, Trigger
from ci.pipeline import keys
from ci.pipeline.spec import Event, EventType
from ci.pipeline.status import Status
from ci.settings import load_settings
from ci.store import db
from ci.store.models import Build, Job, Repo, utcnow
from tests.conftest import SECRET, free_port, post_hook, push_payload, wait_for

SHA = "b" * 40
TOKEN = "t0ken"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased: HTTP header names are case-insensitive
    body: dict


class ForgeAPI:
    """A forge's API: records every request and answers with the scripted codes (201 after)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[int] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                headers = {name.lower(): value for name, value in self.headers.items()}
                api.received.append(Received("POST", self.path, headers,
                                             json.loads(self.rfile.read(length))))
                code = api.answers.pop(0) if api.answers else 201
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"message": "scripted answer"}')

            def log_message(self, *args) -> None:
                """Quiet: the test asserts on what was received instead."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def states(self, context: str = "slipway") -> list[str]:
        return [r.body["state"] for r in self.received
                if r.body.get("context", r.body.get("name")) == context]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def forge_api():
    api = ForgeAPI()
    yield api
    api.close()


@pytest.fixture(autouse=True)
def reporter_env(monkeypatch):
    """The reporter reads its settings from the environment, like every Slipway process."""
    monkeypatch.setenv("SLIPWAY_BASE_URL", "http://ci.test")


#: Per forge: API path prefix, the status URL path, the auth header, the context's field.
FORGES = {
    "github": ("", f"/repos/octo/project/statuses/{SHA}", ("Authorization", f"Bearer {TOKEN}"),
               "context"),
    "gitlab": ("/api/v4", f"/api/v4/projects/octo%2Fproject/statuses/{SHA}",
               ("PRIVATE-TOKEN", TOKEN), "name"),
    "gitea": ("/api/v1", f"/api/v1/repos/octo/project/statuses/{SHA}",
              ("Authorization", f"token {TOKEN}"), "context"),
}


def add_repo(session, settings, git_repo, forge: str, api_url: str | None) -> Repo:
    repo = store.add_repo(session, "octo/project", forge, str(git_repo.path), SECRET)
    statuses.set_forge_access(session, settings, repo, TOKEN, api_url)
    return repo


def accept(session, redis_client, settings, repo: Repo, sha: str = SHA) -> Build:
    trigger = Trigger(repo=repo.full_name, event="push", ref="refs/heads/main", sha=sha,
                      branch="main", message="change")
    return service.accept(session, redis_client, settings, repo, trigger).build


def status_queue(redis_client) -> Queue:
    return Queue(keys.STATUS_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)


def send_statuses(redis_client, scheduler: bool = False) -> None:
    statuses.reporter(redis_client).work(burst=True, with_scheduler=scheduler)


def publish(redis_client, job: Job, kind: EventType, at: float, **data) -> None:
    """What a runner sends for ``job``."""
    event = Event(type=kind, job_id=job.id, attempt=job.attempt, at=at, data=data)
    redis_client.xadd(keys.EVENTS_STREAM, {"e": event.to_json()})


def jobs_of(session, build: Build) -> list[Job]:
    session.rollback()
    return list(session.scalars(select(Job).where(Job.build_id == build.id).order_by(Job.number)))


def expected(forge: str, state: str, context: str, description: str) -> dict:
    body = {"state": state, "target_url": "http://ci.test/octo/project/builds/1",
            "description": description}
    body[FORGES[forge][3]] = context
    return body


@pytest.mark.parametrize("forge, states", [
    ("github", ["pending", "pending", "pending", "pending", "success", "failure", "failure"]),
    ("gitlab", ["pending", "running", "running", "running", "success", "failed", "failed"]),
    ("gitea", ["pending", "pending", "pending", "pending", "success", "failure", "failure"]),
])
def test_a_build_reports_queued_running_and_finished_for_itself_and_each_job(
        forge, states, forge_api, session, resources, redis_client, git_repo):
    prefix, path, (auth_header, auth_value), _ = FORGES[forge]
    repo = add_repo(session, resources.settings, git_repo, forge, forge_api.url + prefix)
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    def runner_says(job: Job, kind: EventType, at: float, **data) -> None:
        publish(redis_client, job, kind, at, **data)
        recorder.drain()
        send_statuses(redis_client)

    build = accept(session, redis_client, resources.settings, repo)
    send_statuses(redis_client)
    t0 = time.time()
    [first] = jobs_of(session, build)
    runner_says(first, EventType.JOB_STARTED, t0, runner="r1")
    runner_says(first, EventType.BUILD_PLANNED, t0 + 1,
                cells=[{"PYTHON": "3.11"}, {"PYTHON": "3.12"}], allow_failures=[False, False])
    runner_says(first, EventType.STEPS_PLANNED, t0 + 2, steps=["test"], image="python:3.11")
    second = jobs_of(session, build)[1]
    runner_says(second, EventType.JOB_STARTED, t0 + 5, runner="r2")
    runner_says(second, EventType.STEPS_PLANNED, t0 + 6, steps=["test"], image="python:3.12")
    runner_says(first, EventType.JOB_FINISHED, t0 + 60, status="passed", error=None)
    runner_says(second, EventType.JOB_FINISHED, t0 + 134, status="failed", error=None)

    assert [(r.method, r.path) for r in forge_api.received] == [("POST", path)] * 7
    assert all(r.headers[auth_header.lower()] == auth_value for r in forge_api.received)
    assert all(r.headers["content-type"] == "application/json" for r in forge_api.received)
    descriptions = [
        ("slipway", "queued"), ("slipway", "running"), ("slipway/PYTHON=3.11", "running"),
        ("slipway/PYTHON=3.12", "running"), ("slipway/PYTHON=3.11", "passed in 1m 00s"),
        ("slipway", "1 passed, 1 failed in 2m 14s"), ("slipway/PYTHON=3.12", "failed in 2m 09s"),
    ]
    assert [r.body for r in forge_api.received] == [
        expected(forge, state, context, text)
        for state, (context, text) in zip(states, descriptions, strict=True)
    ]


def test_github_enterprise_and_github_headers(forge_api, session, resources, redis_client,
                                              git_repo):
    repo = add_repo(session, resources.settings, git_repo, "github", forge_api.url + "/api/v3/")
    accept(session, redis_client, resources.settings, repo)
    send_statuses(redis_client)
    [request] = forge_api.received
    assert request.path == f"/api/v3/repos/octo/project/statuses/{SHA}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["user-agent"] == "Slipway"


def test_a_forge_answering_500_twice_gets_the_status_on_the_third_try(
        forge_api, session, resources, redis_client, git_repo):
    repo = add_repo(session, resources.settings, git_repo, "gitlab", forge_api.url + "/api/v4")
    forge_api.answers = [500, 500]
    accept(session, redis_client, resources.settings, repo)
    [rq_job] = status_queue(redis_client).get_jobs()

    def retried() -> bool:
        send_statuses(redis_client, scheduler=True)  # due retries go back in the queue first
        return len(forge_api.received) == 3

    wait_for(retried, timeout=30)
    assert [r.body for r in forge_api.received] == [expected("gitlab", "pending", "slipway",
                                                             "queued")] * 3
    rq_job.refresh()
    assert rq_job.get_status() == JobStatus.FINISHED
    assert rq_job.return_value() == ["slipway: sent pending", "job 1: not planned yet"]


def test_a_late_pending_never_overwrites_success(forge_api, session, resources, redis_client,
                                                 git_repo):
    repo = add_repo(session, resources.settings, git_repo, "github", forge_api.url)
    forge_api.answers = [500]
    build = accept(session, redis_client, resources.settings, repo)
    [queued_report] = status_queue(redis_client).get_jobs()
    send_statuses(redis_client)  # the "queued" report meets a 500 and waits for its retry
    assert forge_api.states() == ["pending"]

    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    [job] = jobs_of(session, build)
    t0 = time.time()
    publish(redis_client, job, EventType.JOB_STARTED, t0, runner="r1")
    publish(redis_client, job, EventType.STEPS_PLANNED, t0 + 1, steps=["test"], image="x:1")
    publish(redis_client, job, EventType.JOB_FINISHED, t0 + 3, status="passed", error=None)
    recorder.drain()
    send_statuses(redis_client)
    assert forge_api.states() == ["pending", "success"]

    def retry_ran() -> bool:
        send_statuses(redis_client, scheduler=True)
        return queued_report.get_status(refresh=True) == JobStatus.FINISHED

    wait_for(retry_ran, timeout=30)
    assert forge_api.states() == ["pending", "success"]
    assert forge_api.states("slipway/job") == ["success"]
    # The retry reads the build as it is when it runs: it sends nothing older than success
    # (on a slow machine it may run before the recorder's own report, and send success).
    assert all(outcome.endswith(("unchanged", "sent success"))
               for outcome in queued_report.return_value())


def test_an_older_build_of_the_commit_never_overwrites_a_newer_one(
        forge_api, session, resources, redis_client, git_repo):
    repo = add_repo(session, resources.settings, git_repo, "gitea", forge_api.url + "/api/v1")
    older = accept(session, redis_client, resources.settings, repo)
    send_statuses(redis_client)
    accept(session, redis_client, resources.settings, repo)
    send_statuses(redis_client)
    [job] = jobs_of(session, older)
    store.start_job(session, job, utcnow(), "r1")
    store.finish_job(session, job, Status.PASSED, utcnow(), None)
    session.commit()
    statuses.report_build(redis_client, older)
    [late] = status_queue(redis_client).get_jobs()
    send_statuses(redis_client)
    assert [r.body["target_url"] for r in forge_api.received] == [
        "http://ci.test/octo/project/builds/1", "http://ci.test/octo/project/builds/2"]
    assert late.return_value() == ["superseded by build #2 of the same commit"]


def test_a_forge_that_is_down_never_fails_or_delays_the_build(
        client, registered, session, resources, redis_client):
    statuses.set_forge_access(session, resources.settings, registered, TOKEN,
                              f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    response = post_hook(client, push_payload("octo/project", SHA))
    assert response.status_code == 202
    assert time.monotonic() - started < 5
    [report] = status_queue(redis_client).get_jobs()
    send_statuses(redis_client)
    assert report.get_status(refresh=True) == JobStatus.SCHEDULED  # to be tried again
    session.rollback()
    assert session.scalar(select(Build)).status == Status.QUEUED
    assert len(Queue(keys.JOBS_QUEUE, connection=redis_client)) == 1


def test_a_refused_status_is_logged_and_not_retried(forge_api, session, resources, redis_client,
                                                    git_repo, caplog):
    repo = add_repo(session, resources.settings, git_repo, "github", forge_api.url)
    forge_api.answers = [422]
    accept(session, redis_client, resources.settings, repo)
    [report] = status_queue(redis_client).get_jobs()
    with caplog.at_level(logging.WARNING, logger="ci.forges.statuses"):
        send_statuses(redis_client)
    assert report.get_status(refresh=True) == JobStatus.FINISHED
    assert report.return_value() == ["slipway: rejected (422)", "job 1: not planned yet"]
    assert "refused the status (422)" in caplog.text
    assert len(forge_api.received) == 1


def test_a_long_description_is_cut_to_the_forges_limit(forge_api, session, resources,
                                                      redis_client, git_repo):
    repo = add_repo(session, resources.settings, git_repo, "github", forge_api.url)
    build = accept(session, redis_client, resources.settings, repo)
    [job] = jobs_of(session, build)
    store.finish_job(session, job, Status.ERRORED, utcnow(), "clone failed: " + "x" * 300)
    session.commit()
    statuses.report_job(redis_client, job)
    send_statuses(redis_client)
    description = forge_api.received[-1].body["description"]
    assert len(description) == 140
    assert description.startswith("errored in 0s: clone failed: xxx")
    assert description.endswith("x…")


def test_a_runner_lost_by_the_reconciler_is_reported(forge_api, session, resources,
                                                     redis_client, git_repo):
    repo = add_repo(session, resources.settings, git_repo, "github", forge_api.url)
    build = accept(session, redis_client, resources.settings, repo)
    [job] = jobs_of(session, build)
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    publish(redis_client, job, EventType.JOB_STARTED, time.time(), runner="r1")
    recorder.drain()
    send_statuses(redis_client)
    assert recorder.reconcile().retried == [job.id]  # no lease: the runner is gone
    send_statuses(redis_client)
    assert forge_api.states() == ["pending"]  # still running, on another runner
    [job] = jobs_of(session, build)
    publish(redis_client, job, EventType.JOB_STARTED, time.time(), runner="r2")
    recorder.drain()
    assert recorder.reconcile().lost == [job.id]  # the retry's runner is gone too
    send_statuses(redis_client)
    assert forge_api.states()[-1] == "error"
    assert forge_api.states("slipway/job")[-1] == "error"
    assert forge_api.received[-1].body["description"].startswith("errored in 0s: runner lost")


def test_no_token_means_no_reports_and_one_log_line(session, resources, redis_client,
                                                     registered, caplog):
    with caplog.at_level(logging.INFO, logger="ci.forges.statuses"):
        build = accept(session, redis_client, resources.settings, registered)
        statuses.report_build(redis_client, build)
        statuses.report_job(redis_client, build.jobs[0])
    assert len(status_queue(redis_client)) == 0
    assert [r.getMessage() for r in caplog.records] == [
        ("no commit statuses for octo/project: it has no forge token; set one with "
         "`slipway repo set-token octo/project`")]


def test_gitea_needs_an_api_url(session, resources, redis_client, git_repo):
    repo = add_repo(session, resources.settings, git_repo, "gitea", None)
    assert "gitea has no default API URL" in statuses.missing_access(repo)
    accept(session, redis_client, resources.settings, repo)
    assert len(status_queue(redis_client)) == 0


@pytest.mark.parametrize("forge, module, allowed", [
    ("github", github, "success"), ("gitlab", gitlab, "success"), ("gitea", gitea, "warning"),
])
def test_every_state_maps_to_the_forges_vocabulary(forge, module, allowed):
    expected_states = {
        "github": ["pending", "pending", "success", "failure", "error", "error", "success"],
        "gitlab": ["pending", "running", "success", "failed", "failed", "canceled", "success"],
        "gitea": ["pending", "pending", "success", "failure", "error", "error", "success"],
    }[forge]
    states = [module.status_request("https://api.test", TOKEN, "o/r", SHA,
                                    CommitStatus(status, "slipway", "", "u")).body["state"]
              for status in Status]
    assert states == expected_states
    failed = CommitStatus(Status.FAILED, "slipway/job", "", "u", allowed_failure=True)
    assert module.status_request("https://api.test", TOKEN, "o/r", SHA,
                                 failed).body["state"] == allowed


def test_cli_stores_the_token_encrypted(tmp_path, redis_url, redis_client, monkeypatch,
                                        git_repo):
    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLIPWAY_REDIS_URL", redis_url)
    runner = CliRunner()

    def cli(*args: str, stdin: str | None = None):
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)

    bad = cli("repo", "add", "octo/project", "--forge", "gitea", "--clone-url",
              str(git_repo.path), "--secret", "s", "--api-url", "gitea.example.com")
    assert bad.exit_code == 1
    assert "'gitea.example.com' is not an API URL" in bad.output
    added = cli("repo", "add", "octo/project", "--forge", "gitea", "--clone-url",
                str(git_repo.path), "--secret", "s", "--token-stdin", stdin="t0ken\n")
    assert added.exit_code == 0
    assert "webhook URL: http://ci.test/hooks/gitea" in added.output
    assert "statuses:    not reported: gitea has no default API URL" in added.output
    changed = cli("repo", "set-token", "octo/project", "--api-url",
                  "https://gitea.example.com/api/v1/", stdin="n3w-t0ken\n")
    assert changed.exit_code == 0
    assert "commit statuses will be reported" in changed.output
    assert cli("repo", "set-token", "else/where", stdin="x\n").exit_code == 1

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    with db.make_sessionmaker(engine)() as check:
        repo = check.scalar(select(Repo))
        assert repo.api_url == "https://gitea.example.com/api/v1"
        assert "n3w-t0ken" not in repo.forge_token
        assert crypto.decrypt(repo_secrets.key(settings), repo.forge_token) == "n3w-t0ken"
    engine.dispose()
