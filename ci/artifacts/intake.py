"""The recorder's part of ``job.artifacts``: the files a runner kept, from Redis into the
artifact store, and their rows.

The tar comes from a runner that ran hostile code, so every member is checked before it
is recorded: a regular file, a plain relative path, named once by the event's manifest,
with the size and sha256 the manifest gives. A member that fails is logged and left out.

It takes three calls, because bytes must not move inside the transaction that applies
the event (SQLite would hold its one write lock meanwhile): :func:`receive` stores the
files before the event's turn is taken, :func:`record` writes their rows in the
transaction applying it, :func:`forget` removes the chunks once that is committed. Each
is idempotent: a redelivered event stores the same files again and replaces the rows.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile

from redis import Redis

from ci import store
from ci.artifacts.store import ArtifactError, ArtifactStore, artifact_store
from ci.pipeline import keys
from ci.pipeline.artifacts import MAX_FILES, Hashed, path_problem, shown
from ci.pipeline.spec import Event, EventType
from ci.pipeline.status import Status
from ci.settings import Settings
from ci.store import Session
from ci.store.artifacts import KeptFile
from ci.store.models import Job

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ChunksGone(Exception):
    """The Redis list of an event's files expired (or was removed) while it was read."""


class RedisChunks(io.RawIOBase):
    """The chunks of a Redis list read as one stream, one chunk in memory at a time."""

    def __init__(self, redis: Redis, key: str, count: int) -> None:
        super().__init__()
        self._redis, self._key, self._count = redis, key, count
        self._next = 0
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:
        while not self._buffer:
            if self._next >= self._count:
                return 0
            chunk = self._redis.lindex(self._key, self._next)
            if chunk is None:
                raise ChunksGone(self._key)
            self._buffer, self._next = memoryview(chunk), self._next + 1
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def receive(session: Session, redis: Redis, settings: Settings, event: Event,
            force: bool) -> list[KeptFile] | None:
    """Store the files of a ``job.artifacts`` event before its turn is taken, when it is
    the next event of its attempt (``force`` as the recorder takes turns).

    Returns:
        The files stored and verified, for :func:`record`; None when the event is of
        another type, is not the next one when looked at, or its chunks are gone.

    Raises:
        ValueError: the event's data is not a valid manifest (the recorder sets it aside).
    """
    if event.type != EventType.JOB_ARTIFACTS:
        return None
    awaited = store.is_next_event(session, event.job_id, event.attempt, event.seq, force)
    session.rollback()  # no transaction stays open while files are written
    return _stored(redis, settings, event) if awaited else None


def record(session: Session, redis: Redis, settings: Settings, job: Job, event: Event,
           kept: list[KeptFile] | None) -> None:
    """Make the files :func:`receive` stored the rows of the event's attempt, in the
    transaction that applies it.

    When :func:`receive` stored nothing (the event was not the next one yet when it looked:
    another recorder applied its predecessor since), the files are stored now. Nothing is
    recorded for a job that ended already (canceled while its runner sent the files), nor
    when the chunks are gone from Redis (a warning says so).
    """
    if (event.type != EventType.JOB_ARTIFACTS or job.attempt != event.attempt
            or Status(job.status).finished):
        return
    if kept is None:
        kept = _stored(redis, settings, event)
    if kept is None:
        log.warning("job %s attempt %s: its kept files are no longer in Redis (%s expired "
                    "before a recorder read it); none are recorded", event.job_id,
                    event.attempt, keys.artifact_chunks(event.job_id, event.attempt))
        return
    store.replace_artifacts(session, job.id, event.attempt, kept)


def forget(redis: Redis, event: Event) -> None:
    """Remove the chunks of a ``job.artifacts`` event once it was applied (or found applied)."""
    if event.type == EventType.JOB_ARTIFACTS:
        redis.delete(keys.artifact_chunks(event.job_id, event.attempt))


def _stored(redis: Redis, settings: Settings, event: Event) -> list[KeptFile] | None:
    """Store the event's files; the ones verified, or None when its chunks are gone."""
    manifest = _manifest(event)
    chunks = event.data.get("chunks")
    if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 0:
        raise ValueError(f"`chunks` must be a count, found {chunks!r}")
    if not manifest:
        return []
    key = keys.artifact_chunks(event.job_id, event.attempt)
    if redis.llen(key) != chunks:
        return None
    try:
        return _unpack(RedisChunks(redis, key, chunks), artifact_store(settings), event,
                       manifest)
    except ChunksGone:
        return None


def _manifest(event: Event) -> dict[str, KeptFile]:
    """The event's ``files`` by path, each checked; raises ValueError naming the first bad one."""
    key = keys.artifact_chunks(event.job_id, event.attempt)
    if event.data.get("key") != key:
        raise ValueError(f"`key` must be {key}, found {event.data.get('key')!r}")
    files = event.data.get("files")
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise ValueError(f"`files` must be a list of at most {MAX_FILES} files")
    manifest: dict[str, KeptFile] = {}
    for entry in files:
        path, size, sha256 = (entry.get(name) if isinstance(entry, dict) else None
                              for name in ("path", "size", "sha256"))
        if not isinstance(path, str) or (problem := path_problem(path)) is not None:
            raise ValueError(f"a kept file's path is refused: {problem if path else path!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"`{shown(path)}`: its size must be a count, found {size!r}")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValueError(f"`{shown(path)}`: its sha256 must be 64 hex digits")
        if path in manifest:
            raise ValueError(f"`{shown(path)}` is listed twice")
        manifest[path] = KeptFile(path, size, sha256)
    return manifest


def _unpack(stream: RedisChunks, files: ArtifactStore, event: Event,
            manifest: dict[str, KeptFile]) -> list[KeptFile]:
    """Store each member of the tar that the manifest names, as it names it."""
    job = f"job {event.job_id} attempt {event.attempt}"
    expected = dict(manifest)
    kept: list[KeptFile] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            listed = expected.pop(member.name, None)
            if listed is None or member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                log.warning("%s: refused `%s`: not a regular file the manifest lists once",
                            job, shown(member.name))
                continue
            if member.size != listed.size:
                log.warning("%s: refused `%s`: %d bytes, the manifest says %d", job,
                            shown(listed.path), member.size, listed.size)
                continue
            hashed = Hashed(tar.extractfile(member))
            try:
                files.put(event.job_id, event.attempt, listed.path, hashed)
            except ArtifactError as exc:
                log.warning("%s: refused: %s", job, exc)
                continue
            if hashed.size != listed.size or hashed.sha256 != listed.sha256:
                log.warning("%s: refused `%s`: its bytes do not match the manifest's sha256",
                            job, shown(listed.path))
                continue
            kept.append(listed)
    for path in expected:
        log.warning("%s: `%s` is in the manifest but not in the files sent", job, shown(path))
    return kept
