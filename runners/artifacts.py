"""Keeping a job's artifacts: the files its pipeline names, read out of its container.

After the steps, the executor streams a tar of the workspace, or of the deepest directory
holding every match (:meth:`~ci.pipeline.artifacts.Matcher.root`). Docker archives a link
as a link and never follows it, and this reads the tar as a stream, never unpacking it:
only regular files whose path a pattern matches are kept, so no link, hard link or device
leads anywhere, and nothing is written into the workspace on the host. Files are kept in
the order the archive holds them while they fit the job's limit; one that does not is
left out, and the log says so, without failing the job.

Where kept files go is a :class:`Destination`: on a runner, Redis (:class:`RedisDestination`,
a tar cut in chunks, then the ``job.artifacts`` event that tells the recorder); for
``slipway exec --artifacts DIR``, a folder (:class:`FolderDestination`).
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from redis import Redis

from ci.pipeline import keys
from ci.pipeline.artifacts import (MAX_FILES, Artifacts, Hashed, Matcher, human_size,
                                   path_problem, shown)
from runners.executor import Executor

#: Where the job's workspace is inside its containers.
WORKSPACE = "/workspace"
#: A job reads at most this many times its limit of the workspace's archive (and at least
#: :data:`MIN_SCANNED_BYTES`) before it stops looking: a build can make a file of a
#: terabyte that takes no disk (a sparse file), and its archive would take hours to read.
SCAN_FACTOR = 20
MIN_SCANNED_BYTES = 1024 ** 3
#: How much of the archive is read at once.
_READ_BYTES = 1024 * 1024
#: How many files a log line names before it counts the rest.
NAMED_IN_LOG = 20


@dataclass(frozen=True)
class KeptFile:
    """One file kept: its workspace path, its size and the sha256 of its bytes."""

    path: str
    size: int
    sha256: str


@dataclass
class Collection:
    """What collecting found, for the log."""

    kept: list[KeptFile] = field(default_factory=list)
    #: Matched files left out for the limit, with their sizes.
    over_limit: list[tuple[str, int]] = field(default_factory=list)
    #: Why matched paths were left out for what they are (a link, a device) or their names.
    refused: list[str] = field(default_factory=list)
    #: The patterns that matched nothing.
    unmatched: list[str] = field(default_factory=list)
    #: How much of the archive was read when it was found bigger than a job may make the
    #: runner read; None when it was read to its end.
    cut_at: int | None = None

    @property
    def kept_bytes(self) -> int:
        return sum(file.size for file in self.kept)


class Destination(Protocol):
    """Where kept files go; used by one job from one thread."""

    def add(self, path: str, size: int, data: BinaryIO) -> None:
        """Take one file: exactly ``size`` bytes read from ``data``."""

    def finish(self, files: list[KeptFile]) -> dict[str, Any] | None:
        """Every file was added; returns the data of the ``job.artifacts`` event to report,
        or None when there is nothing to report."""

    def discard(self) -> None:
        """Collecting failed part way: drop what was added."""


class ScanLimit(Exception):
    """The archive went on past what a job may make the runner read."""


class _Archive:
    """The executor's chunks read as a stream, counted; past ``limit`` bytes, reading
    raises :class:`ScanLimit`, except while a kept file is copied (:attr:`copying`)."""

    def __init__(self, chunks: Iterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._offset = 0
        self.limit = limit
        self.read_bytes = 0
        #: A kept file is being copied: its bytes are bounded by the job's limit already,
        #: and stopping in the middle of one would leave the destination half a file.
        self.copying = False

    def read(self, size: int = -1) -> bytes:
        if self.read_bytes > self.limit and not self.copying:
            raise ScanLimit()
        parts, wanted = [], size
        while wanted != 0:
            if self._offset >= len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._offset = chunk, 0
                continue
            end = len(self._chunk) if wanted < 0 else min(len(self._chunk),
                                                          self._offset + wanted)
            parts.append(self._chunk[self._offset:end])
            wanted -= (end - self._offset) if wanted > 0 else 0
            self._offset = end
        data = b"".join(parts)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        """Stop the stream, so that the engine's connection is let go at once."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def collect(executor: Executor, artifacts: Artifacts, limit: int,
            destination: Destination) -> Collection:
    """Read the files ``artifacts`` names out of the job and hand each to ``destination``.

    Raises:
        runners.executor.ExecutorError: the executor could not read the workspace.
        tarfile.TarError: the archive it streamed is not a valid tar.
    """
    matcher = Matcher(artifacts.paths)
    root = matcher.root()
    inside = posixpath.join(WORKSPACE, root) if root else WORKSPACE
    found = Collection()
    matched: set[int] = set()
    chunks = executor.stream_archive(inside)
    if chunks is not None:
        archive = _Archive(chunks, max(limit * SCAN_FACTOR, MIN_SCANNED_BYTES))
        try:
            _read(archive, posixpath.dirname(inside), matcher, limit, destination, found,
                  matched)
        except ScanLimit:
            found.cut_at = archive.read_bytes
        finally:
            archive.close()
    found.unmatched = [pattern for index, pattern in enumerate(matcher.patterns)
                       if index not in matched]
    return found


