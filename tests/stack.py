"""Slipway as ``make run`` starts it, for the browser tests: the Procfile's web, recorder,
reporter and worker lines, each in a process of its own, on the test session's Redis and
the test's database, with a data folder of the test's.

Each Procfile line runs under ``sh -c "exec …"`` as honcho runs it, with the environment a
deployment gives it; the web line serves on a free loopback port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

import requests
from redis import Redis
from rq import Worker

from ci.pipeline.status import Status
from tests.conftest import SECRET, SLIPWAY, free_port, push_payload, sign
from tests.polling import wait_for
from tests.procfile import read_procfile

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("web", "recorder", "reporter", "worker")
START_SECONDS = 60.0


class StackError(RuntimeError):
    """A process of the stack did not start or exited; the message holds its log's end."""


class Stack:
    """The four Procfile processes; use in ``with``, which starts and stops them."""

    def __init__(self, workdir: Path, redis_url: str, database_url: str, runners: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.database_url = database_url
        self.runners = runners
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.http = requests.Session()

    def env(self) -> dict[str, str]:
        """What each process is given: this environment without its ``SLIPWAY_*`` variables,
        then the stack's own."""
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("SLIPWAY_")}
        env.update(SLIPWAY_DATA_DIR=str(self.workdir / "data"),
                   SLIPWAY_REDIS_URL=self.redis_url, SLIPWAY_DATABASE_URL=self.database_url,
                   SLIPWAY_BASE_URL=self.url, SLIPWAY_SECRET_KEY="stack-secret-key",
                   SLIPWAY_RUNNER_DIR=str(self.workdir / "runner"),
                   SLIPWAY_RUNNERS=str(self.runners), PORT=str(self.port))
        env.update(self.extra_env)
        return env

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.cli("db", "upgrade")
            commands = read_procfile()
            for role in ROLES:
                self._start(role, commands[role])
            self._wait_ready("web", self._web_answers, "the web server answering")
            self._wait_ready("recorder",
                             lambda: "waiting for runner events" in self.log("recorder"),
                             "the recorder reading events")
            self._wait_ready("worker", lambda: len(self._workers()) >= self.runners,
                             f"{self.runners} runner workers registered")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process: the runners, recorder and reporter as at a deploy (SIGTERM),
        gunicorn at once (SIGQUIT): a browser still on a page holds its live stream open,
        which a graceful stop would wait out for 30 s."""
        self.http.close()
        for role, process in self.processes.items():
            try:
                os.killpg(process.pid, signal.SIGQUIT if role == "web" else signal.SIGTERM)
            except ProcessLookupError:
                pass
        for role, process in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()

    def _start(self, role: str, command: str) -> None:
        log = (self.workdir / f"{role}.log").open("wb")
        self.processes[role] = subprocess.Popen(
            ["sh", "-c", f"exec {command}"], cwd=ROOT, env=self.env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def log(self, role: str) -> str:
        """What the process of ``role`` printed so far."""
        return (self.workdir / f"{role}.log").read_text("utf-8", "replace")

    def _wait_ready(self, role: str, ready, what: str) -> None:
        def check() -> object:
            if self.processes[role].poll() is not None:
                raise StackError(f"the {role} process exited:\n{self.log(role)[-3000:]}")
            return ready()

        wait_for(check, START_SECONDS, what=what)

    def _web_answers(self) -> bool:
        try:
            return self.http.get(f"{self.url}/api/repos", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _workers(self) -> list[Worker]:
        with Redis.from_url(self.redis_url) as client:
            worker_pid = self.processes["worker"].pid
            return [worker for worker in Worker.all(connection=client)
                    if _parent_of(worker.pid) == worker_pid or worker.pid == worker_pid]

    # Using it ------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        """Run ``slipway ARGS`` with the stack's environment; returns what it printed."""
        done = subprocess.run([SLIPWAY, *args], env=self.env(), capture_output=True, text=True,
                              timeout=120)
        if done.returncode:
            raise StackError(f"slipway {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def add_repo(self, full_name: str, clone_url: Path | str) -> None:
        self.cli("repo", "add", full_name, "--forge", "github", "--clone-url", str(clone_url),
                 "--secret", SECRET)

    def push(self, full_name: str, sha: str, branch: str = "main",
             message: str = "change") -> int:
        """Send a signed push webhook; returns the build's number."""
        body = push_payload(full_name, sha, branch=branch, message=message)
        response = self.http.post(f"{self.url}/hooks/github", data=body, timeout=10, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"stack-{time.monotonic_ns()}",
            "X-Hub-Signature-256": sign(body)})
        assert response.status_code == 202, response.text
        return response.json()["build"]["number"]

    def build(self, full_name: str, number: int) -> dict:
        response = self.http.get(f"{self.url}/api/repos/{full_name}/builds/{number}", timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_finished(self, full_name: str, number: int, timeout: float = 120.0) -> dict:
        """The build once it finished, as the API shows it."""
        def finished() -> dict | None:
            build = self.build(full_name, number)
            return build if Status(build["status"]).finished else None

        return wait_for(finished, timeout, what=f"build #{number} of {full_name} to finish")


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])
