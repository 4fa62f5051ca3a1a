"""The floors every figure is held against, measured in the same run on the same machine.

- server floor: the Procfile's gunicorn line (same worker class, workers, connections)
  serving :mod:`tests.bench.floor_app`, which reads the body and answers a constant;
- build floor: what a person does by hand: ``git clone`` of the repository, then
  ``docker run ... pytest``, one at a time and two at a time.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.client import raw_request, rate_rounds
from tests.bench.common import (IMAGE, REPO, START_SECONDS, WEB_APP, BenchError, environment,
                                free_port, procfile, push_webhook, run, wait_until)
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter
from tests.bench.stack import Processes, answers
from tests.bench.table import Figure, median

ROUNDS = 3
CLIENTS = 8
REQUESTS = 600
WARM_UP = 40
BADGE_PATH = f"/{REPO}/badge.svg"


@dataclass
class ServerFloor:
    """Per round, 2xx answers per second from the trivial app; and the web processes'
    CPU milliseconds per request, to compare with Slipway's."""

    post: list[float]
    get: list[float]
    post_cpu_ms: float
    get_cpu_ms: float


@dataclass
class BuildFloor:
    """Seconds of one clone + ``docker run`` alone, and of two side by side."""

    one: list[float]
    two: list[float]
    #: Of each of ``one``, the seconds the ``git clone`` took.
    clone: list[float]

    @property
    def one_rate(self) -> float:
        """Builds per second, one at a time."""
        return 1 / median(self.one)

    @property
    def two_rate(self) -> float:
        """Builds per second, two at a time."""
        return 2 / median(self.two)


def webhooks(port: int, sha: str, label: str, count: int = REQUESTS) -> list[bytes]:
    """``count`` signed push webhooks of ``sha``, each its own delivery."""
    return [raw_request(port, "POST", "/hooks/github", *push_webhook(sha, f"{label} {index}"))
            for index in range(count)]


class FloorServer:
    """The trivial app behind the Procfile's gunicorn line, kept running so that a section
    can take a floor round before each of its own rounds: on a machine shared with others,
    two figures taken minutes apart differ by the machine's load as much as by what they
    measure, and a ratio of rounds taken side by side does not."""

    def __init__(self, ctx: Context) -> None:
        self.port = free_port()
        self.sha = ctx.repo.head
        workdir = ctx.workdir / f"server-floor-{self.port}"
        workdir.mkdir()
        self.processes = Processes(workdir, environment(PORT=str(self.port)))

    def __enter__(self) -> FloorServer:
        command = procfile()["web"].replace(WEB_APP, "tests.bench.floor_app:app")
        try:
            self.processes.spawn("web", "sh", "-c", command)
            wait_until(lambda: self.processes.check()
                       or answers(f"http://127.0.0.1:{self.port}/"),
                       START_SECONDS, "the floor's gunicorn answering")
        except BaseException:
            self.processes.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.processes.check()
        self.processes.stop()

    def posts(self, rounds: int = 1) -> list[float]:
        """Rounds of signed webhook POSTs (after a warm-up), answers 202 per second."""
        rates, _lost = rate_rounds(self.port, lambda label: webhooks(self.port, self.sha, label),
                                   rounds, CLIENTS, 202, WARM_UP)
        return rates

    def gets(self, rounds: int = 1) -> list[float]:
        """Rounds of badge GETs (after a warm-up), answers 200 per second."""
        request = raw_request(self.port, "GET", BADGE_PATH)
        rates, _lost = rate_rounds(self.port, lambda _label: [request] * REQUESTS, rounds,
                                   CLIENTS, 200, WARM_UP)
        return rates


def server_floor(ctx: Context) -> ServerFloor:
    """The trivial app behind the Procfile's gunicorn line, POSTs then GETs."""
    with FloorServer(ctx) as server:
        meter = CpuMeter(server.processes.sessions())
        post = server.posts(ROUNDS)
        post_cpu = meter.spent()["web"] / (REQUESTS * ROUNDS + WARM_UP)
        meter = CpuMeter(server.processes.sessions())
        get = server.gets(ROUNDS)
        get_cpu = meter.spent()["web"] / (REQUESTS * ROUNDS + WARM_UP)
    return ServerFloor(post, get, post_cpu * 1000, get_cpu * 1000)


