"""Queued builds drained by one runner and by two, against the build floor's rates one
at a time and two at a time: what a runner adds around each job (dequeue, checkout,
containers, events, cleanup) shows as the gap to the floor.
"""

from __future__ import annotations

import statistics
import time

from tests.bench import floors
from tests.bench.client import send_concurrently
from tests.bench.common import BUILD_SECONDS, BenchError, epoch
from tests.bench.context import Context, Result
from tests.bench.stack import Stack
from tests.bench.table import Figure, Target, median

BUILDS = 20
POLL_SECONDS = 0.05
TARGETS = {1: 0.95, 2: 0.9}


def drain(stack: Stack, sha: str, label: str) -> tuple[float, list[dict]]:
    """Send :data:`BUILDS` webhooks at once; seconds from the first sent until the API lists
    every build passed, and the builds' JSON."""
    requests = floors.webhooks(stack.port, sha, label, BUILDS)
    began = time.time()
    statuses, _elapsed = send_concurrently(stack.port, requests, floors.CLIENTS)
    if statuses.count(202) != BUILDS:
        raise BenchError(f"webhooks answered {statuses}")
    deadline = time.monotonic() + BUILD_SECONDS
    while True:
        builds = stack.api(f"/builds?per_page={BUILDS}")["builds"]
        if all(build["status"] == "passed" for build in builds):
            break
        failed = [build for build in builds if build["status"] not in
                  ("queued", "running", "passed")]
        if failed or time.monotonic() > deadline:
            stack.processes.check()
            raise BenchError(f"queued builds did not all pass: {[b['status'] for b in builds]}")
        time.sleep(POLL_SECONDS)
    elapsed = time.time() - began
    return elapsed, [stack.api(f"/builds/{build['number']}") for build in builds]


def split(elapsed: float, builds: list[dict], runners: int) -> str:
    """Where a round's runner time went: jobs (their steps and the rest) and idle."""
    jobs = [build["jobs"][0] for build in builds]
    job = [epoch(j["finished_at"]) - epoch(j["started_at"]) for j in jobs]
    step = [epoch(j["steps"][0]["finished_at"]) - epoch(j["steps"][0]["started_at"])
            for j in jobs]
    idle = elapsed * runners - sum(job)
    return (f"job median {statistics.median(job) * 1000:.0f} ms, of it the step "
            f"{statistics.median(step) * 1000:.0f} ms; runner time outside jobs "
            f"{idle / BUILDS * 1000:.0f} ms per build")


def measure(ctx: Context, result: Result) -> None:
    """One runner, then two; each after a warm-up build."""
    floors.builds(ctx)  # the floor's warm-up, and its own figures, come first
    for runners, kind in ((1, "runner"), (2, "runners")):
        stack = ctx.stack(kind, runners=runners)
        stack.wait_passed(stack.push()[0])
        stack.wait_quiet()
        sha = stack.repo.head
        rates, notes, floor_rates = [], [], []
        for number in range(floors.ROUNDS):  # the floor's round, then ours
            floor_rates.append(runners / floors.timed_by_hand(ctx, runners))
            elapsed, builds = drain(stack, sha, f"queue {runners} {number}")
            rates.append(BUILDS / elapsed)
            notes.append(split(elapsed, builds, runners))
            stack.wait_quiet()
        stack.processes.check()
        result.figures.append(Figure(
            f"{BUILDS} queued builds, {runners} runner{'s' * (runners > 1)}", "builds/s",
            rates, Target(">=", TARGETS[runners], of_floor=True), median(floor_rates),
            digits=2))
        result.breakdown += [f"{runners} runner(s), round {index + 1}: {note}; the floor's "
                             f"round before it: {floor:.2f} builds/s"
                             for index, (note, floor) in enumerate(zip(notes, floor_rates))]


METHOD = f"""\
- **queued builds**: a stack whose Procfile worker runs `SLIPWAY_RUNNERS=1`, then one
  with 2. After an untimed warm-up build, {floors.ROUNDS} rounds: {BUILDS} push webhooks
  of the same commit (each its own delivery) sent at once ({floors.CLIENTS} connections),
  then `GET /api/repos/bench/tiny/builds?per_page={BUILDS}` polled every
  {POLL_SECONDS * 1000:.0f} ms until all {BUILDS} say `passed`. Rate = {BUILDS} / time
  from the first webhook to that moment. Floors, a round of them before each round:
  1 / the seconds of one by-hand build alone, and 2 / those of two started together
  (the build floor's); the ratio's floor is their median. Breakdown: job and step
  durations from the build JSON; "runner time outside jobs" = (elapsed x runners - sum
  of job durations) / builds.
"""
