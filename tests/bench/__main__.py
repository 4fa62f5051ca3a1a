"""``python -m tests.bench [--only SECTION,...]``: run the sections, print the table, and
(on a full run) write docs/benchmarks.md.

A section that cannot measure is reported as such and the others still run: one broken
path must not hide the figures of the rest. The exit status says whether all measured.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from tests.bench import (badge, big_output, build_page, end_to_end, floors, ingest, live_log,
                         pages, queue_throughput, scaling)
from tests.bench.common import REPORT, ROOT, BenchError, load, procfile
from tests.bench.context import Context, Result
from tests.bench.report import page, results_text, where_the_time_goes

SECTIONS: dict[str, ModuleType] = {
    "floors": floors, "ingest": ingest, "badge": badge, "pages": pages,
    "end_to_end": end_to_end, "queue_throughput": queue_throughput, "live_log": live_log,
    "big_output": big_output, "build_page": build_page, "scaling": scaling,
}


def arguments() -> list[str]:
    """The sections to run, in the table's order."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated sections: "
                        + ", ".join(SECTIONS) + " (the table is printed, not written)")
    wanted = [name.strip() for name in parser.parse_args().only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"no section {', '.join(unknown)}; there are {', '.join(SECTIONS)}")
    return [name for name in SECTIONS if not wanted or name in wanted]


def open_files() -> None:
    """Raise the open files limit to the hard limit: the live-log section holds 1,000
    connections, and the processes the bench starts inherit the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_sections(names: list[str], ctx: Context) -> list[Result]:
    """Each section in turn, the load average before it printed and kept."""
    results = []
    for name in names:
        result = Result(name, load())
        print(f"{name}: load average {result.load:.2f}", flush=True)
        began = time.monotonic()
        try:
            SECTIONS[name].measure(ctx, result)
        except BenchError as error:
            result.error = str(error)
            ctx.close()
            print(f"{name}: could not measure: {error}", flush=True)
        print(f"{name}: {time.monotonic() - began:.0f} s", flush=True)
        results.append(result)
    return results


def main() -> int:
    """Run, print, write; 1 when a section could not measure."""
    names = arguments()
    open_files()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as temp:
        ctx = Context(Path(temp))
        try:
            results = run_sections(names, ctx)
        finally:
            ctx.close()
    print(results_text(results))
    print("\nWhere the time goes\n\n" + where_the_time_goes(results))
    if len(names) == len(SECTIONS):
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        methods = [SECTIONS[name].METHOD for name in names]
        REPORT.write_text(page(results, methods, procfile()))
        print(f"written to {REPORT.relative_to(ROOT)}")
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