def by_hand(ctx: Context, scratch: Path) -> subprocess.Popen:
    """Start a fresh clone of the repository and ``docker run`` of its tests in it."""
    script = (f"git clone -q {ctx.repo.path} {scratch} && docker run --rm "
              f"-v {scratch}:/workspace -w /workspace {IMAGE} python3 -m pytest -q")
    return subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def timed_by_hand(ctx: Context, count: int) -> float:
    """Seconds for ``count`` by-hand builds started together to all finish."""
    scratches = [ctx.workdir / f"by-hand-{index}" for index in range(count)]
    began = time.perf_counter()
    running = [by_hand(ctx, scratch) for scratch in scratches]
    for process in running:
        _out, err = process.communicate(timeout=START_SECONDS * 3)
        if process.returncode:
            raise BenchError(f"the by-hand build failed: {err.decode(errors='replace')}")
    elapsed = time.perf_counter() - began
    for scratch in scratches:
        shutil.rmtree(scratch)
    return elapsed


def alone(ctx: Context) -> tuple[float, float]:
    """One by-hand build alone: its seconds in all, and of its ``git clone``."""
    scratch = ctx.workdir / "by-hand"
    began = time.perf_counter()
    run("git", "clone", "-q", ctx.repo.path, scratch)
    cloned = time.perf_counter()
    run("docker", "run", "--rm", "-v", f"{scratch}:/workspace", "-w", "/workspace", IMAGE,
        "python3", "-m", "pytest", "-q")
    done = time.perf_counter()
    shutil.rmtree(scratch)
    return done - began, cloned - began


def build_floor(ctx: Context) -> BuildFloor:
    """A warm-up run (the image's first start is slower), then rounds of one and of two."""
    alone(ctx)
    ones = [alone(ctx) for _ in range(ROUNDS)]
    two = [timed_by_hand(ctx, 2) for _ in range(ROUNDS)]
    return BuildFloor([total for total, _clone in ones], two, [clone for _t, clone in ones])


def servers(ctx: Context) -> ServerFloor:
    """The server floor, measured once per run."""
    return ctx.once("server floor", server_floor)


def builds(ctx: Context) -> BuildFloor:
    """The build floor, measured once per run."""
    return ctx.once("build floor", build_floor)


def measure(ctx: Context, result: Result) -> None:
    """The floors' own rows; the sections that need them reuse what is measured here."""
    server = servers(ctx)
    build = builds(ctx)
    result.figures += [
        Figure("server floor: POST answered 202, 8 clients", "req/s", server.post),
        Figure("server floor: GET answered 200, 8 clients", "req/s", server.get),
        Figure("build floor: git clone + docker run pytest, one at a time", "ms",
               [seconds * 1000 for seconds in build.one]),
        Figure("build floor: two at a time (both done)", "ms",
               [seconds * 1000 for seconds in build.two]),
    ]
    result.breakdown += [
        f"server floor: web CPU {server.post_cpu_ms:.2f} ms per POST, "
        f"{server.get_cpu_ms:.2f} ms per GET",
        f"build floor, one alone: git clone {median(build.clone) * 1000:.0f} ms of "
        f"{median(build.one) * 1000:.0f} ms",
    ]


METHOD = f"""\
- **server floor**: the Procfile's web line unchanged but for its app,
  `tests.bench.floor_app:app`, a WSGI function that reads the body and answers a constant
  (202 and a short JSON to a POST, a fixed SVG to a GET). An untimed warm-up of {WARM_UP}
  requests, then {ROUNDS} rounds of {REQUESTS} requests, {CLIENTS} at a time, each on a
  connection of its own (`Connection: close`), from raw sockets driven by one thread
  with a selector: POSTs carry the same signed webhook bodies the ingest sends, GETs ask
  for `{BADGE_PATH}`. Rate = answers / time from the first connection to the last answer.
- **build floor**: `git clone -q` of the repository into a new directory and `docker run
  --rm -v <dir>:/workspace -w /workspace {IMAGE} python3 -m pytest -q`, after one untimed
  warm-up: {ROUNDS} rounds of one alone, then {ROUNDS} rounds of two started together
  (a round lasts until both are done). Floor rates: 1 / median of one alone, and
  2 / median of two together.
"""
