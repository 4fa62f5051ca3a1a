"""Getting the exact commit onto disk, fast: a per-repository mirror cache.

The first build of a repository fetches a bare mirror; later builds fetch only
what is new (and nothing at all when the commit is already there). Each job gets
a workspace cloned from the mirror with ``--shared``, which copies no objects.

Credentials in a clone URL (``https://user:token@host/…``) never reach a file, a
command line or a message: the mirror and the workspace know the URL without them
(both are readable by builds), git gets them from a credential helper through the
environment of each command that talks to the remote, and messages show ``***``.

What the runner reads of a commit on this host, it reads from git's objects
(:class:`CommitFiles`), never from the work tree: a file there may be a link to
anything on the host.
"""

from __future__ import annotations

import fcntl
import hashlib
import posixpath
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from git import Repo
from git.exc import GitCommandError, GitError
from git.objects import Blob

from ci.pipeline.redact import USERINFO, without_credentials

#: Never wait for someone to type a password: a runner has no one at its terminal.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}
#: Answers git's ``get`` with the credentials this one git command has in its environment.
CREDENTIAL_HELPER = ('!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
                     '"$SLIPWAY_GIT_USERNAME" "$SLIPWAY_GIT_PASSWORD"; }; f')
#: Links followed inside a commit before giving up (a loop of links never resolves).
MAX_LINK_HOPS = 8
#: The schemes git reaches through curl, which takes credentials from a helper.
_CURL = ("http", "https", "ftp", "ftps")


class CheckoutError(RuntimeError):
    """The commit could not be checked out or read; the message says why."""


class CheckoutTimeout(CheckoutError):
    """The job's deadline passed while a git command ran; the command was killed."""


@dataclass(frozen=True)
class CloneUrl:
    """A clone URL split into what git and people may see, and the credentials they may not.

    Attributes:
        url: as registered, credentials included; only the mirror's path derives from it.
        remote: the URL git stores in the mirror and the workspace: without credentials
            (an ``ssh://`` URL keeps its user name, which is not one).
        shown: for messages: credentials replaced by ``***``.
        username: the http(s) user name, percent-decoded, or None; alone (no password)
            it is taken for a token, as forges accept.
        password: the password, percent-decoded, or None.
    """

    url: str
    remote: str
    shown: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> CloneUrl:
        """Split ``url``; one that cannot be parsed loses what looks like credentials."""
        try:
            parts = urlsplit(url)
            username, password = parts.username, parts.password
        except ValueError:
            return cls(url, USERINFO.sub("", url), without_credentials(url))
        if username is None and password is None:
            return cls(url, url, url)
        userinfo, _, host = parts.netloc.rpartition("@")
        if parts.scheme.lower() in _CURL:
            return cls(url, urlunsplit(parts._replace(netloc=host)),
                       urlunsplit(parts._replace(netloc="***@" + host)),
                       unquote(username or ""), unquote(password or ""))
        if password is None:
            return cls(url, url, url)
        user = userinfo.partition(":")[0]
        return cls(url, urlunsplit(parts._replace(netloc=f"{user}@{host}")),
                   urlunsplit(parts._replace(netloc=f"{user}:***@{host}")),
                   password=unquote(password))

    def secrets(self) -> list[str]:
        """What a log must never show: the password, or a user name standing for a token."""
        return [value for value in (self.password or self.username,) if value]

    def env(self) -> dict[str, str]:
        """The environment of a git command that talks to the remote.

        The empty ``credential.helper`` first drops the host's helpers, so that none
        of them stores these credentials or answers with others.
        """
        if self.username is None:
            return dict(GIT_ENV)
        return {**GIT_ENV, "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": "",
                "GIT_CONFIG_KEY_1": "credential.helper", "GIT_CONFIG_VALUE_1": CREDENTIAL_HELPER,
                "SLIPWAY_GIT_USERNAME": self.username,
                "SLIPWAY_GIT_PASSWORD": self.password or ""}


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

    def update(self, clone_url: str, sha: str, deadline: float | None = None) -> Path:
        """Make sure the mirror of ``clone_url`` has ``sha``; returns the mirror's path.

        Args:
            deadline: a :func:`time.monotonic` time; git is killed when it passes
                (:class:`CheckoutTimeout`), so a remote that never answers cannot hold
                the job past its timeout.
        """
        url = CloneUrl.parse(clone_url)
        if clone_url.startswith("-"):
            raise CheckoutError(f"{url.shown!r} is not a clone URL")
        mirror = self.mirror_path(clone_url)
        with self._locked(mirror):
            try:
                repo = Repo(mirror) if mirror.exists() else _new_mirror(mirror, url)
                _forget_credentials(repo, url)
                if not _has_commit(repo, sha):
                    _fetch(repo, url, deadline, "--prune", "origin")
                if not _has_commit(repo, sha):
                    _fetch(repo, url, deadline, "origin", sha)
            except GitCommandError as exc:
                _raise_timeout(deadline)
                raise CheckoutError(f"could not fetch {url.shown}: "
                                    f"{_last_line(exc.stderr)}") from None
            if not _has_commit(repo, sha):
                raise CheckoutError(f"commit {sha} is not in {url.shown}")
        return mirror

    def checkout(self, clone_url: str, sha: str, workspace: Path,
                 deadline: float | None = None) -> Path:
        """Check out ``sha`` of ``clone_url`` into ``workspace`` (created, or made and empty).

        Returns the mirror's path: the workspace borrows its objects, so whoever
        uses the workspace elsewhere (a container) must see the mirror too.
        """
        mirror = self.update(clone_url, sha, deadline)
        try:
            repo = Repo.clone_from(str(mirror), workspace, shared=True, no_checkout=True)
            repo.git.checkout("--quiet", "--detach", sha,
                              kill_after_timeout=_remaining(deadline))
            repo.git.remote("set-url", "origin", CloneUrl.parse(clone_url).remote)
        except GitCommandError as exc:
            _raise_timeout(deadline)
            raise CheckoutError(f"could not check out {sha}: {_last_line(exc.stderr)}") from None
        return mirror


