"""The checkout ``slipway exec`` runs, as it is on disk, and its copy into a job's workspace.

The copy is what the runner's checkout (:mod:`runners.checkout`) makes of a commit, with
the files taken from the disk instead: a git repository that borrows the checkout's
objects (``--shared``; they are mounted read-only into the job, as a runner's mirror is),
``HEAD`` detached at the checkout's commit, and the tracked files and the untracked ones
``.gitignore`` does not exclude, as they are now: uncommitted changes included, ignored
files (a virtualenv, build output) left out.

Nothing is read through a link, as the runner reads nothing of a commit through one: a
link is copied as a link (inside the job's container it points into the container), a
file under a folder that is now a link is left out, and the pipeline must be a regular
file, within the runner's size limit.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from git import Repo
from git.exc import GitCommandError, GitError, InvalidGitRepositoryError, NoSuchPathError

from runners.checkout import GIT_ENV, MAX_LINK_HOPS, CheckoutError

#: Bytes read of a link's target: no real target is longer.
_LINK_TARGET_LIMIT = 4096
#: Reading the checkout writes nothing to it, not even the index's refreshed timestamps.
_READ_ONLY_GIT_ENV = {**GIT_ENV, "GIT_OPTIONAL_LOCKS": "0"}


@dataclass(frozen=True)
class Copy:
    """A workspace made by :meth:`WorkingTree.copy_into`.

    Attributes:
        objects: the checkout's object folder, which the workspace's git borrows from.
        files: how many files, links and folders were copied.
    """

    objects: Path
    files: int


@dataclass(frozen=True)
class WorkingTree:
    """A git work tree on disk.

    Attributes:
        root: its top folder.
        head: the commit checked out, or None before the first commit.
        branch: the branch checked out, or None when ``HEAD`` is detached.
        changed: whether some file differs from that commit (untracked ones count).
    """

    root: Path
    head: str | None
    branch: str | None
    changed: bool

    @classmethod
    def open(cls, path: Path) -> WorkingTree:
        """The work tree ``path`` is in (its top folder or any folder below).

        Raises:
            CheckoutError: ``path`` is in no git work tree, or git cannot read it.
        """
        try:
            repo = Repo(path, search_parent_directories=True)
        except NoSuchPathError:
            raise CheckoutError(f"{path} does not exist") from None
        except InvalidGitRepositoryError:
            raise CheckoutError(f"{path} is not in a git checkout; `slipway exec` runs the "
                                "pipeline of a git work tree (run `git init` first)") from None
        with repo:
            if repo.bare or repo.working_tree_dir is None:
                raise CheckoutError(f"{path} is a bare repository; give a checkout")
            try:
                head = repo.head.commit.hexsha if repo.head.is_valid() else None
                branch = None if repo.head.is_detached else repo.active_branch.name
                changed = bool(repo.git.status("--porcelain", env=_READ_ONLY_GIT_ENV))
            except (GitError, ValueError) as exc:
                raise CheckoutError(f"git cannot read {path}: {_git_says(exc)}") from None
            return cls(Path(repo.working_tree_dir), head, branch, changed)

    def files(self) -> list[str]:
        """The paths a copy holds: tracked and not-ignored untracked ones, ``/``-separated."""
        try:
            with Repo(self.root) as repo:
                listed = repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard",
                                           env=_READ_ONLY_GIT_ENV)
        except GitError as exc:
            raise CheckoutError(f"git cannot list the files of {self.root}: "
                                f"{_git_says(exc)}") from None
        return list(dict.fromkeys(path for path in listed.split("\0") if _plain(path)))

    def read(self, name: str, limit: int) -> bytes | None:
        """The contents of the regular file ``name`` at the root; None when there is none.

        Raises:
            CheckoutError: ``name`` is a link, a folder or something else than a regular
                file, or larger than ``limit`` bytes (checked before anything is read).
        """
        path = self.root / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            raise CheckoutError(f"`{name}` is {_kind(info.st_mode)}; it must be a regular file")
        if info.st_size > limit:
            raise CheckoutError(f"`{name}` is {-(-info.st_size // 1024)} KiB, more than the "
                                f"{limit // 1024} KiB limit")
        try:
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
                return handle.read(limit + 1)[:limit]
        except OSError as exc:
            raise CheckoutError(f"`{name}` cannot be read: {exc.strerror}") from None

    def root_files(self) -> set[str]:
        """Names at the root that are regular files, or links to one inside the tree."""
        listed = {path for path in self.files() if "/" not in path}
        return {name for name in listed if self._regular(name)}

    def _regular(self, path: str, hops: int = 0) -> bool:
        """Whether ``path`` is a regular file, following links that stay inside the tree."""
        if not _parents_are_folders(self.root, path, {}):
            return False
        try:
            info = (self.root / path).lstat()
        except OSError:
            return False
        if stat.S_ISREG(info.st_mode):
            return True
        if not stat.S_ISLNK(info.st_mode) or hops >= MAX_LINK_HOPS:
            return False
        target = os.readlink(self.root / path)[:_LINK_TARGET_LIMIT]
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if resolved.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return False
        return self._regular(resolved, hops + 1)

    def copy_into(self, workspace: Path) -> Copy:
        """Make ``workspace`` (which must not exist) a copy of the tree, as the module says.

        Raises:
            CheckoutError: git could not make the repository, or a file could not be read.
        """
        try:
            repo = Repo.clone_from(str(self.root), workspace, shared=True, no_checkout=True,
                                   env=GIT_ENV)
            with repo:
                if self.head is not None:
                    repo.git.read_tree(self.head)
                    repo.git.update_ref("--no-deref", "HEAD", self.head)
        except GitCommandError as exc:
            raise CheckoutError(f"could not copy {self.root}: {_git_says(exc)}") from None
        folders: dict[str, bool] = {}
        copied = sum(_copy(self.root, workspace, path, folders) for path in self.files())
        return Copy(_borrowed_objects(workspace), copied)


def _plain(path: str) -> bool:
    """Whether git's ``path`` is relative and goes nowhere up (git lists no other)."""
    return bool(path) and not path.startswith("/") and all(
        part not in ("", ".", "..") for part in path.split("/"))


