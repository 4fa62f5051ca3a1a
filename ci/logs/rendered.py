"""Finished jobs' logs, rendered once per process: an archived log never changes, and
turning thousands of coloured lines into HTML costs far more than the rest of a build page.

The key is the archive file itself (path, size, modification time) and the step names the
page adds, so a log archived again (a rerun's new attempt replaces the file) or removed
by retention is never served from the cache. Each web process keeps its own copies,
bounded by their lines in all: the least recently shown log goes first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from ci.logs import storage
from ci.logs.render import JobLog, job_log

#: How many lines of rendered logs one process keeps, in all (a 5,000-line log is about
#: 1 MB of HTML and objects).
MAX_LINES = 200_000

_Key = tuple[str, int, int, tuple[str, ...]]
_cache: OrderedDict[_Key, tuple[JobLog, str | None, int]] = OrderedDict()
_lines = 0
_lock = threading.Lock()


def archived_log(log_dir: Path, job_id: int,
                 planned: Sequence[str]) -> tuple[JobLog, str | None] | None:
    """The archived log of ``job_id`` as the page shows it, and the id of its last entry
    (None when it has none); None when there is no archive file. The caller knows from
    the database that the job's log is archived (``Job.log_archived``)."""
    path = storage.archive_path(log_dir, job_id)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns, tuple(planned))
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found[0], found[1]
    entries = storage.read_archive(log_dir, job_id)
    if entries is None:
        return None
    log = job_log(entries, planned)
    last = entries[-1].id if entries else None
    _keep(key, log, last)
    return log, last


def _keep(key: _Key, log: JobLog, last: str | None) -> None:
    global _lines
    lines = sum(len(section.lines) for section in log.sections)
    if lines > MAX_LINES:
        return
    with _lock:
        if key in _cache:
            return
        _cache[key] = (log, last, lines)
        _lines += lines
        while _lines > MAX_LINES:
            _old, (_log, _last, dropped) = _cache.popitem(last=False)
            _lines -= dropped
