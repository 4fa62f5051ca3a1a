"""Slipway's benchmark, run by ``make bench`` (``.venv/bin/python -m tests.bench``).

It measures every path people hit — webhook ingest, badges, pages over a large history,
push to green, queued builds, live logs, big outputs, the build page — against a floor
measured in the same run: the same web server serving a trivial app, and the same tests
run by hand with ``git clone`` and ``docker run``. One module per section; the table, the
verdicts and docs/benchmarks.md are made by :mod:`tests.bench.__main__`.

Only :data:`ROOT` and :func:`procfile` are imported from here (by the tests), so this
file imports nothing heavy.
"""

from tests.bench.common import ROOT, procfile

__all__ = ["ROOT", "procfile"]