def _read(archive: _Archive, base: str, matcher: Matcher, limit: int,
          destination: Destination, found: Collection, matched: set[int]) -> None:
    """Keep the matching regular files of the archive, whose names are relative to ``base``."""
    with tarfile.open(fileobj=archive, mode="r|", bufsize=_READ_BYTES) as tar:
        for member in tar:
            path = _workspace_path(base, member.name)
            hits = matcher.matching(path) if path is not None else []
            if not hits or member.isdir():
                continue
            matched.update(hits)
            if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                found.refused.append(f"`{shown(path)}` is a link or a special file; "
                                     "only regular files are kept")
            elif (problem := path_problem(path)) is not None:
                found.refused.append(f"{problem}; it was not kept")
            elif len(found.kept) >= MAX_FILES:
                found.refused.append(f"`{shown(path)}` is past the {MAX_FILES} files a job "
                                     "may keep")
            elif found.kept_bytes + member.size > limit:
                found.over_limit.append((path, member.size))
            else:
                hashed = Hashed(tar.extractfile(member))
                archive.copying = True
                destination.add(path, member.size, hashed)
                archive.copying = False
                found.kept.append(KeptFile(path, member.size, hashed.sha256))


def _workspace_path(base: str, name: str) -> str | None:
    """The workspace path of an archive member named ``name`` relative to ``base``, or None
    when it is not in the workspace. ``..`` is left in for :func:`path_problem` to refuse."""
    full = posixpath.join(base, name.rstrip("/"))
    if not full.startswith(WORKSPACE + "/"):
        return None
    return full[len(WORKSPACE) + 1:]


def report(found: Collection, limit: int) -> list[str]:
    """The log's lines about what was kept and what was not, and why."""
    lines = []
    kept = f"kept {_files(len(found.kept))} ({human_size(found.kept_bytes)})"
    if found.kept:
        names = ", ".join(f"{shown(file.path)} ({human_size(file.size)})"
                          for file in found.kept[:NAMED_IN_LOG])
        more = len(found.kept) - NAMED_IN_LOG
        lines.append(f"artifacts: {kept}: {names}" + (f" and {more} more" if more > 0 else ""))
    for path, size in found.over_limit[:NAMED_IN_LOG]:
        lines.append(f"artifacts: {kept}; {shown(path)} ({human_size(size)}) is over the "
                     f"job's artifact limit of {human_size(limit)} and was not kept")
    if len(found.over_limit) > NAMED_IN_LOG:
        lines.append(f"artifacts: {len(found.over_limit) - NAMED_IN_LOG} more files were over "
                     "the limit and were not kept")
    lines += [f"artifacts: {refusal}" for refusal in found.refused[:NAMED_IN_LOG]]
    lines += [f"artifacts: `{shown(pattern)}` matched no file" for pattern in found.unmatched]
    if found.cut_at is not None:
        lines.append(f"artifacts: stopped reading the workspace after "
                     f"{human_size(found.cut_at)}; files after that were not looked at")
    return lines


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count} files"


class _ChunkWriter:
    """A write-only stream that appends what it gets to a Redis list, in chunks of
    :data:`~ci.pipeline.keys.ARTIFACT_CHUNK_BYTES`, so a runner never holds more than one."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis, self._key = redis, key
        self._buffer = bytearray()
        self.chunks = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= keys.ARTIFACT_CHUNK_BYTES:
            self._push(bytes(self._buffer[:keys.ARTIFACT_CHUNK_BYTES]))
            del self._buffer[:keys.ARTIFACT_CHUNK_BYTES]
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._push(bytes(self._buffer))
            self._buffer.clear()

    def _push(self, chunk: bytes) -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._key, chunk)
            pipe.expire(self._key, keys.ARTIFACT_CHUNKS_TTL_SECONDS)
            pipe.execute()
        self.chunks += 1


class RedisDestination:
    """Kept files as one tar in the Redis list of the job's attempt
    (:func:`~ci.pipeline.keys.artifact_chunks`), for the recorder to store."""

    def __init__(self, redis: Redis, job_id: int, attempt: int) -> None:
        self._redis = redis
        self.key = keys.artifact_chunks(job_id, attempt)
        self._writer = _ChunkWriter(redis, self.key)
        self._tar: tarfile.TarFile | None = None

    def add(self, path: str, size: int, data: BinaryIO) -> None:
        if self._tar is None:
            self._redis.delete(self.key)  # what an earlier run of this attempt left, if any
            self._tar = tarfile.open(fileobj=self._writer, mode="w|",
                                     format=tarfile.PAX_FORMAT)
        info = tarfile.TarInfo(path)
        info.size, info.mode = size, 0o644
        self._tar.addfile(info, data)

    def finish(self, files: list[KeptFile]) -> dict[str, Any] | None:
        if self._tar is None:
            return None
        self._tar.close()
        self._writer.flush()
        return {"key": self.key, "chunks": self._writer.chunks,
                "files": [asdict(file) for file in files]}

    def discard(self) -> None:
        self._redis.delete(self.key)


class FolderDestination:
    """Kept files copied into a folder of this host, at their workspace paths
    (``slipway exec --artifacts DIR``); a file there by the same name is replaced."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, path: str, size: int, data: BinaryIO) -> None:
        target = self.folder.joinpath(*path.split("/"))
        # Never through a link: the folder is the user's, the names are the build's.
        if not target.parent.resolve().is_relative_to(self.folder.resolve()):
            raise OSError(f"{target.parent} leads out of {self.folder} through a link")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            while chunk := data.read(_READ_BYTES):
                handle.write(chunk)

    def finish(self, files: list[KeptFile]) -> dict[str, Any] | None:
        return None

    def discard(self) -> None:
        """What was copied stays: each file in the folder is whole."""
