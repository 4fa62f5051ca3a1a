"""Holes on the server side, each shown with the real parts an attacker or a fault would use:
jobs planted in Redis, runner events that cannot be applied, repository settings and the
remote a manual trigger asks, status reports that are redirected, key files made by
processes starting together, and cancels of finished builds."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer
from sqlalchemy import select

from ci import settings as settings_module
from ci import store
from ci.builds import dispatch, service
from ci.builds.recorder import Recorder
from ci.forges import statuses
from ci.forges.types import Trigger
from ci.pipeline import keys
from ci.settings import SettingsError, kept_secret
from ci.store import db
from ci.store.models import Build
from runners.rq_job import RunnerJob
from tests.conftest import (SLIPWAY, add_user, csrf_of, post_hook, push_payload, sign_in,
                            token_headers, wait_for)

API = "/api/repos/octo/project"


def build(session, number: int) -> Build:
    """The build as committed now."""
    session.rollback()
    session.expire_all()
    return session.scalar(select(Build).where(Build.number == number))


# 4. Jobs in Redis are data, never code ----------------------------------------------------

class Planted:
    """What an attacker with Redis access pickles into a job: unpickling it makes a folder."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def plant(redis_client, queue: str, function: str, folder: Path) -> dict[str, Path]:
    """Jobs written straight into ``queue``, as anyone who can write to Redis could.

    Each would make its own folder if the worker unpickled it or called what it names:
    ``function`` with a pickled argument, and ``os.mkdir`` by name, pickled and as JSON.
    """
    markers = {name: folder / name for name in ("unpickled", "pickle-named", "json-named")}
    pickled = Queue(queue, connection=redis_client)  # RQ's default: pickle
    pickled.enqueue_call(function, args=(Planted(markers["unpickled"]),), job_id="unpickled")
    pickled.enqueue_call("os.mkdir", args=(str(markers["pickle-named"]),),
                         job_id="pickle-named")
    Queue(queue, connection=redis_client, serializer=JSONSerializer).enqueue_call(
        "os.mkdir", args=(str(markers["json-named"]),), job_id="json-named")
    return markers


def rq_status(redis_client, job_id: str) -> str | None:
    """The state RQ keeps for a job, read from its hash (no unpickling, no JSON)."""
    raw = redis_client.hget(RQJob.key_for(job_id), "status")
    return raw.decode() if raw else None


def refused_or_ran(redis_client, markers: dict[str, Path]) -> dict[str, object]:
    """Per planted job: whether its folder was made, and the state RQ left it in."""
    return {name: (path.exists(), rq_status(redis_client, name))
            for name, path in markers.items()}


def failed_with(redis_client, job_id: str) -> str:
    """The class name of the exception a failed job ended with."""
    job = RQJob.fetch(job_id, connection=redis_client, serializer=keys.RQ_SERIALIZER)
    last_line = job.latest_result().exc_string.strip().splitlines()[-1]
    return last_line.split(":")[0].rsplit(".", 1)[-1]


#: Why each planted job fails: the pickles are never loaded, the other function never called.
REFUSALS = {"unpickled": "DeserializationError", "pickle-named": "DeserializationError"}


