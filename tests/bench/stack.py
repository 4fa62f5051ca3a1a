"""One isolated Slipway under measurement: its own Redis, database, repository
registration and the Procfile's processes, all stopped together at the end.

Nothing is shared with a Slipway that may already run on this machine: every port is a
free loopback port and every file lives in the bench's temporary directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Self

import docker
import requests
from docker.errors import APIError
from docker.models.containers import Container
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import Worker

from ci.pipeline import keys
from runners.docker_executor import LABEL, LABEL_INSTANCE
from runners.settings import RunnerSettings
from runners.spare import LABEL_SPARE
from tests.bench.common import (BIN, BUILD_SECONDS, PYTEST_CONFIG, REPO, ROOT, SECRET,
                                START_SECONDS, BenchError, TinyRepo, environment, free_port,
                                procfile, push_webhook, run, wait_until)

POLL_SECONDS = 0.01
EXCEPTION = re.compile(r"^(?:\w+\.)*(\w+(?:Error|Exception)): ", re.MULTILINE)


class Processes:
    """Processes started in sessions of their own, so that each stops with its children."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.started: list[tuple[str, subprocess.Popen]] = []

    def spawn(self, name: str, *command: str | Path) -> subprocess.Popen:
        """Start ``command`` with its output in ``NAME.log``."""
        with open(self.workdir / f"{name}.log", "wb") as output:
            process = subprocess.Popen([str(part) for part in command], cwd=ROOT, env=self.env,
                                       stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.started.append((name, process))
        return process

    def sessions(self) -> dict[str, int]:
        """Session ids by process name, for :class:`tests.bench.procstat.CpuMeter`."""
        return {name: process.pid for name, process in self.started}

    def tail(self, name: str) -> str:
        """The last lines a process wrote, to say why something failed."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]

    def errors(self, name: str) -> Counter[str]:
        """The exceptions a process logged (a traceback's last line), by name: what made
        requests fail where the bench only sees a closed connection."""
        text = (self.workdir / f"{name}.log").read_text(errors="replace")
        return Counter(match.group(1) for match in EXCEPTION.finditer(text))

    def check(self) -> None:
        """Fail, with the process's last words, when one of the processes exited."""
        for name, process in self.started:
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def stop(self) -> None:
        """Stop them, last started first."""
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self.started.clear()


def answers(url: str) -> bool:
    """Whether a GET of ``url`` gets any answer below 500 (gunicorn's workers import the
    app after the port is bound)."""
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


class Stack:
    """One Slipway: Redis, database, bench/tiny registered, the Procfile's processes.

    ``runners=0`` leaves the Procfile's ``worker`` out, so accepted builds stay queued;
    ``database_url`` empty means SQLite in the data directory.
    """

    def __init__(self, workdir: Path, repo: TinyRepo, runners: int,
                 database_url: str = "") -> None:
        workdir.mkdir()
        self.workdir = workdir
        self.repo = repo
        self.runners = runners
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.data_dir = workdir / "data"
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'slipway.db'}"
        self.http = requests.Session()
        self.docker = docker.from_env()
        self.env = environment(SLIPWAY_REDIS_URL=self.redis_url,
                               SLIPWAY_DATA_DIR=str(self.data_dir), SLIPWAY_BASE_URL=self.base,
                               SLIPWAY_RUNNERS=str(runners or 1), PORT=str(self.port))
        if database_url:
            self.env["SLIPWAY_DATABASE_URL"] = database_url
        self.processes = Processes(workdir, self.env)

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        port = self.redis_url.rsplit(":", 1)[1].split("/")[0]
        self.processes.spawn("redis", "redis-server", "--port", port, "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", self.workdir,
                             "--maxclients", "10000")
        self.redis = Redis.from_url(self.redis_url)
        self._wait_ready(self._pings, "redis-server answering")
        slipway = BIN / "slipway"
        run(slipway, "db", "upgrade", cwd=ROOT, env=self.env)
        run(slipway, "repo", "add", REPO, "--forge", "github", "--clone-url", self.repo.path,
            "--secret", SECRET, cwd=ROOT, env=self.env)
        commands = procfile()
        if not self.runners:
            del commands["worker"]
        for name, command in commands.items():
            self.processes.spawn(name, "sh", "-c", command)  # as honcho runs them
        self._wait_ready(lambda: answers(f"{self.base}/api/repos"), "gunicorn answering")
        self._wait_ready(self._recorder_listens, "the recorder's consumer group")
        if self.runners:
            self._wait_ready(lambda: Worker.count(connection=self.redis) >= self.runners,
                             f"{self.runners} runner workers registered")

    def _wait_ready(self, ready: Callable[[], bool], what: str) -> None:
        """Wait for ``ready``, failing at once if a process exits meanwhile."""
        wait_until(lambda: self.processes.check() or ready(), START_SECONDS, what)

    def _pings(self) -> bool:
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False

    def _recorder_listens(self) -> bool:
        """Whether the recorder joined the events stream, so no runner event waits for it."""
        try:
            groups = self.redis.xinfo_groups(keys.EVENTS_STREAM)
        except ResponseError:  # the stream does not exist yet
            return False
        return any(group["name"] == keys.RECORDER_GROUP.encode() for group in groups)

    def stop(self) -> None:
        """Stop the processes (workers first, Redis last) and remove their job containers,
        and the spares (:mod:`runners.spare`) a runner stopped while making one left."""
        self.processes.stop()
        self.http.close()
        for container in self._job_containers() + self._job_containers(LABEL_SPARE):
            try:
                container.remove(force=True)
            except APIError:  # already gone, or its runner's removal is under way
                pass
        for network in self.docker.networks.list(filters=self._labels(LABEL_SPARE)):
            try:
                network.remove()
            except APIError:
                pass
        self.docker.close()

    def _labels(self, label: str) -> dict[str, list[str]]:
        instance = RunnerSettings(self.redis_url, self.data_dir, None, "").instance
        return {"label": [label, f"{LABEL_INSTANCE}={instance}"]}

    def _job_containers(self, label: str = LABEL) -> list[Container]:
        """The job containers (or spares) of this stack's runners, and of no other
        installation's."""
        return self.docker.containers.list(all=True, filters=self._labels(label),
                                           ignore_removed=True)

    def wait_quiet(self) -> None:
        """Wait until the runners removed their job containers and started their spares
        (:mod:`runners.spare`), so that the next measurement does not share the machine
        with what a runner does after a job."""
        wait_until(lambda: not self._job_containers() and self._spares_started(), BUILD_SECONDS,
                   "job containers removed and spares started")

    def _spares_started(self) -> bool:
        """Whether no job's workspace folder is left and each spare's folder has its
        container running, idle (a spare a job took bears the job's name). A runner makes
        the spare's folder before it removes the job's, so one of them is always there
        until the spare runs."""
        workspaces = self.data_dir / "runner" / "workspaces"
        folders = {path.name for path in workspaces.iterdir() if path.is_dir()} \
            if workspaces.is_dir() else set()
        idle = {container.name for container in self._job_containers(LABEL_SPARE)
                if container.status == "running"
                and container.name == container.labels.get(LABEL_SPARE)}
        return folders <= idle

    def api(self, path: str) -> dict:
        """GET a path of bench/tiny's JSON API; an error status ends the bench, saying why."""
        url = f"/api/repos/{REPO}{path}"
        response = self.http.get(self.base + url, timeout=30)
        if not response.ok:
            raise BenchError(f"GET {url} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def push(self, files: dict[str, str] | None = None) -> tuple[int, float, float]:
        """Commit ``files`` (the trivial pipeline unless they hold a ``.slipway.yml``), send
        its webhook; (build number, time sent, time of the 202)."""
        files = {".slipway.yml": PYTEST_CONFIG, **(files or {})}
        body, headers = push_webhook(self.repo.commit(files), f"bench {self.repo.commits}")
        sent = time.time()
        response = self.http.post(f"{self.base}/hooks/github", data=body, headers=headers,
                                  timeout=30)
        answered = time.time()
        if response.status_code != 202:
            raise BenchError(f"webhook answered {response.status_code}: {response.text}")
        return response.json()["build"]["number"], sent, answered

    def wait_passed(self, number: int, seconds: float = BUILD_SECONDS) -> dict:
        """Poll the build every 10 ms until it passed; its JSON at that moment."""
        deadline = time.monotonic() + seconds
        build: dict = {}
        while time.monotonic() < deadline:
            build = self.api(f"/builds/{number}")
            if build["status"] == "passed":
                return build
            if build["status"] not in ("queued", "running"):
                errors = [build["error"], *(job["error"] for job in build["jobs"])]
                raise BenchError(f"build #{number} {build['status']}: "
                                 f"{'; '.join(filter(None, errors))}")
            time.sleep(POLL_SECONDS)
        self.processes.check()
        raise BenchError(f"build #{number} did not pass within {seconds}s; it is "
                         f"{build.get('status')}. The runner's last words:\n"
                         f"{self.processes.tail('worker')}")
