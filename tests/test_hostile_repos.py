"""Hostile repositories and leaky credentials: a committed symbolic link never makes the
runner read a file of its host, what a service echoes is masked and capped like step
output, and the credentials of a clone URL reach neither the build nor its log."""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
import threading
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import select

from ci import store
from ci.accounts import repo_secrets
from ci.builds.recorder import Recorder
from ci.pipeline import keys
from ci.pipeline.config import DEFAULT_PIPELINE_HELP
from ci.pipeline.masking import Masker
from ci.pipeline.spec import JobSpec
from ci.store.models import Build
from runners.checkout import CloneUrl
from runners.docker_executor import SERVICE_LOG_BYTES
from runners.publisher import Publisher
from runners.worker import run_job
from tests.conftest import IMAGE, SECRET, GitRepo, git, log_of, post_hook, push_payload, wait_for

HOST_MARKER = "leaked_host_value"
TOKEN = "s3cr3t-deploy-t0ken-value"
KEY_LINES = ["-----BEGIN SLIPWAY TEST KEY-----", "c2VjcmV0LWxpbmUtb25lLWFiY2RlZg",
             "c2VjcmV0LWxpbmUtdHdvLWdoaWprbA", "-----END SLIPWAY TEST KEY-----"]
KEY = "\n".join(KEY_LINES)
ECHO_IMAGE = "slipway-test/echo:1"
# Prints what each connection sends, then answers "ok" so the sender knows it was printed.
ECHO_SERVER = """\
import socket
server = socket.create_server(("0.0.0.0", 7000))
while True:
    connection, _ = server.accept()
    with connection:
        data = b"".join(iter(lambda: connection.recv(65536), b""))
        print("received:", data.decode(), flush=True)
        try:
            connection.sendall(b"ok")
        except OSError:
            pass  # the readiness probe hangs up at once
"""
SEND = ("import socket, sys; connection = socket.create_connection(('echo', 7000)); "
        "connection.sendall(sys.argv[1].encode()); connection.shutdown(socket.SHUT_WR); "
        "print('echo says', connection.recv(2).decode())")
USER, PASSWORD = "slipway-bot", "pa55-w0rd-in-the-url"


@pytest.fixture
def runner(resources, redis_client, session, tmp_path, monkeypatch):
    """Run each queued job with the real runner in a thread of its own, record its events,
    and return the newest build; fails at ``deadline`` instead of hanging with the job."""
    monkeypatch.setenv("SLIPWAY_RUNNER_DIR", str(tmp_path / "runner"))
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    def run(deadline: float = 90) -> Build:
        queue = Queue(keys.JOBS_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)
        for job in queue.get_jobs():
            queue.remove(job)
            thread = threading.Thread(target=run_job, args=(job.args[0],), daemon=True)
            thread.start()
            wait_for(lambda: not thread.is_alive(), timeout=deadline, interval=0.1)
        recorder.drain()
        session.rollback()
        return session.scalars(select(Build).order_by(Build.id.desc())).first()

    return run


def commit_links(repo: GitRepo, links: dict[str, str], files: dict[str, str] | None = None) -> str:
    """Commit symbolic links (name -> target) and text files; returns the commit's sha."""
    for name, target in links.items():
        path = repo.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    return repo.commit(files or {})


def push(client, sha: str) -> None:
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202


def everything_sent(redis_client, job_id: int) -> str:
    """The job's live log stream and every runner event, as Redis holds them."""
    entries = redis_client.xrange(keys.log_stream(job_id)) + redis_client.xrange(
        keys.EVENTS_STREAM)
    return "\n".join(value.decode("utf-8", "replace")
                     for _id, fields in entries for value in fields.values())


@pytest.fixture
def host_file(tmp_path) -> Path:
    """A file of the runner's host that no build may see, YAML a validator would quote."""
    path = tmp_path / "host" / "private.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"{HOST_MARKER}: 1\n")
    return path


@pytest.fixture
def host_fifo(tmp_path) -> Path:
    """A named pipe of the host: reading it blocks until someone writes, like /proc/kmsg."""
    path = tmp_path / "host" / "pipe"
    path.parent.mkdir(exist_ok=True)
    os.mkfifo(path)
    yield path
    try:  # releases a runner stuck reading it (only the code before the fix opened it)
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# --- hole 1: a symlinked .slipway.yml, or any file the runner reads from a checkout ---

