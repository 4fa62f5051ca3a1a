"""Slipway deployed over several hosts of one machine (:mod:`tests.topology`).

One host runs Redis (a password, ``appendonly yes``, bound to its bridge address) and
PostgreSQL; each web host runs the Procfile's ``web``, ``recorder`` and ``reporter``
lines; each runner host runs its ``worker`` line with a ``SLIPWAY_RUNNER_DIR`` and
``SLIPWAY_RUNNER_NAME`` of its own. The runner hosts share this machine's Docker engine
through its socket, so they name the engine's network namespace in
``SLIPWAY_ENGINE_NETNS``, where their firewall rules belong. Each process gets exactly
the environment its role documents; nothing is inherited from a ``SLIPWAY_*`` variable
of the caller. The repository is a git repository on this machine's disk, which every
host reads at the same path. Used by ``tests/test_topology.py`` and ``make bench``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Self

import psycopg
import requests
from cryptography.fernet import Fernet
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import Worker

from ci.pipeline.status import Status
from runners.docker_executor import LABEL_INSTANCE
from runners.settings import RunnerSettings
from tests.conftest import push_payload, sign
from tests.databases import PostgresMissing, postgres_binaries
from tests.polling import wait_for
from tests.procfile import read_procfile
from tests.topology import ROOT, Host, Network, TopologyError, engine_netns

BIN = ROOT / ".venv" / "bin"
REPO = "topology/sleepy"
WEBHOOK_SECRET = "topology-secret"
WEB_PORT = 8000
REDIS_PORT = 6379
POSTGRES_PORT = 5432
START_SECONDS = 60.0

def pipeline(script: str, image: str) -> str:
    """A ``.slipway.yml`` with one step running ``script`` (quoted: ``true`` is YAML's)."""
    return f"image: {image}\nsteps:\n  - name: work\n    run: {json.dumps(script)}\n"


class Repository:
    """The git repository the builds check out; a commit per pipeline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self._git("init", "-q", "-b", "main")
        self._git("config", "user.email", "topology@example.com")
        self._git("config", "user.name", "Topology")

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, config: str) -> str:
        """Commit ``config`` as ``.slipway.yml``; the new commit's sha."""
        (self.path / ".slipway.yml").write_text(config)
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", f"pipeline {secrets.token_hex(3)}")
        return self._git("rev-parse", "HEAD")


def push_webhook(sha: str) -> tuple[bytes, dict[str, str]]:
    """A signed GitHub push of ``sha`` to :data:`REPO`, with a delivery id of its own."""
    body = push_payload(REPO, sha)
    return body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                  "X-GitHub-Delivery": str(uuid.uuid4()),
                  "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET)}


class Deployment:
    """Slipway over ``web`` web hosts and ``runners`` runner hosts with ``slots`` each.

    ``start_runners`` names the runner hosts whose workers start at once (default all);
    :meth:`start_runner` starts the others later.
    """

    def __init__(self, image: str, web: int = 2, runners: int = 3, slots: int = 2,
                 start_runners: list[str] | None = None) -> None:
        self.image, self.slots = image, slots
        self.web_names = [f"web-{index + 1}" for index in range(web)]
        self.runner_names = [f"runner-{index + 1}" for index in range(runners)]
        self.first_runners = self.runner_names if start_runners is None else start_runners
        self.redis_password = secrets.token_hex(16)
        self.postgres_password = secrets.token_hex(16)
        self.encryption_key = Fernet.generate_key().decode()
        self.secret_key = secrets.token_hex(32)
        self.http = requests.Session()
        self.network: Network | None = None

    # Setting up ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.network = Network(["db", *self.web_names, *self.runner_names])
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop runners first (they end their jobs and remove their containers), then the
        web hosts (briefly: gunicorn's graceful stop would wait 30 s for idle keep-alive
        connections), the db host last (PostgreSQL's fast shutdown)."""
        self.http.close()
        if self.network is not None:
            self.network.close(stages=[(self.runner_names, 20), (self.web_names, 2),
                                       (["db"], 20)])

    @property
    def hosts(self) -> dict[str, Host]:
        return self.network.hosts

    @property
    def db(self) -> Host:
        return self.hosts["db"]

    @property
    def webs(self) -> list[Host]:
        return [self.hosts[name] for name in self.web_names]

    @property
    def runners(self) -> list[Host]:
        return [self.hosts[name] for name in self.runner_names]

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@{self.db.address}:{REDIS_PORT}/0"

    @property
    def database_url(self) -> str:
        return (f"postgresql+psycopg://slipway:{self.postgres_password}@{self.db.address}:"
                f"{POSTGRES_PORT}/slipway")

    @property
    def instance(self) -> str:
        """The ``slipway.instance`` label of this deployment's job containers."""
        return RunnerSettings(self.redis_url, self.network.workdir, None, "").instance

    def _start(self) -> None:
        self.network.set_docker_labels([f"{LABEL_INSTANCE}={self.instance}"])
        self.repository = Repository(self.network.workdir / "repository")
        self.start_redis()
        self._start_postgres()
        migrate = self.webs[0]
        migrate.run(BIN / "slipway", "db", "upgrade", env=self.web_env(migrate))
        migrate.run(BIN / "slipway", "repo", "add", REPO, "--forge", "github", "--clone-url",
                    self.repository.path, "--secret", WEBHOOK_SECRET, env=self.web_env(migrate))
        for host in self.webs:
            self.start_web(host)
        for name in self.first_runners:
            self.start_runner(self.hosts[name])

    def _base_env(self, host: Host) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("SLIPWAY_", "DOCKER_"))}
        data_dir = self.network.workdir / host.name
        data_dir.mkdir(exist_ok=True)
        env.update(SLIPWAY_DATA_DIR=str(data_dir), SLIPWAY_REDIS_URL=self.redis_url,
                   SLIPWAY_ENCRYPTION_KEY=self.encryption_key)
        return env

    def web_env(self, host: Host) -> dict[str, str]:
        """What a web host's processes (web, recorder, reporter) are given. The archived
        logs folder is one for all web hosts (any recorder archives, any web host serves),
        as a shared file system gives it."""
        env = self._base_env(host)
        shared, logs = self.network.workdir / "logs-shared", Path(env["SLIPWAY_DATA_DIR"], "logs")
        shared.mkdir(exist_ok=True)
        if not logs.is_symlink():
            logs.symlink_to(shared)
        return {**env, "SLIPWAY_DATABASE_URL": self.database_url,
                "SLIPWAY_SECRET_KEY": self.secret_key, "PORT": str(WEB_PORT),
                "SLIPWAY_BASE_URL": f"http://{self.webs[0].address}:{WEB_PORT}"}

    def runner_env(self, host: Host) -> dict[str, str]:
        """What a runner host's workers are given: Redis, the key, the engine, a name."""
        socket = os.environ.get("DOCKER_HOST", "")
        return {**self._base_env(host), "SLIPWAY_RUNNER_NAME": host.name,
                "SLIPWAY_RUNNER_DIR": str(self.network.workdir / host.name / "runner"),
                "SLIPWAY_RUNNERS": str(self.slots),
                "DOCKER_HOST": socket if socket.startswith("unix://")
                else "unix:///var/run/docker.sock",
                "SLIPWAY_ENGINE_NETNS": engine_netns()}

    def start_redis(self) -> None:
        """Start (or start again) Redis on the db host, with its append-only file kept."""
        folder = self.network.workdir / "redis"
        folder.mkdir(exist_ok=True)
        self.db.start("redis", ["redis-server", "--bind", self.db.address, "--port",
                                str(REDIS_PORT), "--requirepass", self.redis_password,
                                "--appendonly", "yes", "--save", "", "--dir", folder],
                      env={"PATH": os.environ["PATH"]})
        client = Redis.from_url(self.redis_url, socket_timeout=2)
        try:
            self._wait_ready(self.db, "redis", lambda: _pings(client), "Redis answering")
        finally:
            client.close()

    def _start_postgres(self) -> None:
        """initdb as ``postgres`` with a password for the subnet, then the server in the db
        host, listening on its bridge address only."""
        folder = self.network.workdir / "postgres"
        folder.mkdir()
        shutil.chown(folder, "postgres", "postgres")
        password_file = folder / "password"
        password_file.write_text(self.postgres_password)
        shutil.chown(password_file, "postgres", "postgres")
        try:
            binaries = postgres_binaries()
        except PostgresMissing as exc:
            raise TopologyError(str(exc)) from None
        as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_postgres, binaries / "initdb", "-D", folder / "data", "-U",
                        "slipway", f"--pwfile={password_file}", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                        "--no-sync"], check=True, capture_output=True)
        with (folder / "data" / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.network.subnet} scram-sha-256\n")
        self.db.start("postgres", [*as_postgres, binaries / "postgres", "-D", folder / "data",
                                   "-c", f"listen_addresses={self.db.address}",
                                   "-c", f"port={POSTGRES_PORT}",
                                   "-c", f"unix_socket_directories={folder}",
                                   "-c", "max_connections=300"],
                      env={"PATH": os.environ["PATH"]}, cwd=folder)
        admin = self.database_url.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)[0]
        self._wait_ready(self.db, "postgres", lambda: _connects(f"{admin}/postgres"),
                         "PostgreSQL accepting connections")
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE slipway")

    def start_web(self, host: Host) -> None:
        """The Procfile's web, recorder and reporter lines on ``host``, each shell line run by
    ``sh`` as honcho does (``exec``: the signals a test sends reach the process itself)."""
        commands = read_procfile()
        for role in ("web", "recorder", "reporter"):
            host.start(role, ["sh", "-c", f"exec {commands[role]}"], env=self.web_env(host))
        self._wait_ready(host, "web", lambda: self._web_answers(host), f"{host.name} serving")
        self._wait_ready(host, "recorder",
                         lambda: "waiting for runner events" in host.tail("recorder"),
                         f"{host.name}'s recorder")

    def start_runner(self, host: Host) -> None:
        """The Procfile's worker line on ``host``; returns once all its slots listen."""
        host.start("worker", ["sh", "-c", f"exec {read_procfile()['worker']}"],
                   env=self.runner_env(host))
        self._wait_ready(host, "worker", lambda: len(self.workers_of(host)) >= self.slots,
                         f"{self.slots} workers of {host.name} registered")

    def _wait_ready(self, host: Host, role: str, ready: Callable[[], object], what: str) -> None:
        """Wait for ``ready``, failing with the role's log if its process exits meanwhile."""
        def check() -> object:
            if not host.alive(role):
                raise TopologyError(f"{host.name}'s {role} exited:\n{host.tail(role)}")
            return ready()

        wait_for(check, START_SECONDS, what=what)

    def _web_answers(self, host: Host) -> bool:
        try:
            return self.http.get(f"{self.url(host)}/api/repos", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def workers_of(self, host: Host) -> list[Worker]:
        """The RQ workers registered by the processes of ``host``."""
        pids = set(host.pids())
        with self.redis() as client:
            return [worker for worker in Worker.all(connection=client)
                    if worker.pid in pids]

    def redis(self) -> Redis:
        """A client of the deployment's Redis (close it, or use it in ``with``)."""
        return Redis.from_url(self.redis_url, socket_timeout=5)

    # Using it --------------------------------------------------------------------------

    @staticmethod
    def url(host: Host) -> str:
        return f"http://{host.address}:{WEB_PORT}"

    def push(self, host: Host, sha: str) -> requests.Response:
        """Send a signed push webhook of ``sha`` to ``host``'s web server."""
        body, headers = push_webhook(sha)
        return self.http.post(f"{self.url(host)}/hooks/github", data=body, headers=headers,
                              timeout=10)

    def api(self, path: str, host: Host | None = None) -> dict:
        """GET a path of the repository's JSON API from ``host`` (default: a web host)."""
        host = host or self.webs[-1]
        response = self.http.get(f"{self.url(host)}/api/repos/{REPO}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def builds(self, host: Host | None = None) -> dict[int, dict]:
        """Every build of the repository by number (without jobs)."""
        found: dict[int, dict] = {}
        page = 1
        while True:
            listed = self.api(f"/builds?per_page=100&page={page}", host)
            found.update({build["number"]: build for build in listed["builds"]})
            if len(found) >= listed["total"] or not listed["builds"]:
                return found
            page += 1

    def wait_finished(self, numbers: list[int], timeout: float,
                      host: Host | None = None) -> dict[int, dict]:
        """Wait until every build of ``numbers`` finished; each with its jobs."""
        def finished() -> bool:
            builds = self.builds(host)
            return all(_finished(builds.get(number, {}).get("status")) for number in numbers)

        try:
            wait_for(finished, timeout, interval=0.25, what=f"builds {numbers} finished")
        except AssertionError:
            builds = self.builds(host)
            late = {number: builds.get(number, {}).get("status") for number in numbers
                    if not _finished(builds.get(number, {}).get("status"))}
            raise AssertionError(f"not finished within {timeout:g}s: {late}") from None
        return {number: self.api(f"/builds/{number}", host) for number in numbers}

    def running_jobs(self, host: Host | None = None) -> list[tuple[int, dict]]:
        """(build number, job) of every job the API says runs now."""
        running = self.api("/builds?status=running&per_page=100", host)["builds"]
        return [(build["number"], job) for build in running
                for job in self.api(f"/builds/{build['number']}", host)["jobs"]
                if job["status"] == "running"]

    def restart_redis(self) -> None:
        """Stop Redis (SIGTERM: it writes its append-only file) and start it again."""
        self.db.stop("redis")
        self.start_redis()

    def logs(self) -> str:
        """The end of every process's log, for a failure's report."""
        return "\n".join(f"--- {host.name} {role}\n{host.tail(role, 1500)}"
                         for host in self.hosts.values() for role in
                         ("redis", "postgres", "web", "recorder", "reporter", "worker")
                         if (self.network.logs / f"{host.name}.{role}.log").exists())


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except (RedisError, ResponseError):
        return False


def _connects(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _finished(status: str | None) -> bool:
    """Whether a build the API lists (``status``, or None when not listed yet) has ended."""
    return status is not None and Status(status).finished
