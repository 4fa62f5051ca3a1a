"""Slipway's benchmark, run by ``make bench`` (``.venv/bin/python -m tests.bench``).

It measures what a user feels — how many webhooks per second the service
accepts, how long a push takes to become a green build compared with running the
same tests by hand, and how late live log lines reach a browser — against the
real processes of a deployment, not in-process shortcuts, so that every queue,
socket and serialisation a production build goes through is on the clock.

Everything it measures it starts itself, in a temporary directory, on loopback
only: its own ``redis-server`` on a free port, a fresh SQLite data directory, a
tiny git repository, and the processes the Procfile names (gunicorn, the
recorder, the runner workers). Nothing is shared with a Slipway that may already
run on this machine, and everything is stopped at the end, on error as well.

The table is printed and written to ``docs/benchmarks.md`` with the date, the
machine's facts and how each number was measured.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import http.client
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self, TypeVar

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
from tests import bench_scaling
from tests.polling import wait_for
from tests.procfile import read_procfile

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PUSH_FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "github" / "push.branch.json"
REPORT = ROOT / "docs" / "benchmarks.md"
PUBLIC_BIND = "--bind 0.0.0.0:"
LOOPBACK_BIND = "--bind 127.0.0.1:"

IMAGE = "slipway/python:3.11"
REPO = "bench/tiny"
SECRET = "bench-secret"
RUNNERS = 2

INGEST_WEBHOOKS = 500
INGEST_CLIENTS = 8
INGEST_WARM_UP = 40
INGEST_ROUNDS = 3
E2E_BUILDS = 10
POLL_SECONDS = 0.01
TICKS = 20
TICK_SECONDS = 0.5

INGEST_TARGET_PER_SECOND = 800
E2E_TARGET_RATIO = 1.3
LAG_MEDIAN_TARGET_MS = 100
LAG_MAX_TARGET_MS = 250

#: How long any one thing may take before the bench gives up with an error.
START_SECONDS = 30
BUILD_SECONDS = 180

TEST_FILE = "def test_arithmetic():\n    assert 1 + 1 == 2\n"
PYTEST_CONFIG = f"image: {IMAGE}\nsteps:\n  - python3 -m pytest -q\n"
# Prints the host-comparable wall clock (containers share the host's clock) every
# half second, unbuffered, so each line's lag is its arrival time minus its text.
TICKER_CONFIG = (
    f"image: {IMAGE}\n"
    "steps:\n"
    "  - name: ticker\n"
    "    run: |\n"
    "      python3 -u -c '\n"
    "      import time\n"
    f"      for _ in range({TICKS}):\n"
    "          print(time.time(), flush=True)\n"
    f"          time.sleep({TICK_SECONDS})\n"
    "      '\n"
)

TAG = re.compile(r"<[^>]*>")
TIMESTAMP = re.compile(r"\d{9,}\.\d+")

T = TypeVar("T")


class BenchError(RuntimeError):
    """The bench could not take a measurement; the message says what went wrong."""


# Plumbing -------------------------------------------------------------------------------

def free_port() -> int:
    """A loopback port nobody listens on now (ephemeral range, so never 8000)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], T], seconds: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; a deadline, never a hang."""
    try:
        return wait_for(predicate, seconds, interval, what)
    except AssertionError as exc:
        raise BenchError(str(exc)) from None


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; its stderr becomes the error when it fails."""
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(map(str, command))} exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def sign(body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` over the exact bytes sent."""
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def push_webhook(sha: str, message: str) -> tuple[bytes, dict[str, str]]:
    """A signed GitHub push of ``sha`` to bench/tiny, from the recorded delivery."""
    payload = json.loads(PUSH_FIXTURE.read_bytes())
    payload["repository"]["full_name"] = REPO
    payload["after"] = sha
    payload["head_commit"]["id"] = sha
    payload["head_commit"]["message"] = message
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
    }
    return body, headers


def epoch(iso: str | None) -> float:
    """Seconds since the epoch of an API timestamp (ISO 8601, UTC)."""
    if iso is None:
        raise BenchError("the build JSON lacks a timestamp the bench needs")
    return datetime.fromisoformat(iso).timestamp()


def median_ms(seconds: list[float]) -> float:
    """The median of durations in seconds, in milliseconds as the table shows them."""
    return statistics.median(seconds) * 1000


class TinyRepo:
    """The repository that is built: one passing test and a ``.slipway.yml``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self._git("init", "-q", "-b", "main")
        self._git("config", "user.email", "bench@example.com")
        self._git("config", "user.name", "Bench")
        self.commits = 0
        self.head = self.commit({"test_tiny.py": TEST_FILE, ".slipway.yml": PYTEST_CONFIG})

    def _git(self, *args: str) -> str:
        """Run git in the repository; its output."""
        return run("git", *args, cwd=self.path)

    def commit(self, files: dict[str, str] | None = None) -> str:
        """Commit ``files`` (by default a change nobody runs) and return the new HEAD."""
        self.commits += 1
        for name, text in (files or {"CHANGES": f"change {self.commits}\n"}).items():
            (self.path / name).write_text(text)
        self._git("add", "-A")
        self._git("commit", "-q", "-m", f"change {self.commits}")
        self.head = self._git("rev-parse", "HEAD")
        return self.head


# The stack under test -------------------------------------------------------------------

def procfile() -> dict[str, str]:
    """The Procfile's processes by name, with the web server bound to loopback only.

    The bench runs the Procfile's own command lines, so that what it measures is
    what ``make run`` deploys, including any process added later.
    """
    processes = read_procfile()
    for name in ("web", "recorder", "worker"):
        if name not in processes:
            raise BenchError(f"the Procfile has no {name!r} process")
    if PUBLIC_BIND not in processes["web"]:
        raise BenchError(f"the Procfile's web command lacks {PUBLIC_BIND!r}; teach the bench "
                         "how to bind it to loopback")
    processes["web"] = processes["web"].replace(PUBLIC_BIND, LOOPBACK_BIND)
    return processes


class Stack:
    """One isolated Slipway: Redis, database, repository registration, its processes.

    ``runners=False`` leaves the Procfile's ``worker`` out, so accepted builds stay queued.
    """

    def __init__(self, workdir: Path, repo: TinyRepo, runners: bool) -> None:
        self.workdir = workdir
        workdir.mkdir()
        self.repo = repo
        self.runners = runners
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.data_dir = workdir / "data"
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.http = requests.Session()
        self.docker = docker.from_env()
        # Inherited SLIPWAY_* settings would point this stack at someone else's
        # database or Redis; the bench sets exactly the ones it means.
        self.env = {name: value for name, value in os.environ.items()
                    if not name.startswith("SLIPWAY_")}
        self.env.update(SLIPWAY_REDIS_URL=self.redis_url, SLIPWAY_DATA_DIR=str(self.data_dir),
                        SLIPWAY_BASE_URL=self.base, SLIPWAY_RUNNERS=str(RUNNERS),
                        PORT=str(self.port))

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, *command: str | Path) -> subprocess.Popen:
        """Start a process in its own session, so that it and its children stop together."""
        with open(self.workdir / f"{name}.log", "wb") as output:
            process = subprocess.Popen([str(part) for part in command], cwd=ROOT, env=self.env,
                                       stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append((name, process))
        return process

    def tail(self, name: str) -> str:
        """The last lines a process of the stack wrote, to say why something failed."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]

    def check(self) -> None:
        """Fail, with the process's last words, when one of the stack's processes exited."""
        for name, process in self.processes:
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def _start(self) -> None:
        port = self.redis_url.rsplit(":", 1)[1].split("/")[0]
        self._spawn("redis", "redis-server", "--port", port, "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self.workdir)
        self.redis = Redis.from_url(self.redis_url)
        self._wait_ready(self._pings, "redis-server answering")
        slipway = BIN / "slipway"
        run(slipway, "db", "upgrade", cwd=ROOT, env=self.env)
        run(slipway, "repo", "add", REPO, "--forge", "github", "--clone-url", self.repo.path,
            "--secret", SECRET, cwd=ROOT, env=self.env)
        processes = procfile()
        if not self.runners:
            del processes["worker"]
        for name, command in processes.items():
            self._spawn(name, "sh", "-c", command)  # as honcho runs them
        self._wait_ready(self._web_answers, "gunicorn answering")
        self._wait_ready(self._recorder_listens, "the recorder's consumer group")
        if self.runners:
            self._wait_ready(lambda: Worker.count(connection=self.redis) >= RUNNERS,
                             f"{RUNNERS} runner workers registered")

    def _wait_ready(self, ready: Callable[[], bool], what: str) -> None:
        """Wait for ``ready``, failing at once if a process exits meanwhile."""
        wait_until(lambda: self.check() or ready(), START_SECONDS, what)

    def _pings(self) -> bool:
        """Whether the stack's Redis answers (it refuses connections while it starts)."""
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False

    def _web_answers(self) -> bool:
        """Whether gunicorn serves the app (workers import it after the port is bound)."""
        try:
            return self.http.get(f"{self.base}/api/repos", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _recorder_listens(self) -> bool:
        """Whether the recorder joined the events stream, so no runner event waits for it."""
        try:
            groups = self.redis.xinfo_groups(keys.EVENTS_STREAM)
        except ResponseError:  # the stream does not exist yet
            return False
        return any(group["name"] == keys.RECORDER_GROUP.encode() for group in groups)

    def stop(self) -> None:
        """Stop the processes (workers first, Redis last) and remove their job containers."""
        for name, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self.processes.clear()
        self.http.close()
        for container in self._job_containers():
            try:
                container.remove(force=True)
            except APIError:  # already gone, or its runner's removal is under way
                pass
        self.docker.close()

    def _job_containers(self) -> list[Container]:
        """The job containers of this stack's runners (and of no other installation)."""
        instance = RunnerSettings(self.redis_url, self.data_dir, None, "").instance
        labels = {"label": [LABEL, f"{LABEL_INSTANCE}={instance}"]}
        return self.docker.containers.list(all=True, filters=labels, ignore_removed=True)

    def wait_quiet(self) -> None:
        """Wait until the runners removed their job containers.

        A runner may clean up after it reported the result; the next measurement
        must not share the machine with that cleanup.
        """
        wait_until(lambda: not self._job_containers(), BUILD_SECONDS, "job containers removed")

    def api(self, path: str) -> dict:
        """GET a path of bench/tiny's JSON API; an error status ends the bench, saying why."""
        url = f"/api/repos/{REPO}{path}"
        response = self.http.get(self.base + url, timeout=10)
        if not response.ok:
            raise BenchError(f"GET {url} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def wait_passed(self, number: int) -> dict:
        """Poll the build every 10 ms until it passed; its JSON at that moment."""
        deadline = time.monotonic() + BUILD_SECONDS
        while time.monotonic() < deadline:
            build = self.api(f"/builds/{number}")
            if build["status"] == "passed":
                return build
            if build["status"] not in ("queued", "running"):
                errors = [build["error"], *(job["error"] for job in build["jobs"])]
                raise BenchError(f"build #{number} {build['status']}: "
                                 f"{'; '.join(filter(None, errors))}")
            time.sleep(POLL_SECONDS)
        self.check()
        raise BenchError(f"build #{number} did not pass within {BUILD_SECONDS}s; it is "
                         f"{build['status']}. The runner's last words:\n{self.tail('worker')}")


# Measurements ---------------------------------------------------------------------------

@dataclass
class Ingest:
    """Per round: webhooks answered 202 per second, how many were, and how many builds
    the API counted."""

    per_second: list[float] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    recorded: list[int] = field(default_factory=list)


@dataclass
class EndToEnd:
    """Seconds per build: push to passed, the floor, and the legs the push took."""

    e2e: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    to_202: list[float] = field(default_factory=list)
    to_started: list[float] = field(default_factory=list)
    job: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)
    to_seen: list[float] = field(default_factory=list)


@dataclass
class LogLag:
    """Seconds from each printed line to its arrival at the SSE client."""

    lags: list[float]


def raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """``POST path`` with ``body`` as the bytes a client sends."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Exchange:
    """One request on its own connection: what is left to send, what came back."""

    def __init__(self, raw: bytes) -> None:
        self.unsent = memoryview(raw)
        self.received = bytearray()

    def status(self) -> int:
        """The response's status code; 0 when the server closed without one."""
        parts = bytes(self.received[:16]).split(b" ")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def send_concurrently(port: int, requests: list[bytes]) -> tuple[list[int], float]:
    """``requests``, INGEST_CLIENTS at a time, each on a connection of its own as forges
    deliver webhooks; their status codes and the seconds from the first connection to
    the last answer.

    One thread drives the connections with a selector: the bench shares the machine
    with the server it measures, so its client must cost next to nothing. Requests are
    bytes prepared beforehand, and each response ends where the server closes.
    """
    waiting = iter(requests)
    selector = selectors.DefaultSelector()
    statuses: list[int] = []

    def open_next() -> None:
        raw = next(waiting, None)
        if raw is not None:
            connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            connection.setblocking(False)
            connection.connect_ex(("127.0.0.1", port))
            selector.register(connection, selectors.EVENT_WRITE, Exchange(raw))

    began = time.perf_counter()
    for _ in range(INGEST_CLIENTS):
        open_next()
    while selector.get_map():
        ready = selector.select(timeout=START_SECONDS)
        if not ready:
            raise BenchError(f"no answer from the web server for {START_SECONDS} s")
        for key, events in ready:
            connection, exchange = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                exchange.unsent = exchange.unsent[connection.send(exchange.unsent):]
                if not exchange.unsent:
                    selector.modify(connection, selectors.EVENT_READ, exchange)
            elif chunk := connection.recv(65536):
                exchange.received += chunk
            else:
                selector.unregister(connection)
                connection.close()
                statuses.append(exchange.status())
                open_next()
    return statuses, time.perf_counter() - began


def measure_ingest(stack: Stack, sha: str) -> Ingest:
    """Rounds of 500 signed pushes from 8 clients at once, a connection each; no runner
    takes them. The machine is shared with the server, so one round is one sample.

    A warm-up round first, as a running service is warm: each web worker has then
    imported what a webhook needs and opened its connections.
    """
    ingest = Ingest()
    send_concurrently(stack.port, [raw_request(stack.port, "/hooks/github",
                                               *push_webhook(sha, f"warm-up {index}"))
                                   for index in range(INGEST_WARM_UP)])
    for round_number in range(INGEST_ROUNDS):
        webhooks = [raw_request(stack.port, "/hooks/github",
                                *push_webhook(sha, f"ingest {round_number}.{index}"))
                    for index in range(INGEST_WEBHOOKS)]
        before = stack.api("/builds?per_page=1")["total"]
        statuses, elapsed = send_concurrently(stack.port, webhooks)
        if len(statuses) != INGEST_WEBHOOKS:
            raise BenchError(f"only {len(statuses)} of {INGEST_WEBHOOKS} webhooks were answered")
        ingest.accepted.append(statuses.count(202))
        ingest.per_second.append(statuses.count(202) / elapsed)
        ingest.recorded.append(stack.api("/builds?per_page=1")["total"] - before)
    return ingest


def push_build(stack: Stack, repo: TinyRepo, files: dict[str, str] | None = None
               ) -> tuple[int, float, float]:
    """Commit, send its webhook; returns (build number, time sent, time of the 202)."""
    body, headers = push_webhook(repo.commit(files), f"bench {repo.commits}")
    sent = time.time()
    response = stack.http.post(f"{stack.base}/hooks/github", data=body, headers=headers,
                               timeout=10)
    answered = time.time()
    if response.status_code != 202:
        raise BenchError(f"webhook answered {response.status_code}: {response.text}")
    return response.json()["build"]["number"], sent, answered


def measure_floor(repo: TinyRepo, scratch: Path) -> float:
    """The same tests run by hand: a fresh clone and one ``docker run``."""
    began = time.perf_counter()
    run("git", "clone", "-q", repo.path, scratch)
    run("docker", "run", "--rm", "-v", f"{scratch}:/workspace", "-w", "/workspace", IMAGE,
        "python3", "-m", "pytest", "-q")
    elapsed = time.perf_counter() - began
    shutil.rmtree(scratch)
    return elapsed


def measure_end_to_end(stack: Stack, repo: TinyRepo, scratch: Path) -> EndToEnd:
    """A warm-up build, then 10 pushes, each followed by a floor run on the same machine state."""
    stack.wait_passed(push_build(stack, repo)[0])
    stack.wait_quiet()
    result = EndToEnd()
    for _ in range(E2E_BUILDS):
        number, sent, answered = push_build(stack, repo)
        build = stack.wait_passed(number)
        seen = time.time()
        job = build["jobs"][0]
        started, finished = epoch(job["started_at"]), epoch(job["finished_at"])
        step = job["steps"][0]
        result.e2e.append(seen - sent)
        result.to_202.append(answered - sent)
        result.to_started.append(started - answered)
        result.job.append(finished - started)
        result.step.append(epoch(step["finished_at"]) - epoch(step["started_at"]))
        result.to_seen.append(seen - finished)
        stack.wait_quiet()
        result.floor.append(measure_floor(repo, scratch))
    return result


def sse_chunks(stack: Stack, number: int) -> list[tuple[float, str]]:
    """Follow the job's live log until its end event: (arrival time, html) of each output."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=BUILD_SECONDS)
    try:
        connection.request("GET", f"/{REPO}/builds/{number}/jobs/1/events",
                           headers={"Accept": "text/event-stream"})
        response = connection.getresponse()
        if response.status != 200:
            raise BenchError(f"the log stream answered {response.status}")
        chunks, kind, data = [], "", ""
        for raw in iter(response.readline, b""):
            arrived = time.time()
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data = line.partition(":")[2].strip()
            elif line == "" and data:
                if kind == "out":
                    chunks.append((arrived, json.loads(data)["html"]))
                if kind == "end":
                    return chunks
                kind, data = "", ""
        raise BenchError("the log stream closed before the job's end event")
    finally:
        connection.close()


def line_lags(chunks: list[tuple[float, str]]) -> list[float]:
    """Lag of each printed line: when its last piece arrived minus the time it carries.

    A chunk may hold several lines or part of one, so the text is reassembled
    before it is split; the html is escaped text, possibly inside spans.
    """
    lags, pending = [], ""
    for arrived, fragment in chunks:
        pending += html.unescape(TAG.sub("", fragment))
        *lines, pending = pending.split("\n")
        lags.extend(arrived - float(line) for line in lines if TIMESTAMP.fullmatch(line.strip()))
    if len(lags) != TICKS:
        raise BenchError(f"the live log carried {len(lags)} timestamp lines, not {TICKS}")
    return lags


def measure_log_lag(stack: Stack, repo: TinyRepo) -> LogLag:
    """A build printing a timestamp every 0.5 s, followed over SSE from before it starts."""
    number, _sent, _answered = push_build(stack, repo, {".slipway.yml": TICKER_CONFIG})
    chunks = sse_chunks(stack, number)
    stack.wait_passed(number)
    return LogLag(line_lags(chunks))


# Report ---------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    """The table's word for whether a result meets its target."""
    return "PASS" if ok else "MISS"


def table(ingest: Ingest, e2e: EndToEnd, lag: LogLag,
          scaling: bench_scaling.Scaling | str) -> str:
    """The results as a Markdown table, each beside its target where it has one."""
    ratio = statistics.median(e2e.e2e) / statistics.median(e2e.floor)
    lag_median, lag_max = median_ms(lag.lags), max(lag.lags) * 1000
    rate = statistics.median(ingest.per_second)
    rounds = ", ".join(f"{value:.0f}" for value in ingest.per_second)
    rows = [
        (f"ingest: webhooks accepted per second (8 clients, median of {INGEST_ROUNDS} rounds)",
         f"{rate:.0f}/s", f">= {INGEST_TARGET_PER_SECOND}/s",
         verdict(rate >= INGEST_TARGET_PER_SECOND)),
        ("  the rounds", f"{rounds}", "", ""),
        ("ingest: answered 202, each round", ", ".join(map(str, ingest.accepted)),
         f"{INGEST_WEBHOOKS}", verdict(set(ingest.accepted) == {INGEST_WEBHOOKS})),
        ("ingest: builds recorded, each round", ", ".join(map(str, ingest.recorded)),
         f"{INGEST_WEBHOOKS}", verdict(set(ingest.recorded) == {INGEST_WEBHOOKS})),
        ("end to end: webhook sent -> build passed (median)",
         f"{median_ms(e2e.e2e):.0f} ms", "", ""),
        ("floor: git clone + docker run pytest (median)", f"{median_ms(e2e.floor):.0f} ms",
         "", ""),
        ("end to end / floor", f"{ratio:.2f}x", f"<= {E2E_TARGET_RATIO}x",
         verdict(ratio <= E2E_TARGET_RATIO)),
        ("  of which webhook -> 202 (median)", f"{median_ms(e2e.to_202):.0f} ms", "", ""),
        ("  of which 202 -> job started_at (median)", f"{median_ms(e2e.to_started):.0f} ms",
         "", ""),
        ("  of which job duration (median)", f"{median_ms(e2e.job):.0f} ms", "", ""),
        ("    of it the pytest step (median)", f"{median_ms(e2e.step):.0f} ms", "", ""),
        ("  of which job finished -> passed seen (median)", f"{median_ms(e2e.to_seen):.0f} ms",
         "", ""),
        ("log lag: median", f"{lag_median:.0f} ms", f"< {LAG_MEDIAN_TARGET_MS} ms",
         verdict(lag_median < LAG_MEDIAN_TARGET_MS)),
        ("log lag: max", f"{lag_max:.0f} ms", f"< {LAG_MAX_TARGET_MS} ms",
         verdict(lag_max < LAG_MAX_TARGET_MS)),
        *bench_scaling.rows(scaling),
    ]
    header = ("measurement", "result", "target", "verdict")
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(4)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"
             for row in (header, *rows)]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def machine_facts() -> list[str]:
    """What the numbers depend on: the CPUs, memory and versions of the parts measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    memory = next((f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                   for line in meminfo.splitlines() if line.startswith("MemTotal:")), "unknown")
    return [
        f"CPUs: {os.cpu_count()} ({model})",
        f"memory: {memory}",
        f"system: {platform.system()} {platform.release()}",
        f"Python: {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"Docker engine: {run('docker', 'version', '--format', '{{.Server.Version}}')}",
        f"Redis: {run('redis-server', '--version').split()[2].removeprefix('v=')}",
        f"git: {run('git', '--version').removeprefix('git version ')}",
        # The machine may be shared: other work running meanwhile slows every number.
        "load average at the start (1, 5, 15 min): "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg()),
    ]


def method(processes: dict[str, str]) -> str:
    """How each number was measured, for the report."""
    commands = "\n".join(f"  - {name}: `{command}`" for name, command in processes.items())
    return f"""\
## How each number was measured

The bench starts everything it measures itself, on loopback, in a temporary
directory: its own `redis-server` (no persistence) on a free port, a fresh SQLite
data directory (`slipway db upgrade`), a git repository with one passing test and a
`.slipway.yml` (`image: {IMAGE}`, one step `python3 -m pytest -q`) registered with
`slipway repo add {REPO}`, and the Procfile's processes, with `PORT` a free port,
`SLIPWAY_RUNNERS={RUNNERS}` and the web server bound to 127.0.0.1:

{commands}

- **ingest**: {INGEST_ROUNDS} rounds of {INGEST_WEBHOOKS} GitHub push webhooks (the recorded
  `push.branch.json` pointed at `{REPO}` and its HEAD), each with its own delivery id
  and `X-Hub-Signature-256`, all built and signed before the clock starts, sent to
  `POST /hooks/github` {INGEST_CLIENTS} at a time, each on a connection of its own as
  forges deliver them (raw HTTP/1.1 from one thread driving the connections with a
  selector, so the client takes little of the CPU the server needs). A warm-up round
  of {INGEST_WARM_UP} such webhooks goes first, untimed, as a running service is warm.
  Accepted per second = webhooks answered 202 / time from the first connection to the
  last answer, per round; the table gives the median and each round. The stack runs
  without runner workers, so the builds stay queued; "builds recorded" is how much
  `total` of `GET /api/repos/{REPO}/builds?per_page=1` grew over each round. The
  bench sets the stack's `SLIPWAY_*` variables itself (Redis, data directory, base
  URL, runners) and passes on no others, so gunicorn writes no access log
  (`SLIPWAY_ACCESS_LOG` unset, the default). That stack is then stopped and a fresh
  one is used for the rest.
- **end to end**: after one warm-up build (it fills the runner's mirror cache),
  {E2E_BUILDS} times: commit to the repository, send its push webhook, poll
  `GET /api/repos/{REPO}/builds/N` every {POLL_SECONDS * 1000:.0f} ms until it says
  `passed`; the median of sent -> seen passed. The breakdown rows come from the
  client's clock (webhook -> 202) and from the build JSON (the job's and the step's
  `started_at`/`finished_at`, written from the runner's events).
- **floor**: after each of those builds, the same tests by hand: `git clone` of the
  repository into a new directory, then `docker run --rm -v <dir>:/workspace
  -w /workspace {IMAGE} python3 -m pytest -q`; the median of the {E2E_BUILDS}
  wall-clock times. The ratio is median end to end / median floor.
- **log lag**: a build whose step prints `time.time()` every {TICK_SECONDS} s,
  {TICKS} times (containers share the host's clock). An SSE client follows
  `/{REPO}/builds/N/jobs/1/events` from before the job starts and notes when each
  `out` event arrives; the escaped HTML is turned back into text and reassembled
  into lines (a chunk may hold several lines or part of one). Lag = arrival of a
  line's last piece - the timestamp it carries.
{bench_scaling.METHOD}"""


def report(table_text: str, facts: list[str], processes: dict[str, str]) -> str:
    """The page written to docs/benchmarks.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = "\n".join(f"- {fact}" for fact in facts)
    return (f"# Benchmarks\n\nMeasured by `make bench` (`.venv/bin/python -m tests.bench`) on "
            f"{when}; running it again rewrites this page.\n\n## Machine\n\n{machine}\n\n"
            f"## Results\n\n{table_text}\n\n{method(processes)}")


def main() -> None:
    """Run the measurements on isolated stacks; print and write the report."""
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as temp:
        workdir = Path(temp)
        repo = TinyRepo(workdir / "tiny")
        with Stack(workdir / "ingest", repo, runners=False) as stack:
            print(f"ingest: {INGEST_WEBHOOKS} webhooks from {INGEST_CLIENTS} clients", flush=True)
            ingest = measure_ingest(stack, repo.head)
            stack.check()
        with Stack(workdir / "builds", repo, runners=True) as stack:
            print(f"end to end: warm-up, then {E2E_BUILDS} builds and floor runs", flush=True)
            e2e = measure_end_to_end(stack, repo, workdir / "floor")
            print("log lag: one build printing timestamps", flush=True)
            lag = measure_log_lag(stack, repo)
            stack.check()
    print(f"scaling: {bench_scaling.BUILDS} builds on 1 runner host, then on "
          f"{bench_scaling.HOSTS}", flush=True)
    scaling = bench_scaling.measure_scaling(IMAGE)
    table_text = table(ingest, e2e, lag, scaling)
    print(table_text)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report(table_text, facts, procfile()))
    print(f"written to {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"bench failed: {error}")
