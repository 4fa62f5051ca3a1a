"""``artifacts:``: which files of a job's workspace Slipway keeps once the steps ran, and when.

Both sides need the same rules, so they live in the pure core: the linter checks the key
here, the runner matches the paths of the workspace's archive with :class:`Matcher`, and
the server checks every name a runner sends back with :func:`path_problem` before a byte
of it reaches the disk.

Patterns are matched against workspace-relative POSIX paths: ``*`` and ``?`` match within
one path component, ``[...]`` one character of a set (``[!...]`` outside it), ``**`` as a
whole component any number of directories. A pattern that matches a directory keeps every
file under it (``dist`` keeps ``dist/app.whl``). Nothing else is special: a backslash is a
character of the name, as Linux has it.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from typing import BinaryIO

from yaml.nodes import MappingNode, Node

from ci.pipeline.document import kind, quote, text
from ci.pipeline.lint import Linter, suggest

ON_SUCCESS, ALWAYS = "on_success", "always"
#: The values of ``artifacts.when``: keep the files after a passing job, or after any
#: job whose steps ran.
WHEN = (ON_SUCCESS, ALWAYS)
#: More patterns than any pipeline needs; each one is tried on every path of the archive.
MAX_PATTERNS = 50
#: The longest path kept, in characters (the ``artifacts.path`` column).
MAX_PATH_CHARS = 1024
#: The most files one job keeps: each is a row, a line of the manifest and of the page.
MAX_FILES = 10_000

_KEYS = ("paths", "when")
_EXAMPLE = "`artifacts: [dist/*.whl, reports/]`"
_WHERE = "the workspace, e.g. `dist/*.whl` or `reports/`"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Artifacts:
    """What a pipeline keeps.

    Attributes:
        paths: the patterns, normalized (``./dist/`` becomes ``dist``); empty: nothing.
        when: :data:`ON_SUCCESS` (only after a passing job) or :data:`ALWAYS` (also after a
            failing one, so its test reports can be read).
    """

    paths: tuple[str, ...] = ()
    when: str = ON_SUCCESS

    def wanted(self, passed: bool) -> bool:
        """Whether a job whose steps ran, and ``passed`` or not, keeps its files."""
        return bool(self.paths) and (passed or self.when == ALWAYS)


class Hashed:
    """A binary stream read through this counts and hashes what passes, so a file's size
    and sha256 come out of the one pass that copies it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def human_size(size: int) -> str:
    """A size for people: ``512 bytes``, ``3.0 KiB``, ``12.4 MiB``, ``1.5 GiB``; a whole
    number of a unit without decimals (``100 MiB``), as limits are written."""
    if size < 1024:
        return f"{size} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"


def shown(path: str) -> str:
    """A path as a log line or a message may show it: characters that are not printable
    (a terminal's escape codes, line breaks) appear escaped, never as themselves."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in path)


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a kept file, or None: it must be a plain relative path of
    printable characters, without ``.``, ``..`` or empty components."""
    if not path or len(path) > MAX_PATH_CHARS:
        return f"`{shown(path[:80])}` is empty or longer than {MAX_PATH_CHARS} characters"
    if not path.isprintable():
        return f"`{shown(path)}` has characters that are not printable"
    if path.startswith("/"):
        return f"`{shown(path)}` is an absolute path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"`{shown(path)}` has an empty, `.` or `..` component"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be an artifact pattern, or None."""
    if not pattern.strip():
        return f"is empty; write a path inside {_WHERE}"
    if not pattern.isprintable():
        return f"{quote(shown(pattern))} is not a path; write one line naming files inside {_WHERE}"
    if len(pattern) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if pattern.startswith(("/", "~")):
        return (f"{quote(pattern)} is outside the workspace; artifacts are files of the job's "
                f"workspace, so write a path inside {_WHERE}")
    if ".." in pattern.split("/"):
        return (f"{quote(pattern)} goes up a directory with `..`; artifacts stay inside "
                f"{_WHERE}")
    if normalize(pattern) == ".":
        return (f"{quote(pattern)} names the whole workspace; name files or directories "
                f"inside it, e.g. `dist/` (or `**` if you really mean every file)")
    try:
        re.compile(_regex(normalize(pattern)))
    except re.error as exc:
        return f"{quote(pattern)} is not a valid pattern: {exc.msg}; e.g. `reports/[a-z]*.xml`"
    return None


