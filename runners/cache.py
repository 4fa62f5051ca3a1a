"""The build cache: paths a pipeline lists (``cache: [.venv, ~/.cache/pip]``), kept
between builds on the runner's disk.

Restored before the steps, saved after a passing job, through the executor's
archive calls: the build's own code never touches the host. One entry per
repository, branch, matrix cell and list of paths; a branch without an entry
starts from its default branch's. The cache is bounded: the least recently used
entries are evicted first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Protocol

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
HOME = "/root"


class Archiver(Protocol):
    def read_archive(self, path: str, into: Path) -> bool:
        """Write a tar of ``path`` (inside the job) to the file ``into``; False if absent."""

    def write_archive(self, directory: str, tar: Path) -> None:
        """Unpack the tar file ``tar`` into ``directory`` inside the job."""


def inside(path: str) -> str:
    """Where a cache path is inside the job (``.venv`` → ``/workspace/.venv``)."""
    if path == "~" or path.startswith("~/"):
        return HOME + path[1:]
    return f"{WORKSPACE}/{path.strip('/')}"


class BuildCache:
    """Cache entries under ``root``, at most ``limit_bytes`` in all."""

    def __init__(self, root: Path, limit_bytes: int) -> None:
        self.root = root
        self.limit_bytes = limit_bytes

    def key(self, repo: str, branch: str | None, cell: dict[str, str], paths: tuple[str, ...]) -> str:
        material = json.dumps([repo, branch or "", cell, sorted(paths)], sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()[:24]

    def restore(self, archiver: Archiver, paths: tuple[str, ...], keys: list[str],
                say: Callable[[str], None]) -> str | None:
        """Unpack the first entry of ``keys`` that exists; returns its key, or None."""
        for key in keys:
            entry = self.root / key
            if not (entry / "manifest.json").is_file():
                continue
            started = time.monotonic()
            manifest = json.loads((entry / "manifest.json").read_text())
            for path, file_name in manifest.items():
                if path in paths:
                    archiver.write_archive(os.path.dirname(inside(path)), entry / file_name)
            os.utime(entry)  # recently used: evicted last
            say(f"cache restored ({_size(entry) // 1024} KiB) in {time.monotonic() - started:.2f}s")
            return key
        say("no cache yet for this branch; it is saved after a passing build")
        return None

    def save(self, archiver: Archiver, paths: tuple[str, ...], key: str,
             say: Callable[[str], None]) -> None:
        """Replace entry ``key`` with the current contents of ``paths``, then evict."""
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        staging = self.root / f".{key}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        manifest = {}
        for number, path in enumerate(paths):
            file_name = f"{number}.tar"
            if archiver.read_archive(inside(path), staging / file_name):
                manifest[path] = file_name
        (staging / "manifest.json").write_text(json.dumps(manifest))
        size = _size(staging)
        if size > self.limit_bytes:
            shutil.rmtree(staging, ignore_errors=True)
            say(f"cache not saved: {size // (1024 * 1024)} MiB is more than the cache's "
                f"{self.limit_bytes // (1024 * 1024)} MiB")
            return
        entry = self.root / key
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
        say(f"cache saved ({size // 1024} KiB) in {time.monotonic() - started:.2f}s")
        self._evict(keep=entry)

    def _evict(self, keep: Path) -> None:
        entries = sorted((path for path in self.root.iterdir()
                          if path.is_dir() and not path.name.startswith(".")),
                         key=lambda path: path.stat().st_mtime)
        total = sum(_size(path) for path in entries)
        for entry in entries:
            if total <= self.limit_bytes:
                break
            if entry != keep:
                total -= _size(entry)
                shutil.rmtree(entry, ignore_errors=True)
                log.info("evicted cache entry %s", entry.name)


def _size(folder: Path) -> int:
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file())
