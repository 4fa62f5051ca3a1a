"""Getting the exact commit onto disk, fast: a per-repository mirror cache.

The first build of a repository clones a bare mirror; later builds fetch only
what is new (and nothing at all when the commit is already there). Each job gets
a workspace cloned from the mirror with ``--shared``, which copies no objects.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from git import Repo
from git.exc import GitCommandError


class CheckoutError(RuntimeError):
    """The commit could not be checked out; the message says why."""


class MirrorCache:
    """Bare mirrors of the repositories this runner has built, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "mirrors").mkdir(parents=True, exist_ok=True)

    def mirror_path(self, clone_url: str) -> Path:
        digest = hashlib.sha256(clone_url.encode()).hexdigest()[:20]
        return self.root / "mirrors" / f"{digest}.git"

    @contextmanager
    def _locked(self, mirror: Path) -> Iterator[None]:
        """Serialise fetches into one mirror between this host's runners."""
        with open(mirror.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, clone_url: str, sha: str) -> Path:
        """Make sure the mirror of ``clone_url`` has ``sha``; returns the mirror's path."""
        if clone_url.startswith("-"):
            raise CheckoutError(f"{clone_url!r} is not a clone URL")
        mirror = self.mirror_path(clone_url)
        with self._locked(mirror):
            try:
                if not mirror.exists():
                    partial = mirror.with_suffix(".partial")
                    shutil.rmtree(partial, ignore_errors=True)
                    Repo.clone_from(clone_url, partial, mirror=True)
                    partial.rename(mirror)
                repo = Repo(mirror)
                if not _has_commit(repo, sha):
                    repo.git.fetch("--prune", "origin")
                if not _has_commit(repo, sha):
                    repo.git.fetch("origin", sha)
            except GitCommandError as exc:
                raise CheckoutError(f"could not fetch {clone_url}: "
                                    f"{_last_line(exc.stderr)}") from None
            if not _has_commit(repo, sha):
                raise CheckoutError(f"commit {sha} is not in {clone_url}")
        return mirror

    def checkout(self, clone_url: str, sha: str, workspace: Path) -> Path:
        """Check out ``sha`` of ``clone_url`` into ``workspace`` (created; must not exist).

        Returns the mirror's path: the workspace borrows its objects, so whoever
        uses the workspace elsewhere (a container) must see the mirror too.
        """
        mirror = self.update(clone_url, sha)
        try:
            repo = Repo.clone_from(str(mirror), workspace, shared=True, no_checkout=True)
            repo.git.checkout("--quiet", "--detach", sha)
            repo.git.remote("set-url", "origin", clone_url)
        except GitCommandError as exc:
            raise CheckoutError(f"could not check out {sha}: {_last_line(exc.stderr)}") from None
        return mirror


def _has_commit(repo: Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except GitCommandError:
        return False
    return True


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1].removeprefix("stderr: ").strip("'") if lines else "unknown git error"