def _parents_are_folders(root: Path, path: str, known: dict[str, bool]) -> bool:
    """Whether every folder on the way to ``path`` is a real folder, not a link, so that
    nothing below it leads out of the tree; ``known`` keeps the answers."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if folder not in known:
            try:
                known[folder] = stat.S_ISDIR((root / folder).lstat().st_mode)
            except OSError:
                known[folder] = False
        if not known[folder]:
            return False
    return True


def _copy(source_root: Path, target_root: Path, path: str, folders: dict[str, bool]) -> bool:
    """Copy one entry of the tree, without following a link; False when it is left out
    (gone since it was committed, under a link, or neither file, link nor folder)."""
    if not _parents_are_folders(source_root, path, folders):
        return False
    source, target = source_root / path, target_root / path
    try:
        mode = source.lstat().st_mode
    except FileNotFoundError:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(mode):
            _copy_file(source, target, 0o755 if mode & stat.S_IXUSR else 0o644)
        elif stat.S_ISDIR(mode):  # a submodule: left empty, as a checkout leaves it
            target.mkdir(exist_ok=True)
        else:
            return False
    except OSError as exc:
        raise CheckoutError(f"could not copy `{path}`: {exc.strerror or exc}") from None
    return True


def _copy_file(source: Path, target: Path, mode: int) -> None:
    """Copy a regular file's contents; neither end is opened through a link."""
    reading = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with open(reading, "rb") as inside:
        writing = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with open(writing, "wb") as outside:
            shutil.copyfileobj(inside, outside, 1 << 20)
    os.chmod(target, mode)  # whatever the umask took away


def _borrowed_objects(workspace: Path) -> Path:
    """The object folder a ``--shared`` clone borrows from (its first alternate)."""
    alternates = workspace / ".git" / "objects" / "info" / "alternates"
    lines = [line.strip() for line in alternates.read_text().splitlines() if line.strip()]
    return Path(lines[0]) if lines else workspace / ".git" / "objects"


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


def _git_says(exc: Exception) -> str:
    """What git wrote about ``exc``, on one line (its message when it wrote nothing): all of
    it, as git's advice follows its error (``safe.directory`` after "dubious ownership")."""
    text = str(getattr(exc, "stderr", None) or exc).strip().removeprefix("stderr: ").strip("'")
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or str(exc)
