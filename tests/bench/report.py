"""The page ``make bench`` writes to docs/benchmarks.md: the machine, the one table, where
the time goes for every target missed, and how each figure is measured."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.common import IMAGE, REPO, run
from tests.bench.context import Result
from tests.bench.table import render


def machine_facts() -> list[str]:
    """What the numbers depend on: the CPUs, memory and versions of the parts measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    memory = next((f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                   for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), "unknown")
    return [
        f"CPUs: {os.cpu_count()} ({model})",
        f"memory: {memory}",
        f"system: {platform.system()} {platform.release()}",
        f"Python: {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"Docker engine: {run('docker', 'version', '--format', '{{.Server.Version}}')}",
        f"Redis: {run('redis-server', '--version').split()[2].removeprefix('v=')}",
        f"git: {run('git', '--version').removeprefix('git version ')}",
    ]


def results_text(results: list[Result]) -> str:
    """The table, the load average before each section, and any section that failed."""
    table = render([figure for result in results for figure in result.figures])
    loads = ", ".join(f"{result.section} {result.load:.2f}" for result in results)
    failed = [f"- **{result.section}** could not be measured: {result.error}"
              for result in results if result.error]
    text = f"{table}\n\n1-minute load average before each section: {loads}."
    return text + ("\n\n" + "\n".join(failed) if failed else "")


def where_the_time_goes(results: list[Result]) -> str:
    """For each section with a target missed: its figures missed and its breakdown."""
    parts = []
    for result in results:
        missed = [figure.name for figure in result.figures if figure.verdict == "MISS"]
        if missed or result.error:
            lines = [f"- missed: {name}" for name in missed] + [f"- {line}" for line in
                                                               result.breakdown]
            parts.append(f"### {result.section}\n\n" + "\n".join(lines))
    return "\n\n".join(parts) or "Every target is met."


def preamble(processes: dict[str, str]) -> str:
    """What every section's stack is made of."""
    commands = "\n".join(f"  - {name}: `{command}`" for name, command in processes.items())
    return f"""\
## How each figure is measured

`make bench` runs `.venv/bin/python -m tests.bench`; `python -m tests.bench --only
badge,pages` runs only the sections named (and the floors they are held against) and
prints the table without writing this page. Each figure is the median of its rounds,
every round shown; "worst" marks a figure judged by its worst round (a maximum, a count
of items lost). The 1-minute load average (`/proc/loadavg`) is taken before each section:
the machine may be shared, and other work slows every number. CPU breakdowns come from
`/proc/<pid>/stat` of each process session the bench started (user + system time, children
included), the bench's own `os.times()` (`client`), and `/proc/stat` for the rest of the
machine (`elsewhere`: PostgreSQL, the Docker engine, containers, other tenants).

Everything measured is started by the bench, on loopback, in a temporary directory:
its own `redis-server` (no persistence) on a free port, a fresh data directory
(`slipway db upgrade`), a git repository with one passing test and a `.slipway.yml`
(`image: {IMAGE}`, one step `python3 -m pytest -q`) registered with `slipway repo add
{REPO}`, and the Procfile's processes (without `worker` where builds must stay queued),
with `PORT` a free port and the web server bound to 127.0.0.1; one such stack runs at a
time. No `SLIPWAY_*` variable is passed on from the caller, so gunicorn writes no access
log.

{commands}
"""


def page(results: list[Result], methods: list[str], processes: dict[str, str]) -> str:
    """The whole of docs/benchmarks.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = "\n".join(f"- {fact}" for fact in machine_facts())
    return (f"# Benchmarks\n\nMeasured by `make bench` on {when}; running it again rewrites "
            f"this page.\n\n## Machine\n\n{machine}\n\n## Results\n\n{results_text(results)}"
            f"\n\n## Where the time goes\n\n{where_the_time_goes(results)}\n\n"
            f"{preamble(processes)}\n" + "".join(methods))
