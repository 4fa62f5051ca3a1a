"""Push to green: a webhook for a new commit of the trivial repository until the API says
the build passed, against the same tests run by hand (the build floor, one at a time).

The build JSON's timestamps (written from the runner's events) split each build into legs,
so a miss names the leg that grew.
"""

from __future__ import annotations

import statistics
import time

from tests.bench import floors
from tests.bench.common import epoch
from tests.bench.context import Context, Result
from tests.bench.table import Figure, Target, median

BUILDS = 5
TARGET = 1.0
RUNNERS = 2
LEGS = ("webhook -> 202", "202 -> job started", "job started -> step started (checkout, "
        "container)", "the pytest step", "step finished -> job finished",
        "job finished -> seen passed")


def legs(build: dict, sent: float, answered: float, seen: float) -> list[float]:
    """Seconds of each of :data:`LEGS` for one build."""
    job = build["jobs"][0]
    step = job["steps"][0]
    marks = [sent, answered, epoch(job["started_at"]), epoch(step["started_at"]),
             epoch(step["finished_at"]), epoch(job["finished_at"]), seen]
    return [later - earlier for earlier, later in zip(marks, marks[1:])]


def measure(ctx: Context, result: Result) -> None:
    """A warm-up build (it fills the runner's mirror cache), then :data:`BUILDS` timed."""
    floors.builds(ctx)  # the floor's warm-up, and its own figures, come first
    stack = ctx.stack("runners", runners=RUNNERS)
    stack.wait_passed(stack.push()[0])
    stack.wait_quiet()
    totals, split, by_hand, clones = [], [], [], []
    for _ in range(BUILDS):  # a build by hand, then one of Slipway's
        seconds, clone = floors.alone(ctx)
        by_hand.append(seconds * 1000)
        clones.append(clone * 1000)
        number, sent, answered = stack.push()
        build = stack.wait_passed(number)
        seen = time.time()
        totals.append((seen - sent) * 1000)
        split.append(legs(build, sent, answered, seen))
        stack.wait_quiet()
    stack.processes.check()
    result.figures.append(Figure("end to end: webhook sent -> build seen passed", "ms", totals,
                                 Target("<=", TARGET, of_floor=True), median(by_hand)))
    medians = [statistics.median(build[index] for build in split) * 1000
               for index in range(len(LEGS))]
    result.breakdown += [
        "end to end, median of each leg (client clock, then the build JSON's timestamps): "
        + ", ".join(f"{leg} {value:.0f} ms" for leg, value in zip(LEGS, medians)),
        "the floor's builds by hand, one before each of these: "
        + ", ".join(f"{value:.0f}" for value in by_hand) + f" ms; median git clone "
        f"{median(clones):.0f} ms, docker run pytest {median(by_hand) - median(clones):.0f} ms",
    ]


METHOD = f"""\
- **end to end**: a stack with the Procfile's worker (`SLIPWAY_RUNNERS={RUNNERS}`). One
  untimed warm-up build (it fills the runner's mirror cache), then {BUILDS} times:
  commit to the repository, send its push webhook, poll
  `GET /api/repos/bench/tiny/builds/N` every 10 ms until it says `passed`, wait until
  the runner removed its containers and started its spare for the next job (the runner
  is idle again). Each build follows one by hand, as the build floor's "one at a time"
  (`git clone` + `docker run ... pytest`). Figure: sent -> seen passed; floor: the median
  of those builds by hand. The breakdown's legs come from the client's clock (webhook ->
  202, seen passed) and from the build JSON (job and step `started_at`/`finished_at`).
"""