@pytest.mark.docker
def test_a_runner_refuses_planted_jobs_and_runs_none_of_their_code(
        redis_client, redis_url, tmp_path):
    markers = plant(redis_client, keys.JOBS_QUEUE, keys.RUN_JOB, tmp_path)
    env = {**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner"),
           "SLIPWAY_REDIS_URL": redis_url}
    subprocess.run([SLIPWAY, "worker", "--burst"], env=env, check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert refused_or_ran(redis_client, markers) == {name: (False, "failed") for name in markers}
    assert {name: failed_with(redis_client, name) for name in markers} == {
        **REFUSALS, "json-named": "RefusedJob"}


def test_the_reporter_refuses_planted_jobs_and_runs_none_of_their_code(
        redis_client, redis_url, tmp_path):
    markers = plant(redis_client, keys.STATUS_QUEUE, statuses.DELIVER, tmp_path)
    env = {**os.environ, "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
           "SLIPWAY_REDIS_URL": redis_url}
    reporter = subprocess.Popen([SLIPWAY, "reporter"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: all(rq_status(redis_client, name) in ("finished", "failed")
                             for name in markers), timeout=60)
    finally:
        reporter.terminate()
        reporter.wait(timeout=30)
    assert refused_or_ran(redis_client, markers) == {name: (False, "failed") for name in markers}
    assert {name: failed_with(redis_client, name) for name in markers} == {
        **REFUSALS, "json-named": "RefusedReport"}


def test_a_job_queued_as_a_pickle_before_an_upgrade_is_queued_again_as_json(
        client, registered, session, resources, redis_client, monkeypatch):
    post_hook(client, push_payload("octo/project", "a" * 40))
    job = build(session, 1).jobs[0]
    spec = RQJob.fetch(keys.rq_job_id(job.id, 1), connection=redis_client,
                       serializer=keys.RQ_SERIALIZER).args[0]
    redis_client.delete(f"rq:queue:{keys.JOBS_QUEUE}")  # as an older Slipway queued it:
    Queue(keys.JOBS_QUEUE, connection=redis_client).enqueue_call(
        keys.RUN_JOB, args=(spec,), job_id=keys.rq_job_id(job.id, 1))
    SimpleWorker([keys.JOBS_QUEUE], connection=redis_client, job_class=RunnerJob,
                 serializer=keys.RQ_SERIALIZER).work(burst=True)
    assert rq_status(redis_client, keys.rq_job_id(job.id, 1)) == "failed"
    monkeypatch.setattr(dispatch, "REQUEUE_GRACE", timedelta(0))
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    assert recorder.reconcile().requeued == [job.id]
    again = RQJob.fetch(keys.rq_job_id(job.id, 2), connection=redis_client,
                        serializer=keys.RQ_SERIALIZER)
    assert (again.func_name, again.args[0]["attempt"]) == (keys.RUN_JOB, 2)


# 6. An event that cannot be applied is set aside -----------------------------------------

def publish(redis_client, job_id: int, kind: str, **data) -> None:
    """A runner event as it arrives in the stream, malformed or not."""
    raw = {"type": kind, "job_id": job_id, "attempt": 1, "at": time.time(), "data": data}
    redis_client.xadd(keys.EVENTS_STREAM, {"e": json.dumps(raw)})


def test_an_event_that_cannot_be_applied_is_set_aside_and_recording_goes_on(
        client, registered, session, resources, redis_client, caplog):
    post_hook(client, push_payload("octo/project", "a" * 40))
    post_hook(client, push_payload("octo/project", "b" * 40, branch="other"))
    bad, good = build(session, 1).jobs[0].id, build(session, 2).jobs[0].id
    publish(redis_client, bad, "job.started", runner="r1")
    publish(redis_client, bad, "job.steps", steps=["test"], image="x:1")
    publish(redis_client, bad, "step.started", step="first")
    publish(redis_client, bad, "step.finished", step=0, status="bogus", exit_code=0)
    # Applied to the job, the build and its steps, then refused by the database at commit.
    publish(redis_client, bad, "job.finished", status="failed", error={"not": "a sentence"})
    for kind, data in (("job.started", {"runner": "r1"}),
                       ("job.steps", {"steps": ["test"], "image": "x:1"}),
                       ("step.started", {"step": 0}),
                       ("step.finished", {"step": 0, "status": "passed", "exit_code": 0}),
                       ("job.finished", {"status": "passed", "error": None})):
        publish(redis_client, good, kind, **data)
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    with caplog.at_level(logging.ERROR, logger="ci.builds.recorder"):
        assert recorder.drain() == 10
    recorded = build(session, 2)
    assert (recorded.status, [step.status for step in recorded.jobs[0].steps]) == (
        "passed", ["passed"])
    assert build(session, 1).jobs[0].status == "running"
    dead = redis_client.xrange(keys.EVENTS_DEAD_STREAM)
    assert [json.loads(fields[b"e"])["type"] for _id, fields in dead] == [
        "step.started", "step.finished", "job.finished"]
    errors = [fields[b"error"].decode() for _id, fields in dead]
    assert "invalid literal for int()" in errors[0]
    assert "'bogus' is not a valid Status" in errors[1]
    assert "dict" in errors[2]
    assert all(error in caplog.text for error in errors)
    assert redis_client.xpending(keys.EVENTS_STREAM, keys.RECORDER_GROUP)["pending"] == 0
    assert recorder.drain() == 0  # nothing is read again after a restart either


def test_a_database_that_fails_stops_the_recorder_and_sets_no_event_aside(
        client, registered, session, resources, redis_client, tmp_path):
    post_hook(client, push_payload("octo/project", "a" * 40))
    publish(redis_client, build(session, 1).jobs[0].id, "job.started", runner="r1")
    # A database without Slipway's tables: every statement fails, whatever the event.
    elsewhere = db.make_sessionmaker(db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}"),
                                     writes=True)
    with pytest.raises(db.Unavailable):
        Recorder(elsewhere, redis_client, resources.settings).drain()
    assert redis_client.xlen(keys.EVENTS_DEAD_STREAM) == 0
    assert redis_client.xpending(keys.EVENTS_STREAM, keys.RECORDER_GROUP)["pending"] == 1
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    assert build(session, 1).status == "running"


# 7. Clone URLs, and the remote a manual trigger asks -------------------------------------

@pytest.fixture
def admin(session) -> dict[str, str]:
    return token_headers(session, add_user(session, "root", admin=True))


def test_only_admins_change_a_clone_url(client, session, registered, api_token, admin,
                                        git_repo):
    refused = client.patch(API, json={"clone_url": "/etc", "private": True}, headers=api_token)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == (
        "only admins may change a repository's clone URL, and dev is not one")
    session.rollback()
    kept = store.get_repo(session, "octo/project")
    assert (kept.clone_url, kept.private) == (str(git_repo.path), False)
    assert client.patch(API, json={"private": True}, headers=api_token).status_code == 200
    moved = client.patch(API, json={"clone_url": "https://example.com/o/p.git"}, headers=admin)
    assert moved.status_code == 200
    session.rollback()
    assert store.get_repo(session, "octo/project").clone_url == "https://example.com/o/p.git"


class SilentRemote:
    """A git remote over HTTP that takes connections and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/octo/project.git"
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            while True:
                self.connections.append(self.listener.accept()[0])
        except OSError:
            return  # closed

    def close(self) -> None:
        """Hang up on everyone: a git still waiting then fails at once."""
        if self.listener.fileno() != -1:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
            self.listener.close()
        for connection in self.connections:
            connection.close()
        self.thread.join(timeout=10)


@pytest.fixture
def silent_remote(session, registered):
    remote = SilentRemote()
    store.update_repo(session, registered, clone_url=remote.url)
    session.commit()
    yield remote
    remote.close()


def in_thread(call) -> tuple[threading.Thread, list]:
    """Run ``call`` in a thread of its own; its answer lands in the list."""
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def test_ls_remote_gives_up_after_its_timeout(app, silent_remote, api_token, monkeypatch):
    monkeypatch.setattr(service, "LS_REMOTE_TIMEOUT_SECONDS", 1)
    asker = app.test_client()
    started = time.monotonic()
    thread, answers = in_thread(lambda: asker.post(f"{API}/builds", json={"branch": "main"},
                                                   headers=api_token))
    thread.join(timeout=15)
    assert not thread.is_alive(), "the trigger still waits on a remote that never answers"
    assert time.monotonic() - started < 15
    assert answers[0].status_code == 400
    assert answers[0].get_json()["error"]["message"] == service.LS_REMOTE_FAILED


def page_trigger(app, session, registered):
    """Press "Build branch" on the repo page as a signed-in writer."""
    browser = app.test_client()
    add_user(session, "wes", grants={registered: "write"})
    sign_in(browser, "wes")
    csrf = csrf_of(browser, "/octo/project")
    return lambda: browser.post("/octo/project/builds", data={"branch": "main",
                                                              "csrf_token": csrf})


def api_trigger(app, api_token):
    asker = app.test_client()
    return lambda: asker.post(f"{API}/builds", json={"branch": "main"}, headers=api_token)


@pytest.mark.parametrize("where", ["api", "page"])
def test_a_webhook_is_recorded_while_a_manual_trigger_waits_on_the_remote(
        where, app, session, registered, silent_remote, api_token):
    press = (api_trigger(app, api_token) if where == "api"
             else page_trigger(app, session, registered))
    trigger, _ = in_thread(press)
    wait_for(lambda: silent_remote.connections, timeout=30)  # git is asking the remote
    webhook, answers = in_thread(lambda: post_hook(app.test_client(),
                                                   push_payload("octo/project", "c" * 40)))
    webhook.join(timeout=10)
    waited = webhook.is_alive()
    silent_remote.close()
    trigger.join(timeout=30)
    webhook.join(timeout=30)
    assert not waited, "the webhook waited for the database's writer lock"
    assert answers[0].status_code == 202
    assert not trigger.is_alive()  # hung up on, git failed and the trigger answered


class LocalServer:
    """A threaded HTTP server on loopback for one test; ``close`` stops it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class RefusingRemote(LocalServer):
    """A git remote over HTTP that refuses, saying something about the network behind it."""

    SAYS = "the vault at 10.1.2.3 says: hunter2"

    def __init__(self) -> None:
        says = self.SAYS.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(403)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(says)))
                self.end_headers()
                self.wfile.write(says)

            def log_message(self, *args) -> None:
                """Quiet."""

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}/octo/project.git"