def normalize(pattern: str) -> str:
    """``./dist/`` → ``dist``: the form patterns are matched and shown in."""
    return posixpath.normpath(pattern).lstrip("/")


def lint_artifacts(linter: Linter, node: Node) -> Artifacts:
    """Check ``artifacts``: a list of patterns, or ``{paths: [...], when: ...}``."""
    when = ON_SUCCESS
    if isinstance(node, MappingNode):
        keys = linter.mapping(node, "artifacts", _KEYS)
        if "paths" not in keys:
            linter.report("artifacts.paths", node, "is missing; list the files to keep, e.g. "
                                                   "`paths: [dist/*.whl]`")
            return Artifacts()
        if "when" in keys:
            when = _when(linter, keys["when"])
        node, path = keys["paths"], "artifacts.paths"
    else:
        path = "artifacts"
    patterns = linter.names(node, path, _EXAMPLE, MAX_PATTERNS, pattern_problem)
    return Artifacts(tuple(dict.fromkeys(normalize(pattern) for pattern in patterns)), when)


def _when(linter: Linter, node: Node) -> str:
    value = text(node)
    if value in WHEN:
        return value
    found = quote(value) if value is not None else kind(node)
    linter.report("artifacts.when", node, f"{found} is not a choice; "
                                          f"{suggest(value or '', WHEN, 'choices')}")
    return ON_SUCCESS


class Matcher:
    """Tells which of a pipeline's patterns keep a workspace path."""

    def __init__(self, patterns: tuple[str, ...] | list[str]) -> None:
        self.patterns = tuple(patterns)
        self._regexes = [re.compile(_regex(pattern)) for pattern in self.patterns]

    def matching(self, path: str) -> list[int]:
        """The indexes of the patterns that keep ``path``: that match it or one of the
        directories it is in."""
        parts = path.split("/")
        candidates = ["/".join(parts[:end]) for end in range(len(parts), 0, -1)]
        return [index for index, regex in enumerate(self._regexes)
                if any(regex.fullmatch(candidate) for candidate in candidates)]

    def root(self) -> str:
        """The deepest workspace path under which every match lies ("" for the workspace
        itself): the components the patterns share before their first wildcard. Reading
        only this part of the workspace spares reading the rest."""
        shared: list[str] | None = None
        for pattern in self.patterns:
            parts = pattern.split("/")
            literal = next((i for i, part in enumerate(parts)
                            if _GLOB_CHARS.intersection(part)), len(parts))
            prefix = parts[:literal]
            if shared is None:
                shared = prefix
                continue
            common = 0
            while common < min(len(shared), len(prefix)) and shared[common] == prefix[common]:
                common += 1
            shared = shared[:common]
        return "/".join(shared or [])


def _regex(pattern: str) -> str:
    """The regular expression of a normalized pattern, for ``fullmatch``."""
    parts = pattern.split("/")
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _component(part) + ("" if last else "/")
    return regex


def _component(part: str) -> str:
    """The regular expression of one path component of a pattern."""
    regex, index = "", 0
    while index < len(part):
        char = part[index]
        index += 1
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[" and (end := _class_end(part, index)) is not None:
            body = part[index:end]
            negated = body[:1] in ("!", "^")
            members = "".join(c if c == "-" else re.escape(c) for c in body[negated:])
            regex += f"(?!/)[^{members}]" if negated else f"[{members}]"
            index = end + 1
        else:
            regex += re.escape(char)
    return regex


def _class_end(part: str, start: int) -> int | None:
    """Where the ``]`` closing a set opened before ``start`` is; None when it is not closed
    (the ``[`` is then a character of the name). A ``]`` first in the set is a member."""
    index = start + (part[start:start + 1] in ("!", "^"))
    index += part[index:index + 1] == "]"
    end = part.find("]", index)
    return end if end != -1 else None
