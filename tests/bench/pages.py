"""The pages read most, over a large history: the repository page, a build's JSON and the
builds list, with 10 builds and then with 1,000 repositories and 100,000 builds.

The rows are written straight into the tables of ``ci/store/models.py`` with bulk inserts
(a build, its job and its step each): webhooks would take minutes to make that many, and
what is measured is reading them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, select, update
from sqlalchemy.engine import Connection

from ci.store.models import Build, Job, Repo, Step
from tests.bench import floors
from tests.bench.common import REPO, BenchError
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter, describe
from tests.bench.stack import Stack
from tests.bench.table import Figure, Target, median

REPOS = 1_000
BUILDS = 100_000
#: bench/tiny's share of the builds: the deep history of one busy repository.
OWN_BUILDS = 10_000
SMALL = 10
REQUESTS = 40
P95_TARGET_MS = 20
SLOWDOWN_TARGET = 1.5
BATCH = 5_000
#: How long the stack is watched doing nothing, to tell its background work from pages'.
IDLE_SECONDS = 3
PAGES = {
    "repository page": f"/{REPO}",
    "build JSON": f"/api/repos/{REPO}/builds/{{number}}",
    "builds list": f"/api/repos/{REPO}/builds",
}


def add_builds(connection: Connection, repo_id: int, first: int, last: int) -> None:
    """Builds ``first``..``last`` of a repository, each with one passed job of one step, a
    minute apart and ending now: recent enough that retention (``SLIPWAY_KEEP_DAYS``) has
    nothing to remove, so the recorder's pruning pass does not compete with the pages."""
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=last + 1)
    for low in range(first, last + 1, BATCH):
        numbers = range(low, min(low + BATCH, last + 1))
        at = [start + timedelta(minutes=number) for number in numbers]
        builds = connection.execute(insert(Build.__table__).returning(Build.__table__.c.id), [
            {"repo_id": repo_id, "number": number, "status": "passed", "event": "push",
             "ref": "refs/heads/main", "branch": "main", "sha": f"{number:040x}",
             "message": f"change {number}", "author": "Bench", "created_at": when,
             "started_at": when, "finished_at": when + timedelta(seconds=30)}
            for number, when in zip(numbers, at)]).scalars().all()
        jobs = connection.execute(insert(Job.__table__).returning(Job.__table__.c.id), [
            {"build_id": build_id, "number": 1, "name": "default", "cell": "{}",
             "status": "passed", "attempt": 1, "image": "slipway/python:3.11",
             "runner": "bench", "created_at": when, "enqueued_at": when,
             "started_at": when, "finished_at": when + timedelta(seconds=30)}
            for build_id, when in zip(builds, at)]).scalars().all()
        connection.execute(insert(Step.__table__), [
            {"job_id": job_id, "number": 1, "name": "python3 -m pytest -q", "status": "passed",
             "exit_code": 0, "started_at": when, "finished_at": when + timedelta(seconds=29)}
            for job_id, when in zip(jobs, at)])
    connection.execute(update(Repo.__table__).where(Repo.__table__.c.id == repo_id)
                       .values(last_build_number=last))


def seed(stack: Stack, first: int, last: int, others: bool) -> None:
    """bench/tiny's builds ``first``..``last``; with ``others``, the other repositories
    and the rest of the builds."""
    engine = create_engine(stack.database_url)
    with engine.begin() as connection:
        table = Repo.__table__
        own = connection.execute(select(table.c.id).where(table.c.full_name == REPO)).scalar()
        add_builds(connection, own, first, last)
        if others:
            ids = connection.execute(insert(table).returning(table.c.id), [
                {"forge": "github", "full_name": f"bench/repo-{index}", "private": False,
                 "clone_url": f"https://example.invalid/bench/repo-{index}.git",
                 "webhook_secret": "bench", "default_branch": "main"}
                for index in range(1, REPOS)]).scalars().all()
            each, extra = divmod(BUILDS - OWN_BUILDS, REPOS - 1)
            for position, repo_id in enumerate(ids):
                add_builds(connection, repo_id, 1, each + (1 if position < extra else 0))
    engine.dispose()