@pytest.mark.parametrize("target", ["host_file", "/etc/passwd", "host_fifo", "/proc/kmsg"])
def test_a_symlinked_pipeline_errors_the_build_without_reading_the_host(
        target, request, client, git_repo, registered, runner, resources):
    link = target if target.startswith("/") else str(request.getfixturevalue(target))
    push(client, commit_links(git_repo, {".slipway.yml": link}))
    build = runner(deadline=60)
    assert build.status == "errored"
    assert build.error == "`.slipway.yml` is a symbolic link; it must be a regular file"
    text = log_of(resources, build.jobs[0])
    assert build.error in text
    for leaked in (HOST_MARKER, "root:x:0:0"):
        assert leaked not in text


def test_a_pipeline_that_is_a_directory_is_refused_by_name(client, git_repo, registered,
                                                           runner):
    push(client, git_repo.commit({".slipway.yml/steps": "make test\n",
                                  "requirements.txt": ""}))
    build = runner(deadline=60)
    assert build.status == "errored"
    assert build.error == "`.slipway.yml` is a directory; it must be a regular file"


def test_an_oversized_pipeline_is_refused_before_it_is_read(client, git_repo, registered,
                                                            runner):
    push(client, git_repo.commit({".slipway.yml": "# padding\n" * 40_000}))
    build = runner(deadline=60)
    assert build.status == "errored"
    assert build.error == "`.slipway.yml` is 391 KiB, more than the 256 KiB limit"


def test_the_default_pipeline_ignores_project_files_linked_out_of_the_repository(
        client, git_repo, registered, runner, host_file):
    push(client, commit_links(git_repo, {"requirements.txt": str(host_file),
                                         "pyproject.toml": "../../../../etc/hostname"}))
    build = runner(deadline=60)
    assert build.status == "errored"
    assert build.error == f"commit {build.sha[:12]}: {DEFAULT_PIPELINE_HELP}"


@pytest.mark.docker
def test_a_project_file_linked_inside_the_repository_still_gets_the_default_pipeline(
        client, git_repo, registered, runner, resources, docker_client):
    push(client, commit_links(git_repo, {"requirements.txt": "requirements/base.txt"},
                              {"requirements/base.txt": "", "test_ok.py": "def test_ok(): pass\n"}))
    build = runner()
    assert build.status == "passed", build.error
    assert "using the default pipeline" in log_of(resources, build.jobs[0])


@pytest.mark.docker
def test_a_cache_path_linked_to_the_host_caches_nothing_of_the_host(
        client, git_repo, registered, runner, resources, host_file, tmp_path, docker_client):
    pipeline = f"image: {IMAGE}\ncache: [.venv, deps]\nsteps:\n  - run: ls -la .venv deps\n"
    push(client, commit_links(git_repo, {".venv": str(host_file.parent), "deps": str(host_file)},
                              {".slipway.yml": pipeline}))
    build = runner()
    assert build.status == "passed", build.error
    assert "cache saved" in log_of(resources, build.jobs[0])
    cached = [path for path in (tmp_path / "runner" / "cache").rglob("*") if path.is_file()]
    assert cached
    assert not [path for path in cached if HOST_MARKER.encode() in path.read_bytes()]


def test_the_job_timeout_covers_a_clone_that_never_ends(client, git_repo, session, resources,
                                                        runner):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        port = silent.getsockname()[1]
        store.add_repo(session, "octo/project", "github", f"http://127.0.0.1:{port}/p.git", SECRET)
        resources.settings = replace(resources.settings, job_timeout_seconds=3)
        push(client, git_repo.commit({"README": "hi\n"}))
        build = runner(deadline=30)
    finally:
        silent.close()
    assert build.status == "errored"
    assert build.error == "timed out after 3s"


# --- hole 2: what services print, and every error a runner sends, is masked and capped ---

@pytest.fixture(scope="session")
def echo_image(docker_client) -> str:
    """The build image with an echo server as its command: a service that prints its input."""
    container = docker_client.containers.create(IMAGE, ["true"])
    try:
        container.commit(*ECHO_IMAGE.split(":"),
                         conf={"Cmd": ["python3", "-c", ECHO_SERVER]})
    finally:
        container.remove()
    yield ECHO_IMAGE
    docker_client.images.remove(ECHO_IMAGE, force=True)