def test_a_failing_remote_is_not_echoed_to_the_asker(client, session, registered, api_token,
                                                     git_repo):
    git_repo.commit({"a.txt": "1"})
    unknown = client.post(f"{API}/builds", json={"branch": "nope"}, headers=api_token)
    assert unknown.get_json()["error"]["message"] == (
        "branch 'nope' does not exist in the repository")
    remote = RefusingRemote()
    try:
        store.update_repo(session, registered, clone_url=remote.url)
        session.commit()
        refused = client.post(f"{API}/builds", json={"branch": "main"}, headers=api_token)
    finally:
        remote.close()
    assert refused.status_code == 400
    message = refused.get_json()["error"]["message"]
    assert message == ("cannot read the repository's clone URL (git ls-remote failed); check "
                       "the URL and its credentials")
    assert "hunter2" not in refused.get_data(as_text=True)


# 9a. Status reports never follow a redirect ----------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Endpoint(LocalServer):
    """An HTTP server recording every request; ``redirect_to`` makes it answer ``code`` there."""

    def __init__(self, code: int = 201, redirect_to: str | None = None) -> None:
        self.seen: list[Seen] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                endpoint.seen.append(Seen(self.command, self.path,
                                          {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(code)
                if redirect_to:
                    self.send_header("Location", redirect_to + self.path)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = do_PATCH = _any

            def log_message(self, *args) -> None:
                """Quiet."""

        super().__init__(Handler)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_a_redirected_status_report_is_refused_and_its_token_goes_nowhere_else(
        code, forge, session, resources, redis_client, git_repo, caplog):
    elsewhere = Endpoint()
    api = Endpoint(code, redirect_to=f"http://localhost:{elsewhere.port}")
    try:
        repo = store.add_repo(session, "octo/project", forge, str(git_repo.path), "s")
        statuses.set_forge_access(session, resources.settings, repo, "t0ken",
                                  f"http://127.0.0.1:{api.port}")
        trigger = Trigger(repo=repo.full_name, event="push", ref="refs/heads/main",
                          sha="b" * 40, branch="main", message="change")
        accepted = service.accept(session, redis_client, resources.settings, repo, trigger)
        with caplog.at_level(logging.WARNING, logger="ci.forges.statuses"):
            outcomes = statuses.send(session, redis_client, resources.settings,
                                     accepted.build.id)
    finally:
        api.close()
        elsewhere.close()
    assert elsewhere.seen == []
    assert len(api.seen) == 1
    assert outcomes[0] == f"slipway: rejected ({code})"
    assert f"redirected to http://localhost:{elsewhere.port}/" in caplog.text


# 9b. Key files: made once, by one process, owner-only from the start --------------------

RACERS = 16


def _take_key(data_dir: str, together, keys_out) -> None:
    """One process starting up: it makes a key, then keeps whichever key is the file's."""
    def make() -> str:
        try:  # every racer has its key in hand before any of them looks at the file
            together.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass  # an implementation that makes the key only once it won needs no company
        return os.urandom(16).hex()

    keys_out.put(kept_secret(Path(data_dir), "key", make))


def test_processes_starting_together_share_one_key_never_readable_by_others(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_number in range(5):
        data_dir = tmp_path / f"data{round_number}"
        together, keys_out = context.Barrier(RACERS), context.Queue()
        racers = [context.Process(target=_take_key, args=(str(data_dir), together, keys_out))
                  for _ in range(RACERS)]
        for racer in racers:
            racer.start()
        taken = [keys_out.get(timeout=30) for _ in racers]
        for racer in racers:
            racer.join(timeout=30)
        key_file = data_dir / "key"
        assert set(taken) == {key_file.read_text().strip()}
        assert len(taken[0]) == 32
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_an_empty_key_file_is_an_error_that_says_what_to_do(tmp_path, monkeypatch):
    """Its creator died before writing it: an empty secret would be worse than none."""
    monkeypatch.setattr(settings_module, "KEPT_SECRET_WAIT_SECONDS", 0.2)
    (tmp_path / "key").touch()
    with pytest.raises(SettingsError, match="is empty; unless a Slipway process is starting"):
        kept_secret(tmp_path, "key", lambda: "never used")


# 9c. Canceling what has finished is a conflict -------------------------------------------

def test_canceling_a_finished_build_or_job_is_a_conflict(client, session, registered,
                                                         api_token):
    post_hook(client, push_payload("octo/project", "a" * 40))
    assert client.post(f"{API}/builds/1/cancel", headers=api_token).status_code == 202
    again = client.post(f"{API}/builds/1/cancel", headers=api_token)
    assert again.status_code == 409
    assert again.get_json()["error"]["message"] == "build #1 has finished"
    job = client.post(f"{API}/builds/1/jobs/1/cancel", headers=api_token)
    assert job.status_code == 409
    assert job.get_json()["error"]["message"] == "job 1 of build #1 has finished"
    add_user(session, "wes", grants={registered: "write"})
    sign_in(client, "wes")
    client.post("/octo/project/builds/1/cancel",
                data={"csrf_token": csrf_of(client, "/octo/project/builds/1")})
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert "Nothing was canceled: build #1 has finished." in page


def test_the_cli_says_a_finished_build_has_nothing_to_cancel(cli, git_repo):
    cli("repo", "add", "octo/project", "--clone-url", str(git_repo.path), "--secret", "s")
    cli("trigger", "octo/project", "--sha", "a" * 40)
    assert cli("cancel", "octo/project", "1").output == "asked 1 job(s) of build #1 to stop\n"
    again = cli("cancel", "octo/project", "1")
    assert again.exit_code == 1
    assert "nothing was canceled: build #1 has finished" in again.output


# The last of the small holes: what an API client, a branch name or the CLI can still do ---

def test_deeply_nested_api_json_is_a_400_not_a_500(client, registered, api_token):
    nested = "[" * 100_000
    answer = client.put("/api/repos/octo/project/secrets/TOKEN", data=nested,
                        content_type="application/json", headers=api_token)
    assert answer.status_code == 400
    assert "send a JSON object" in answer.get_json()["error"]["message"]


def test_a_branch_whose_ref_is_over_255_bytes_is_refused_before_git_or_the_database():
    longest = "b" * (255 - len("refs/heads/"))
    assert store.validate_branch(longest) == longest
    with pytest.raises(store.StoreError, match="at most 244 bytes"):
        store.validate_branch(longest + "b")
    with pytest.raises(store.StoreError, match="at most 244 bytes"):
        store.validate_branch("é" * 123)  # 246 bytes in UTF-8


def test_repo_list_shows_no_credentials_of_a_clone_url(cli, git_repo):
    url = "https://slipway-bot:pa55-w0rd@git.example.test/octo/project.git"
    assert cli("repo", "add", "octo/project", "--clone-url", url, "--secret", "s").exit_code == 0
    listed = cli("repo", "list").output
    assert "pa55-w0rd" not in listed
    assert "https://***@git.example.test/octo/project.git" in listed