class CommitFiles:
    """The files of one commit, read from git's objects instead of from a work tree.

    In a work tree a committed link is a real link: opening it reads whatever it
    points at on this host (``/etc/passwd``, ``/proc/kmsg``, which never ends). In
    the objects a link is a blob holding its target's path, so nothing outside the
    repository is ever opened; links are followed only while they stay in the commit.
    """

    def __init__(self, repo_path: Path, sha: str) -> None:
        try:
            self._tree = Repo(repo_path).commit(sha).tree
        except (GitError, ValueError) as exc:
            raise CheckoutError(f"could not read commit {sha}: {exc}") from None

    def read(self, name: str, limit: int) -> bytes | None:
        """The contents of the regular file ``name``; None when the commit has no ``name``.

        Raises:
            CheckoutError: ``name`` is a link, a directory or a submodule, or larger
                than ``limit`` bytes (checked before anything is read).
        """
        try:
            item = self._tree / name
        except KeyError:
            return None
        what = _not_regular(item)
        if what:
            raise CheckoutError(f"`{name}` is {what}; it must be a regular file")
        if item.size > limit:
            raise CheckoutError(f"`{name}` is {-(-item.size // 1024)} KiB, more than the "
                                f"{limit // 1024} KiB limit")
        return item.data_stream.read()

    def root_files(self) -> set[str]:
        """Names at the commit's root that are regular files, or links to one in the commit."""
        return {item.name for item in self._tree if self._regular(item.path) is not None}

    def _regular(self, path: str, hops: int = 0) -> Blob | None:
        """The regular file at ``path``, following links that stay inside the commit."""
        try:
            item = self._tree / path
        except KeyError:
            return None
        if not isinstance(item, Blob):
            return None
        if stat.S_ISREG(item.mode):
            return item
        if not stat.S_ISLNK(item.mode) or hops >= MAX_LINK_HOPS or item.size > 4096:
            return None
        target = item.data_stream.read().decode("utf-8", "replace")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if resolved.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return None
        return self._regular(resolved, hops + 1)


def _not_regular(item: object) -> str | None:
    """What a tree entry is when it is not a regular file, in words; None when it is one."""
    if isinstance(item, Blob):  # git knows two kinds of blob: files and links
        return None if stat.S_ISREG(item.mode) else "a symbolic link"
    return "a directory" if getattr(item, "type", "") == "tree" else "a submodule"


def _new_mirror(mirror: Path, url: CloneUrl) -> Repo:
    """An empty bare mirror of ``url``, for :meth:`MirrorCache.update`'s fetches to fill.

    ``git init`` and ``remote add --mirror=fetch`` instead of ``git clone --mirror``:
    the first fetch is then one more killable command, and the remote's URL stays
    free of credentials. Made under another name, so a runner that dies half-way
    leaves no half-made mirror in place.
    """
    partial = mirror.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    repo = Repo.init(partial, bare=True)
    repo.git.remote("add", "--mirror=fetch", "origin", url.remote)
    partial.rename(mirror)
    return Repo(mirror)


def _forget_credentials(repo: Repo, url: CloneUrl) -> None:
    """Rewrite a mirror made before credentials were kept out of its files."""
    if repo.git.config("--get", "remote.origin.url") != url.remote:
        repo.git.config("remote.origin.url", url.remote)
        Path(repo.git_dir, "FETCH_HEAD").unlink(missing_ok=True)


def _fetch(repo: Repo, url: CloneUrl, deadline: float | None, *args: str) -> None:
    """``git fetch`` from the remote, with its credentials and killed at the deadline."""
    repo.git.fetch(*args, env=url.env(), kill_after_timeout=_remaining(deadline))


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (at least a little, so git is started and killed)."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.01)


def _raise_timeout(deadline: float | None) -> None:
    """After a git error: when the deadline has passed, the error is git being killed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise CheckoutTimeout("the job's time ran out during the checkout") from None


def _has_commit(repo: Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except GitCommandError:
        return False
    return True


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1].removeprefix("stderr: ").strip("'") if lines else "unknown git error"