def echo_pipeline(run: str) -> str:
    ready = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 7000))'"
    return (f"image: {IMAGE}\nservices:\n  echo:\n    image: {ECHO_IMAGE}\n"
            f"    ready: {json.dumps(ready)}\n"
            f"steps:\n  - name: send\n    secrets: [DEPLOY_TOKEN, SIGNING_KEY]\n"
            f"    run: {json.dumps(run)}\n")


@pytest.fixture
def with_secrets(registered, session, resources):
    for name, value in (("DEPLOY_TOKEN", TOKEN), ("SIGNING_KEY", KEY)):
        repo_secrets.set_secret(session, resources.settings, registered, name, value)
    return registered


@pytest.mark.docker
def test_secrets_a_service_echoes_are_masked_everywhere(
        client, git_repo, with_secrets, runner, resources, redis_client, echo_image):
    run = (f"printf %s \"$DEPLOY_TOKEN $SIGNING_KEY\" > message\n"
           f"python3 -c {json.dumps(SEND)} \"$(cat message)\"\n"
           "printf '%s\\n' \"$SIGNING_KEY\" | sed 's/^/> /'\n")
    push(client, git_repo.commit({".slipway.yml": echo_pipeline(run)}))
    build = runner()
    job = build.jobs[0]
    assert build.status == "passed", log_of(resources, job)
    archived = log_of(resources, job)
    assert "echo says ok" in archived
    assert "received: ****" in archived  # the service's line is there, masked
    assert "> ****" in archived  # each line of the multi-line secret, printed alone
    sent = everything_sent(redis_client, job.id)
    for text in (archived, sent, job.error or "", build.error or ""):
        for value in [TOKEN, *KEY_LINES]:
            assert value not in text


@pytest.mark.docker
def test_service_output_counts_towards_the_log_cap(
        client, git_repo, with_secrets, runner, resources, echo_image):
    resources.settings = replace(resources.settings, log_limit_bytes=4096)
    run = f"python3 -c {json.dumps(SEND)} \"$(head -c 30000 /dev/zero | tr '\\0' x)\"\n"
    push(client, git_repo.commit({".slipway.yml": echo_pipeline(run)}))
    build = runner()
    assert build.status == "passed", build.error
    text = log_of(resources, build.jobs[0])
    assert "the log was cut at 4 KiB; the rest of the output is not kept" in text
    assert len(text.encode()) < 4096 + 2048


@pytest.mark.docker
def test_a_service_log_cut_inside_a_secret_shows_no_part_of_it(
        client, git_repo, with_secrets, runner, resources, echo_image):
    # A service's log is kept from SERVICE_LOG_BYTES before its end: this padding puts
    # that point ten characters before the end of the secret.
    padding = SERVICE_LOG_BYTES - 12
    run = (f"python3 -c {json.dumps(SEND)} \"$(printf '%s\\n' \"$DEPLOY_TOKEN\"; "
           f"head -c {padding} /dev/zero | tr '\\0' x)\"\n")
    push(client, git_repo.commit({".slipway.yml": echo_pipeline(run)}))
    build = runner()
    text = log_of(resources, build.jobs[0])
    assert build.status == "passed", text
    assert "x" * 1000 in text
    assert TOKEN[-10:] not in text


def test_a_runner_error_is_masked_in_the_log_and_the_event(redis_client):
    spec = JobSpec(job_id=7, attempt=1, build_id=1, repo="octo/project", clone_url="x",
                   sha="0" * 40, ref="refs/heads/main", event="push")
    publisher = Publisher(redis_client, spec, [TOKEN, KEY])
    publisher.info(f"cache not restored: token={TOKEN}")
    publisher.finished("errored", f"service db did not become ready (`check`: {TOKEN} "
                                  f"{KEY_LINES[2]})")
    sent = everything_sent(redis_client, 7)
    assert "service db did not become ready (`check`: **** ****)" in sent
    for value in [TOKEN, *KEY_LINES]:
        assert value not in sent


