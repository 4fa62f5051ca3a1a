"""All the files one attempt of a job kept, as one zip, made while it is sent.

The zip is written into the answer as it goes, a piece per read of a stored file, so a
job's hundreds of megabytes are never held in memory nor copied to a temporary file
first. A file the store no longer holds (removed by retention meanwhile) is left out.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from datetime import datetime

from ci.artifacts.store import ArtifactStore
from ci.store.models import Artifact

log = logging.getLogger(__name__)

_READ_BYTES = 1024 * 1024


class _Pieces:
    """A write-only, unseekable stream whose written bytes are taken out as they come:
    ``zipfile`` then writes sizes after each file instead of seeking back."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here: :meth:`take` hands everything out."""

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_stream(files: ArtifactStore, artifacts: list[Artifact]) -> Iterator[bytes]:
    """The bytes of a zip holding ``artifacts`` (rows of one job's attempt) at their paths."""
    pieces = _Pieces()
    with zipfile.ZipFile(pieces, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=1) as zipped:
        for artifact in artifacts:
            try:
                source = files.open(artifact.job_id, artifact.attempt, artifact.path)
            except FileNotFoundError:
                log.warning("job %s: %s is no longer stored; left out of the zip",
                            artifact.job_id, artifact.path)
                continue
            entry = zipfile.ZipInfo(artifact.path, _zip_time(artifact.created_at))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.file_size = artifact.size  # decides whether the entry needs ZIP64
            with source, zipped.open(entry, "w") as target:
                while chunk := source.read(_READ_BYTES):
                    target.write(chunk)
                    if data := pieces.take():
                        yield data
    yield pieces.take()


def _zip_time(at: datetime) -> tuple[int, int, int, int, int, int]:
    """A zip entry's time: zip cannot say a year before 1980."""
    return max(at.timetuple()[:6], (1980, 1, 1, 0, 0, 0))