def p95s(stack: Stack, path: str) -> list[float]:
    """Per round, the 95th percentile in ms of ``REQUESTS`` GETs one after another."""
    url = stack.base + path
    rounds = []
    for _ in range(floors.ROUNDS):
        times = []
        for _ in range(REQUESTS):
            began = time.perf_counter()
            response = stack.http.get(url, timeout=30)
            times.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise BenchError(f"GET {path} answered {response.status_code}")
        rounds.append(sorted(times)[int(len(times) * 0.95) - 1])
    return rounds


def measure_all(stack: Stack, number: int, breakdown: list[str] | None = None
                ) -> dict[str, list[float]]:
    """Every page's rounds, a warm-up GET of each first; with ``breakdown``, each page's
    CPU per request is added to it."""
    paths = {name: path.format(number=number) for name, path in PAGES.items()}
    rounds = {}
    for name, path in paths.items():
        stack.http.get(stack.base + path, timeout=30)
        meter = CpuMeter(stack.processes.sessions())
        rounds[name] = p95s(stack, path)
        if breakdown is not None:
            breakdown.append(f"{name}, {BUILDS:,} builds: "
                             + describe(meter.spent(), floors.ROUNDS * REQUESTS, "request"))
    return rounds


def measure(ctx: Context, result: Result) -> None:
    """10 builds measured, then 100,000 added and measured again."""
    stack = ctx.stack("pages")
    seed(stack, 1, SMALL, others=False)
    small = measure_all(stack, SMALL // 2)
    began = time.perf_counter()
    seed(stack, SMALL + 1, OWN_BUILDS, others=True)
    seeded = time.perf_counter() - began
    result.breakdown.append(f"seeding {BUILDS:,} builds, jobs and steps took {seeded:.1f} s "
                            "(untimed)")
    meter = CpuMeter(stack.processes.sessions())
    time.sleep(IDLE_SECONDS)
    idle = {name: seconds / IDLE_SECONDS * 100 for name, seconds in meter.spent().items()}
    result.breakdown.append(f"idle, {BUILDS:,} builds, no request: % of a CPU: " + ", ".join(
        f"{name} {share:.0f}" for name, share in sorted(idle.items(), key=lambda kv: -kv[1])))
    large = measure_all(stack, OWN_BUILDS // 2, result.breakdown)
    stack.processes.check()
    for name in PAGES:
        result.figures += [
            Figure(f"{name}: p95, {SMALL} builds", "ms", small[name], digits=1),
            Figure(f"{name}: p95, {REPOS:,} repos / {BUILDS:,} builds", "ms", large[name],
                   Target("<=", P95_TARGET_MS), digits=1),
            Figure(f"{name}: p95, {BUILDS:,} builds vs {SMALL} builds", "ms", large[name],
                   Target("<=", SLOWDOWN_TARGET, of_floor=True), median(small[name]),
                   digits=1),
        ]


METHOD = f"""\
- **pages**: a stack without runners. Rows are inserted with bulk SQL into the tables
  of `ci/store/models.py` (a passed build, its one job and its one step each). First
  {SMALL} builds of `{REPO}`: one client sends {REQUESTS} GETs of each page one after
  another (after one untimed GET), {floors.ROUNDS} rounds; a round's figure is the 95th
  percentile of its times. Pages: `{PAGES['repository page']}`, the JSON of the build
  in the middle of the history (`/api/repos/{REPO}/builds/N`), and
  `{PAGES['builds list']}` (its first page). Then {REPOS - 1:,} more repositories and
  builds up to {BUILDS:,} in all ({OWN_BUILDS:,} of them `{REPO}`'s, the rest spread over
  the others) are added and the same rounds repeated. The "vs" row holds the large
  database's p95 against the small one's median p95 as its floor. For the breakdown, the
  stack's CPU is also read over {IDLE_SECONDS} s without any request.
"""
