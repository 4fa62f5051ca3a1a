"""A job printing 20 MB, against the same job with its output sent to ``/dev/null``: what
carrying a big log (runner -> Redis -> recorder -> archive) adds to a build, and whether
the build page of such a job stays usable (its size and time are reported).
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.bench import build_page, floors
from tests.bench.common import IMAGE
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter, describe
from tests.bench.table import Figure, Target, median

MEGABYTES = 20
TARGET = 1.2
LINE = 100
WRITER = (f"import sys; sys.stdout.write(('x' * {LINE - 1} + chr(10)) * "
          f"{MEGABYTES * 2**20 // LINE})")


def config(redirect: str) -> str:
    """A pipeline whose one step writes :data:`MEGABYTES` MB of 100-byte lines."""
    return f'image: {IMAGE}\nsteps:\n  - python3 -c "{WRITER}"{redirect}\n'


def newest_log(data_dir: Path) -> int:
    """Bytes of the newest archived log in a stack's data directory (JSON lines)."""
    logs = sorted((data_dir / "logs").glob("*/*.jsonl"), key=lambda path: path.stat().st_mtime)
    return logs[-1].stat().st_size if logs else 0


def measure(ctx: Context, result: Result) -> None:
    """Rounds alternating the /dev/null job and the printing one; then the page."""
    stack = ctx.stack("runners", runners=2)
    quiet, loud, notes = [], [], []
    number = 0
    for _ in range(floors.ROUNDS):
        for redirect, times in ((" > /dev/null", quiet), ("", loud)):
            meter = CpuMeter(stack.processes.sessions())
            number, sent, _answered = stack.push({".slipway.yml": config(redirect)})
            stack.wait_passed(number)
            times.append((time.time() - sent) * 1000)
            stack.wait_quiet()
            if not redirect:
                notes.append(describe(meter.spent(), 1, "20 MB job") + "; log kept: "
                             f"{newest_log(stack.data_dir) / 2**20:.1f} MiB")
    sizes, page_times = build_page.page_rounds(stack, number)
    stack.processes.check()
    result.figures += [
        Figure(f"a job printing {MEGABYTES} MB: webhook -> passed", "ms", loud,
               Target("<=", TARGET, of_floor=True), median(quiet)),
        Figure(f"build page of the {MEGABYTES} MB job: size on the wire (gzip)", "KB", sizes,
               digits=1),
        Figure(f"build page of the {MEGABYTES} MB job: time", "ms", page_times),
    ]
    result.breakdown += [f"{MEGABYTES} MB job, round {index + 1}: {note}"
                         for index, note in enumerate(notes)]


METHOD = f"""\
- **big output**: on the runners' stack, {floors.ROUNDS} rounds of two builds: one whose
  step writes {MEGABYTES} MiB of {LINE}-byte lines to `/dev/null` (the floor), then the
  same step printing them. Figure: webhook sent -> seen passed (polled every 10 ms), as
  for end to end. Then the build page of the last printing job is fetched as in **build
  page** and its size and time reported (no target: it must stay usable, which these
  numbers let a reader judge). Breakdown: CPU of the stack's processes over each
  printing build.
"""