def test_a_multi_line_secret_is_masked_line_by_line():
    masker = Masker([KEY])
    printed = f"whole:\n{KEY}\nalone: {KEY_LINES[1]}\r\nsplit: {KEY_LINES[2][:9]}"
    out = masker.feed(printed) + masker.feed(KEY_LINES[2][9:] + "\n") + masker.flush()
    assert out == "whole:\n****\nalone: ****\r\nsplit: ****\n"


# --- hole 8: the credentials of a clone URL ---

@pytest.mark.parametrize("url, remote, shown, secrets", [
    ("https://bot:t%40ken-1@git.example/o/r.git", "https://git.example/o/r.git",
     "https://***@git.example/o/r.git", ["t@ken-1"]),
    ("https://ghp_t0ken@github.com/o/r.git", "https://github.com/o/r.git",
     "https://***@github.com/o/r.git", ["ghp_t0ken"]),
    ("ssh://deploy:pa55word@host/o/r.git", "ssh://deploy@host/o/r.git",
     "ssh://deploy:***@host/o/r.git", ["pa55word"]),
    ("ssh://git@host/o/r.git", "ssh://git@host/o/r.git", "ssh://git@host/o/r.git", []),
    ("git@github.com:o/r.git", "git@github.com:o/r.git", "git@github.com:o/r.git", []),
    ("https://u:p4ss@[bad/r.git", "https://[bad/r.git", "https://***@[bad/r.git", []),
])
def test_clone_url_credentials_are_split_off_and_redacted(url, remote, shown, secrets):
    parsed = CloneUrl.parse(url)
    assert (parsed.remote, parsed.shown, parsed.secrets()) == (remote, shown, secrets)


class _GitOverHttp(SimpleHTTPRequestHandler):
    """Serves bare repositories over git's dumb HTTP protocol to whoever has the password."""

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        """Quiet: the test reads the build's log, not the server's."""


@pytest.fixture
def git_server(tmp_path, git_repo):
    """``publish()`` serves ``git_repo`` at ``http://127.0.0.1:PORT/project.git``."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(_GitOverHttp, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def publish() -> str:
        git(root, "clone", "-q", "--bare", str(git_repo.path), "project.git")
        git(root / "project.git", "update-server-info")
        return f"127.0.0.1:{httpd.server_port}/project.git"

    yield publish
    httpd.shutdown()
    httpd.server_close()


LOOK = """\
image: {image}
steps:
  - name: look
    run: |
      mirror="$(dirname "$(cat .git/objects/info/alternates)")"
      for file in .git/config "$mirror/config" "$mirror/FETCH_HEAD"; do
        test -f "$file" || echo "$file: missing"
        grep -qs 'w0rd-in-the' "$file" && echo "$file: HAS THE PASSWORD" || echo "$file: clean"
      done
      grep 'url =' .git/config
"""


@pytest.mark.docker
def test_clone_url_credentials_reach_neither_the_build_nor_the_log(
        client, git_repo, session, runner, resources, git_server, tmp_path, docker_client):
    git_repo.commit({".slipway.yml": LOOK.format(image=IMAGE)})
    where = git_server()
    store.add_repo(session, "octo/project", "github", f"http://{USER}:{PASSWORD}@{where}", SECRET)
    push(client, git(git_repo.path, "rev-parse", "HEAD"))
    build = runner()
    assert build.status == "passed", build.error
    text = log_of(resources, build.jobs[0])
    assert text.count(": clean") == 3 and ": missing" not in text, text
    assert f"url = http://{where}" in text
    assert PASSWORD not in text
    for mirror_file in (tmp_path / "runner" / "mirrors").rglob("*"):
        if mirror_file.is_file():
            assert PASSWORD.encode() not in mirror_file.read_bytes(), mirror_file


def test_a_wrong_password_is_not_printed_in_the_error(client, git_repo, session, runner,
                                                      resources, git_server):
    git_repo.commit({"README": "hi\n"})
    where = git_server()
    store.add_repo(session, "octo/project", "github", f"http://{USER}:wrong-{PASSWORD}@{where}",
                   SECRET)
    push(client, git(git_repo.path, "rev-parse", "HEAD"))
    build = runner(deadline=60)
    assert build.status == "errored"
    assert build.error.startswith(f"could not fetch http://***@{where}: "), build.error
    assert PASSWORD not in build.error
    assert PASSWORD not in log_of(resources, build.jobs[0])
