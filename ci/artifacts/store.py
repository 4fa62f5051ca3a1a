"""Where the bytes of kept files live: the :class:`ArtifactStore` contract and the local store.

Rows (``ci.store.artifacts``) say which files an attempt of a job kept; a store holds their
bytes under (job id, attempt, path), nothing more. A file is written before its row, so
what a row names is there to read; a file without a row (its recorder died before the
commit) is never shown and goes with its job's other files. An S3-compatible store is one
more class implementing the protocol, picked in :func:`artifact_store`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from ci.pipeline.artifacts import path_problem
from ci.settings import Settings

#: Files being written are named so while they are incomplete, next to where they go.
PARTIAL_PREFIX = ".slipway-partial-"
_COPY_BUFFER = 1024 * 1024


class ArtifactError(ValueError):
    """A path or a file the store refuses; the message says which and why."""


class ArtifactStore(Protocol):
    """The bytes of kept files. Safe to use from several processes and hosts at once:
    writing one file twice leaves one whole copy, and readers never see half a file."""

    def put(self, job_id: int, attempt: int, path: str, data: BinaryIO) -> int:
        """Store ``data`` (read to its end) as file ``path`` of one attempt of a job,
        replacing any; returns its size.

        Raises:
            ArtifactError: ``path`` is not a plain relative path, or a file of the same
                attempt is in its way (``a`` kept as a file and as a directory).
        """

    def open(self, job_id: int, attempt: int, path: str) -> BinaryIO:
        """The stored file ``path`` of one attempt, for reading; the caller closes it.

        Raises:
            FileNotFoundError: the store holds no such file (removed, never written).
            ArtifactError: ``path`` is not a plain relative path.
        """

    def remove_job(self, job_id: int) -> int:
        """Remove the files of every attempt of a job; returns the bytes freed.
        Idempotent: a job without files frees 0."""


class LocalArtifactStore:
    """Files under ``root / <job id> / <attempt> / <path>`` on this host's disk (the web and
    the recorder must share it). See :class:`ArtifactStore`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, job_id: int, attempt: int, path: str, data: BinaryIO) -> int:
        target = self._file(job_id, attempt, path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ArtifactError(f"`{path}`: a kept file is in the way of its directory") from None
        fd, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                shutil.copyfileobj(data, handle, _COPY_BUFFER)
                handle.flush()
                os.fsync(handle.fileno())  # the row committed next must never outlive the bytes
                size = handle.tell()
            os.replace(partial, target)
        except IsADirectoryError:
            raise ArtifactError(f"`{path}`: a kept directory has the same name") from None
        finally:
            Path(partial).unlink(missing_ok=True)
        return size

    def open(self, job_id: int, attempt: int, path: str) -> BinaryIO:
        target = self._file(job_id, attempt, path)
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def remove_job(self, job_id: int) -> int:
        folder = self.root / str(job_id)
        freed = 0
        for directory, _folders, files in os.walk(folder):
            for name in files:
                try:
                    freed += os.lstat(os.path.join(directory, name)).st_size
                except FileNotFoundError:
                    continue
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            raise OSError(f"could not remove {folder}")
        return freed

    def _file(self, job_id: int, attempt: int, path: str) -> Path:
        """Where file ``path`` of an attempt is; refuses a path that could leave its folder."""
        problem = path_problem(path)
        if problem is not None or Path(path).name.startswith(PARTIAL_PREFIX):
            raise ArtifactError(problem or f"`{path}` is a name the store keeps for itself")
        folder = self.root / str(int(job_id)) / str(int(attempt))
        target = folder.joinpath(*path.split("/"))
        if not target.resolve().is_relative_to(folder.resolve()):
            raise ArtifactError(f"`{path}` leads out of its job's folder")
        return target


def artifact_store(settings: Settings) -> ArtifactStore:
    """The installation's store: files under the data folder (``SLIPWAY_DATA_DIR``)."""
    return LocalArtifactStore(settings.artifact_dir)
