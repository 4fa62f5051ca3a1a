"""Live log with 1,000 viewers of one running job: every viewer must get every line, soon.

The viewers are raw sockets held by this one process with a selector (a thread or a
library per viewer would cost the server's CPUs more than the server). The job prints the
host-comparable wall clock (containers share the host's clock), so a line's lag is its
arrival minus the time it carries.
"""

from __future__ import annotations

import html
import re
import statistics
import time

from tests.bench import floors
from tests.bench.client import Viewer, follow
from tests.bench.common import IMAGE, REPO, BenchError
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter, describe, session_rss
from tests.bench.stack import Stack
from tests.bench.table import Figure, Target

VIEWERS = 1_000
TICKS = 20
TICK_SECONDS = 0.25
#: The step waits this long before its first line, so that every viewer is connected.
QUIET_SECONDS = 4
LAG_MEDIAN_MS = 50
LAG_MAX_MS = 250
FOLLOW_SECONDS = 120
TICKER_CONFIG = (
    f"image: {IMAGE}\n"
    "steps:\n"
    "  - name: ticker\n"
    "    run: |\n"
    "      python3 -u -c '\n"
    "      import time\n"
    f"      time.sleep({QUIET_SECONDS})\n"
    f"      for _ in range({TICKS}):\n"
    "          print(time.time(), flush=True)\n"
    f"          time.sleep({TICK_SECONDS})\n"
    "      '\n"
)
TAG = re.compile(r"<[^>]*>")
TIMESTAMP = re.compile(r"\d{9,}\.\d+")


def line_lags(viewer: Viewer) -> list[tuple[float, float]]:
    """(printed, lag) of each line a viewer got: when its last piece arrived minus the time
    it carries. A chunk may hold several lines or part of one, so the text is reassembled
    before it is split; the html is escaped text, possibly inside spans."""
    lags, pending = [], ""
    for arrived, fragment in viewer.outs:
        pending += html.unescape(TAG.sub("", fragment))
        *lines, pending = pending.split("\n")
        lags += [(float(line), arrived - float(line)) for line in lines
                 if TIMESTAMP.fullmatch(line.strip())]
    return lags


def web_rss(stack: Stack) -> float:
    """MiB resident in the gunicorn workers (not the master) of the stack's web."""
    found = session_rss(stack.processes.sessions()["web"], "gunicorn")
    pids = {pid for pid, _parent, _rss in found}
    workers = [rss for _pid, parent, rss in found if parent in pids]
    return sum(workers) / 2**20


def one_round(stack: Stack, rss: list[float]) -> tuple[list[float], int, int]:
    """One job followed by every viewer: the lags of the lines printed once every viewer
    was connected (earlier ones come from the stream's history, not live), the lines
    missed, and how many viewers got every line."""
    number = stack.push({".slipway.yml": TICKER_CONFIG})[0]
    connected: list[float] = []

    def ready() -> None:
        connected.append(time.time())
        rss.append(web_rss(stack))

    viewers = follow(stack.port, f"/{REPO}/builds/{number}/jobs/1/events", VIEWERS,
                     FOLLOW_SECONDS, ready)
    stack.wait_passed(number)
    per_viewer = [line_lags(viewer) for viewer in viewers]
    cutoff = connected[0] if connected else float("inf")
    live = [lag for lags in per_viewer for printed, lag in lags if printed > cutoff]
    if not live:
        raise BenchError("no line was printed after every viewer was connected; raise "
                         "QUIET_SECONDS")
    missed = sum(TICKS - len(lags) for lags in per_viewer)
    complete = sum(len(lags) == TICKS for lags in per_viewer)
    return live, missed, complete


def measure(ctx: Context, result: Result) -> None:
    """Rounds of one ticker job, each followed by every viewer from before it prints."""
    stack = ctx.stack("runners", runners=2)
    medians, maxima, missed, rss, complete = [], [], [], [], []
    meter = CpuMeter(stack.processes.sessions())
    for _ in range(floors.ROUNDS):
        lags, lost, whole = one_round(stack, rss)
        complete.append(whole)
        medians.append(statistics.median(lags) * 1000)
        maxima.append(max(lags) * 1000)
        missed.append(lost)
        stack.wait_quiet()
    spent = meter.spent()
    stack.processes.check()
    errors = stack.processes.errors("web")
    if errors:
        result.breakdown.append("live log: the web server's log holds " + ", ".join(
            f"{count} x {name}" for name, count in errors.most_common()) + "; each stream cut "
            "short is a viewer that misses lines")
    result.breakdown += [f"live log, round {index + 1}: {count} of {VIEWERS:,} viewers got "
                         "every line" for index, count in enumerate(complete)]
    result.figures += [
        Figure(f"live log, {VIEWERS:,} viewers: lines missed (all viewers)", "lines", missed,
               Target("<=", 0), worst=True),
        Figure(f"live log, {VIEWERS:,} viewers: lag, median of all lines", "ms", medians,
               Target("<=", LAG_MEDIAN_MS), digits=1),
        Figure(f"live log, {VIEWERS:,} viewers: lag, max of all lines", "ms", maxima,
               Target("<=", LAG_MAX_MS), worst=True, digits=1),
        Figure(f"live log, {VIEWERS:,} viewers: web workers' RSS (sum)", "MiB", rss,
               digits=1),
    ]
    delivered = floors.ROUNDS * VIEWERS * TICKS
    result.breakdown.append("live log: " + describe(spent, delivered, "line delivered"))


METHOD = f"""\
- **live log**: on the runners' stack, {floors.ROUNDS} rounds of one build whose step
  sleeps {QUIET_SECONDS} s, then prints `time.time()` every {TICK_SECONDS} s, {TICKS}
  times. As soon as the webhook is answered, {VIEWERS:,} viewers open
  `/{REPO}/builds/N/jobs/1/events` (the job's SSE stream), each on its own socket, all
  held by the bench's one thread with a selector (its open files limit raised to the
  hard limit with `resource.setrlimit`, which the stack's processes inherit). Lag counts
  only the lines printed after every viewer was connected (on a busy machine connecting
  1,000 may outlast the quiet seconds; earlier lines come from the stream's history);
  every line counts for the lines missed. A viewer whose stream the
  server closes before the job's `end` event misses the lines it did not get. Each
  `out` event's escaped HTML is turned back into text and reassembled into lines; lag =
  arrival of a line's last piece - the time it carries. A round's figures: the median and the max
  over all viewers' lines, and the lines missing (viewers x {TICKS} - lines received).
  RSS: the sum of the resident sizes (`rss` of `/proc/<pid>/stat` x the page size) of
  the gunicorn workers (the master left out) once every viewer is connected.
"""
