"""The build page of a finished job with a 5,000-line log, as a browser fetches it
(gzip accepted): how many bytes cross the wire and how long the server takes.

:func:`page_rounds` is shared with the big-output section, which reports the same for a
job that printed 20 MB.
"""

from __future__ import annotations

import statistics

from tests.bench import floors
from tests.bench.client import timed_get
from tests.bench.common import IMAGE, REPO, BenchError
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter, describe
from tests.bench.stack import Stack
from tests.bench.table import Figure, Target

LINES = 5_000
REQUESTS = 20
SIZE_KB = 60
TIME_MS = 15
BROWSER = {"Accept-Encoding": "gzip, deflate", "Accept": "text/html"}
CONFIG = (
    f"image: {IMAGE}\n"
    "steps:\n"
    "  - name: lines\n"
    "    run: |\n"
    "      python3 -c '\n"
    f"      for n in range({LINES}):\n"
    "          print(f\"line {n}: collected 12 items; test_module.py::test_case PASSED\")\n"
    "      '\n"
)


def page_rounds(stack: Stack, number: int) -> tuple[list[float], list[float]]:
    """Per round: the median bytes on the wire (KB) and median ms of :data:`REQUESTS` GETs
    of build ``number``'s page, one after another, after an untimed one."""
    path = f"/{REPO}/builds/{number}"
    timed_get(stack.port, path, BROWSER)
    sizes, times = [], []
    for _ in range(floors.ROUNDS):
        answers = [timed_get(stack.port, path, BROWSER) for _ in range(REQUESTS)]
        if any(status != 200 for status, _size, _seconds in answers):
            raise BenchError(f"GET {path} answered {[answer[0] for answer in answers]}")
        sizes.append(statistics.median(size for _status, size, _s in answers) / 1024)
        times.append(statistics.median(seconds for _st, _si, seconds in answers) * 1000)
    return sizes, times


def measure(ctx: Context, result: Result) -> None:
    """A build of the trivial repository and one printing :data:`LINES` lines, then their
    pages' rounds: the first shows what a page costs without a long log."""
    stack = ctx.stack("runners", runners=2)
    short = stack.push()[0]
    stack.wait_passed(short)
    stack.wait_quiet()
    _sizes, base = page_rounds(stack, short)
    number = stack.push({".slipway.yml": CONFIG})[0]
    stack.wait_passed(number)
    stack.wait_quiet()
    meter = CpuMeter(stack.processes.sessions())
    sizes, times = page_rounds(stack, number)
    spent = meter.spent()
    result.figures += [
        Figure(f"build page, {LINES:,}-line log: size on the wire (gzip)", "KB", sizes,
               Target("<=", SIZE_KB), digits=1),
        Figure(f"build page, {LINES:,}-line log: time", "ms", times, Target("<=", TIME_MS),
               digits=1),
    ]
    result.breakdown += [
        f"build page, {LINES:,} lines: " + describe(spent, floors.ROUNDS * REQUESTS, "request"),
        f"the page of a build whose log is a few lines takes {statistics.median(base):.1f} ms; "
        f"the {LINES:,} lines add {statistics.median(times) - statistics.median(base):.1f} ms "
        f"({(statistics.median(times) - statistics.median(base)) * 1000 / LINES:.2f} µs a line)",
    ]


METHOD = f"""\
- **build page**: on the runners' stack, a build of the trivial repository (for the
  breakdown: the page without a long log), then one build whose step prints {LINES:,} lines of
  about 60 characters; once it passed and its log is archived, {floors.ROUNDS} rounds of
  {REQUESTS} GETs of `/{REPO}/builds/N` one after another (after an untimed one), each
  on a connection of its own with `Accept-Encoding: gzip, deflate`, no `If-None-Match`.
  Size = bytes of the body as sent (compressed, chunk framing included); time = from
  connecting until the server closed. A round's figures are the medians of its GETs.
"""
