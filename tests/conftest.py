"""Shared fixtures: a real Redis (flushed around each test), a fresh database per test
(SQLite in a temporary folder, and PostgreSQL: every test that touches SQL runs on both),
real git repositories, and an in-process runner and recorder."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import docker
import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker
from sqlalchemy import select
from werkzeug.serving import make_server

from ci import create_app
from ci.accounts import users
from ci.builds.recorder import Recorder
from ci.logs import storage
from ci.pipeline import keys
from ci.pipeline.logformat import to_text
from ci.store import db
from ci.store.models import Build
from ci.views.resources import Resources
from runners.docker_executor import LABEL_INSTANCE
from runners.rq_job import RunnerJob
from runners.settings import load_runner_settings
from runners.worker import wait_for_cleanups
from tests.databases import Databases, LocalServer
from tests.polling import wait_for

FIXTURES = Path(__file__).parent / "fixtures"
GITHUB = FIXTURES / "webhooks" / "github"
#: The browser tests' fixtures (Playwright, Chromium, the Procfile stack).
pytest_plugins = ["tests.browser"]

SECRET = "It's a Secret to Everybody"
IMAGE = os.environ.get("SLIPWAY_TEST_IMAGE", "slipway/python:3.11")
SLIPWAY = str(Path(sys.executable).parent / "slipway")


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def job_labels(job_id: int) -> dict[str, list[str]]:
    """The Docker filter of a job's containers and networks in this test session.

    Runners label them with the job and with their installation, named after their Redis
    URL: test sessions side by side (``pytest -n``) have job 1 each, and a Redis each.
    """
    return {"label": [f"slipway.job={job_id}", f"{LABEL_INSTANCE}={_session['instance']}"]}


def installation() -> str:
    """This test session's installation label (:data:`LABEL_INSTANCE`'s value)."""
    return _session["instance"]


def job_containers(client, job_id: int, *, stopped: bool = True) -> list:
    """The containers labelled with a job, skipping any removed while being listed.

    The runner removes a job's containers while tests watch them go; listing inspects each one,
    so a container removed in between must count as gone rather than fail the listing.
    """
    return client.containers.list(all=stopped, filters=job_labels(job_id), ignore_removed=True)


@contextmanager
def procfile_web(tmp_path: Path, env: dict[str, str]) -> Iterator[int]:
    """The Procfile's web line (gunicorn) on a free loopback port, with ``env`` added to this
    process's environment; yields the port once the server answers."""
    from tests.bench import ROOT, procfile

    port = free_port()
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(["sh", "-c", procfile()["web"]], cwd=ROOT,
                                   env={**os.environ, "PORT": str(port), **env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: process.poll() is not None or _answers_get(port))
            assert process.poll() is None, log_path.read_text()
            yield port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _answers_get(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


#: What the session-scoped fixtures found, for helpers that take no fixture.
_session: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """A Redis server of this test session's own, so that test runs never share data.

    It asks for a password, as every Redis Slipway starts does, so the whole suite uses
    URLs that carry one; the password goes in on standard input, never on a command line.
    ``SLIPWAY_TEST_REDIS_URL`` points the tests at an existing server instead (database N of
    the URL for the first session, N+1 for the second, …).
    """
    if os.environ.get("SLIPWAY_TEST_REDIS_URL"):
        # Sessions side by side (pytest -n) each take a database of their own on it.
        parts = urlsplit(os.environ["SLIPWAY_TEST_REDIS_URL"])
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
        url = parts._replace(path=f"/{int(parts.path.strip('/') or 0) + worker}").geturl()
        _session["instance"] = load_runner_settings({"SLIPWAY_REDIS_URL": url}).instance
        yield url
        return
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    password = secrets.token_hex(16)
    process = subprocess.Popen([server, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True)
    process.stdin.write(f"port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                        f"dir {workdir}\nrequirepass {password}\n")
    process.stdin.close()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    probe = Redis.from_url(url)
    wait_for(lambda: _answers(probe), timeout=10)
    probe.close()
    _session["instance"] = load_runner_settings({"SLIPWAY_REDIS_URL": url}).instance
    yield url
    process.terminate()
    process.wait(timeout=10)


def _answers(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except RedisError:
        return False


@pytest.fixture
def redis_client(redis_url) -> Redis:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


#: Every test that touches SQL runs once per database, with these ids.
DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc) -> None:
    """Run each test that uses a database (``database_kind``) once per database.

    Those that also run builds in Docker run on PostgreSQL only: on both, they took
    ``make test`` past 9 minutes on two cores, and what they ask of the database the
    other tests ask on both. So do those marked ``postgresql_only``: processes of several
    hosts, which share a PostgreSQL server, not an SQLite file.
    """
    if "database_kind" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker
        only = marker("docker") is not None or marker("postgresql_only") is not None
        metafunc.parametrize("database_kind", ("postgresql",) if only else DATABASES,
                             indirect=True)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """Users made in this process get scrypt at 1/32 of its cost (same code, same format):
    at the full cost each hash takes 0.2 s, and the tests make and check hundreds."""
    method = users.PASSWORD_HASH_METHOD
    users.PASSWORD_HASH_METHOD = "scrypt:1024:8:1"
    yield
    users.PASSWORD_HASH_METHOD = method


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An SQLite database migrated to head once, that each test copies: migrating a new
    file takes 0.12 s, copying one a millisecond."""
    path = tmp_path_factory.mktemp("sqlite-template") / "head.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


def _sqlite_copy(template: Path, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def database_kind(request) -> str:
    """``sqlite`` or ``postgresql``: the database this run of the test uses."""
    return request.param


@pytest.fixture(scope="session")
def postgres() -> Databases:
    """A PostgreSQL server of this test session's own, that makes a database per test.

    ``SLIPWAY_TEST_DATABASE_URL`` (an administrator's URL, allowed to create databases)
    points the tests at an existing server instead.
    """
    server = None
    url = os.environ.get("SLIPWAY_TEST_DATABASE_URL")
    if not url:
        server = LocalServer(free_port())
        url = server.start()
    databases = Databases(url)
    yield databases
    databases.close()
    if server is not None:
        server.stop()


@pytest.fixture
def new_database(request, database_kind, tmp_path) -> Callable[..., str]:
    """Make a new database of the test's kind, migrated to head or empty; its URL.

    Each is dropped after the test (PostgreSQL) or lives in the test's folder (SQLite).
    """
    made: list[str] = []

    def create(migrated: bool = True) -> str:
        if database_kind == "postgresql":
            url = request.getfixturevalue("postgres").create(migrated)
        else:
            path = tmp_path / "databases" / f"{len(made)}.db"
            url = f"sqlite:///{path}"
            if migrated:
                _sqlite_copy(request.getfixturevalue("sqlite_template"), path)
        made.append(url)
        return url

    yield create
    if database_kind == "postgresql":
        for url in made:
            request.getfixturevalue("postgres").drop(url)


@pytest.fixture
def database_url(request, database_kind, new_database, tmp_path, monkeypatch) -> str:
    """The test's database, migrated; ``slipway`` run by the test (in or out of this
    process) uses it too."""
    if database_kind == "postgresql":
        url = new_database()
    else:
        url = _sqlite_copy(request.getfixturevalue("sqlite_template"),
                           tmp_path / "data" / "slipway.db")
    monkeypatch.setenv("SLIPWAY_DATABASE_URL", url)
    return url


@pytest.fixture
def app(tmp_path, redis_client, redis_url, database_url, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("SLIPWAY_REDIS_URL", redis_url)
    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(data_dir))
    application = create_app({
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": redis_url,
        "base_url": "http://ci.test",
        "job_timeout_seconds": 120,
        "secret_key": "test",
    })
    application.config["TESTING"] = True
    yield application
    application.extensions["slipway"].engine.dispose()


@pytest.fixture
def resources(app) -> Resources:
    return app.extensions["slipway"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(resources):
    with resources.sessions() as db_session:
        yield db_session


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


class GitRepo:
    """A real repository on disk that tests commit to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "dev@example.com")
        git(path, "config", "user.name", "Dev Eloper")

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path) -> GitRepo:
    return GitRepo(tmp_path / "src" / "project")


@pytest.fixture
def registered(session, git_repo):
    """A repository registered in Slipway whose clone URL is ``git_repo``."""
    from ci import store

    return store.add_repo(session, "octo/project", "github", str(git_repo.path), SECRET)


def push_payload(repo: str, sha: str, branch: str = "main", message: str = "change") -> bytes:
    """GitHub's recorded push payload, pointed at a local repository and commit."""
    payload = json.loads((GITHUB / "push.branch.json").read_bytes())
    payload["ref"] = f"refs/heads/{branch}"
    payload["after"] = sha
    payload["repository"]["full_name"] = repo
    payload["head_commit"]["id"] = sha
    payload["head_commit"]["message"] = message
    return json.dumps(payload).encode()


def post_hook(client, body: bytes, event: str = "push", secret: str = SECRET,
              delivery: str | None = None, signature: str | None = None):
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature if signature is not None else sign(body, secret),
    }
    return client.post("/hooks/github", data=body, headers=headers)


@pytest.fixture
def run_queue(resources, redis_client, tmp_path, monkeypatch):
    """Run every queued job with a real in-process runner, then record its events."""
    monkeypatch.setenv("SLIPWAY_RUNNER_DIR", str(tmp_path / "runner"))
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    def run() -> Recorder:
        SimpleWorker([keys.JOBS_QUEUE], connection=redis_client, job_class=RunnerJob,
                     serializer=keys.RQ_SERIALIZER).work(burst=True)
        wait_for_cleanups()
        recorder.drain()
        return recorder

    return run


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(IMAGE)
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure below
        pytest.fail(f"these tests need a Docker engine with {IMAGE}: run `make test`, "
                    f"which starts one and builds the image ({exc})")
    return client


@pytest.fixture
def server(app):
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()


def sse_events(response):
    """Parse a text/event-stream into (id, event, data) tuples as they arrive."""
    event = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in event:
                yield event.get("id"), event.get("event"), json.loads(event["data"])
            event = {}
        elif not line.startswith(":") and ":" in line:
            field, _, value = line.partition(":")
            event[field] = value.lstrip(" ")


@pytest.fixture
def workers(tmp_path, redis_url):
    """Two runner workers in a process of their own, as `make run` starts them."""
    env = {**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner"),
           "SLIPWAY_REDIS_URL": redis_url}
    process = subprocess.Popen([SLIPWAY, "worker", "--count", "2"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def build_with(client, git_repo, registered, session, resources, redis_client):
    """Push ``files`` and follow the build to its end with a recorder in this process."""
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    def run(files: dict[str, str], message: str = "change", branch: str = "main") -> Build:
        sha = git_repo.commit(files, message)
        response = post_hook(client, push_payload("octo/project", sha, branch=branch,
                                                  message=message))
        number = response.get_json()["build"]["number"]

        def finished():
            recorder.step(block_ms=200)
            session.rollback()
            found = session.scalar(select(Build).where(Build.number == number))
            return found if found.status not in ("queued", "running") else None

        return wait_for(finished, timeout=120, interval=0)

    return run


def log_of(resources, job) -> str:
    return to_text(storage.read_archive(resources.settings.log_dir, job.id))


PASSWORD = "correct horse battery"


def add_user(session, name: str, admin: bool = False, grants: dict | None = None):
    """A user with :data:`PASSWORD`, granted ``{repo: "read" | "write"}``."""
    from ci.accounts import access, users

    user = users.add_user(session, name, PASSWORD, admin=admin)
    for repo, permission in (grants or {}).items():
        access.grant(session, repo, user, permission)
    return user


def token_headers(session, user) -> dict[str, str]:
    from ci.accounts import users

    _token, plain = users.create_token(session, user, "tests")
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture
def api_token(session, registered) -> dict[str, str]:
    """Headers authenticating as ``dev``, a user with write access to ``registered``."""
    return token_headers(session, add_user(session, "dev", grants={registered: "write"}))


def csrf_of(client, path: str = "/login") -> str:
    """The session's CSRF token, as the page at ``path`` puts it in its forms."""
    page = client.get(path).get_data(as_text=True)
    start = page.index('name="csrf_token" value="') + len('name="csrf_token" value="')
    return page[start:page.index('"', start)]


def sign_in(client, name: str, password: str = PASSWORD):
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": csrf_of(client)})


@pytest.fixture
def cli(tmp_path, redis_url, redis_client, database_url, monkeypatch):
    """Run ``slipway`` in this process against a database of its own and the test Redis."""
    from click.testing import CliRunner

    from ci.cli.main import main

    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLIPWAY_REDIS_URL", redis_url)
    monkeypatch.setenv("SLIPWAY_BASE_URL", "http://ci.test")
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)

    return run
