"""Job logs: the live stream in Redis while a job runs, the archive once it ends.

The archive is a JSON-lines file per job that keeps each entry's stream id, so a
client that resumes with ``Last-Event-ID`` gets the same ids from either source.
Those are the current attempt's; when a rerun or a retry starts the next attempt, the
log of the one it replaces is kept in a file of that attempt's own
(:func:`keep_attempt_log`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from redis import Redis

from ci.pipeline import keys
from ci.pipeline.logformat import LogEntry
from ci.store.models import Job


def archive_path(log_dir: Path, job_id: int) -> Path:
    return log_dir / f"{job_id // 1000:04d}" / f"{job_id}.jsonl"


def attempt_path(log_dir: Path, job_id: int, attempt: int) -> Path:
    """Where the log of an attempt that a later one replaced is kept."""
    return log_dir / f"{job_id // 1000:04d}" / f"{job_id}.attempt-{attempt}.jsonl"


def read_live(redis: Redis, job_id: int, after: str = "0-0") -> list[LogEntry]:
    """Every entry of the live stream after ``after`` (exclusive)."""
    rows = redis.xrange(keys.log_stream(job_id), min=f"({after}" if after != "0-0" else "-")
    return [LogEntry.from_fields(entry_id, fields) for entry_id, fields in rows]


def wait_live(redis: Redis, job_id: int, after: str, block_ms: int) -> list[LogEntry]:
    """Block up to ``block_ms`` for entries after ``after``; empty list on timeout."""
    result = redis.xread({keys.log_stream(job_id): after}, block=block_ms)
    return [LogEntry.from_fields(entry_id, fields)
            for _stream, rows in result or [] for entry_id, fields in rows]


def read_archive(log_dir: Path, job_id: int, after: str = "0-0") -> list[LogEntry] | None:
    """Entries of an archived log after ``after``; None when the job has no archive."""
    entries = _read(archive_path(log_dir, job_id))
    return None if entries is None else [entry for entry in entries if _after(entry.id, after)]


def read_attempt(log_dir: Path, job_id: int, attempt: int) -> list[LogEntry] | None:
    """The log of an earlier attempt of the job; None when none was kept for it."""
    return _read(attempt_path(log_dir, job_id, attempt))


def archive(redis: Redis, log_dir: Path, job_id: int) -> Path:
    """Copy the job's live stream to its archive file.

    The stream is then left to expire, so clients following it can finish.
    """
    path = _write(archive_path(log_dir, job_id), read_live(redis, job_id))
    redis.expire(keys.log_stream(job_id), keys.LOG_STREAM_TTL_SECONDS)
    return path


def keep_attempt_log(redis: Redis, log_dir: Path, job_id: int, attempt: int,
                 archived: bool) -> Path:
    """Copy the log of the job's current ``attempt`` to that attempt's own file, before the
    next attempt starts and takes over the archive file and the live stream.

    Args:
        archived: the database says the attempt's log is archived (see :func:`read_all`);
            else (its runner was lost, or it never ran) what the live stream holds is kept.

    Only copied: the caller removes the current log (:func:`discard`) once the next
    attempt is committed, so a failure before that leaves the log where it was.
    """
    entries = read_archive(log_dir, job_id) if archived else None
    return _write(attempt_path(log_dir, job_id, attempt),
                  entries if entries is not None else read_live(redis, job_id))


def discard(redis: Redis, log_dir: Path, job_id: int) -> None:
    """Forget a job's log (live and archived) before the job runs again."""
    redis.delete(keys.log_stream(job_id))
    archive_path(log_dir, job_id).unlink(missing_ok=True)


def log_paths(log_dir: Path, job_id: int, attempts: int) -> list[Path]:
    """Every file a job's log may be in: the archive of its current attempt, those kept of
    the ``attempts - 1`` before it, and the temporary files of a write that was cut short."""
    logs = [archive_path(log_dir, job_id)]
    logs += [attempt_path(log_dir, job_id, number) for number in range(1, attempts)]
    return [path for log in logs for path in (log, log.with_suffix(".tmp"))]


def logs_size(log_dir: Path, job_id: int, attempts: int) -> int:
    """How many bytes the job's log files hold (what removing them would free)."""
    total = 0
    for path in log_paths(log_dir, job_id, attempts):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass
    return total


def remove_logs(log_dir: Path, job_id: int, attempts: int) -> int:
    """Remove the log files of a job's every attempt, for retention; returns the bytes freed.

    Idempotent, and each file counts once: a file already gone (removed by a pruner that
    died before recording it, or by another pruning at the same moment) frees nothing.
    """
    freed = 0
    for path in log_paths(log_dir, job_id, attempts):
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed


def read_all(redis: Redis, log_dir: Path, job: Job, after: str = "0-0") -> list[LogEntry]:
    """The job's log after ``after``: from the archive once the database says the job's
    log is archived, else live.

    Only the database can say: an archive file may be another job's of the same id, left
    by a database restored from a backup or started afresh in the same data folder.
    """
    archived = read_archive(log_dir, job.id, after) if job.log_archived else None
    return archived if archived is not None else read_live(redis, job.id, after)


def _read(path: Path) -> list[LogEntry] | None:
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return None
    return [LogEntry(**json.loads(line)) for line in lines if line]


def _write(path: Path, entries: list[LogEntry]) -> Path:
    """Write a log file through a temporary one renamed into place, so readers never see
    half a log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry.__dict__) + "\n")
    os.replace(tmp, path)
    return path


def _after(entry_id: str, after: str) -> bool:
    def parse(value: str) -> tuple[int, int]:
        ms, _, seq = value.partition("-")
        return int(ms), int(seq or 0)

    return parse(entry_id) > parse(after)
