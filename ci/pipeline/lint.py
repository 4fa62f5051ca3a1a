"""The checks every part of ``.slipway.yml`` shares: keys, names, lists, env, images, durations.

A :class:`Linter` walks nodes and *collects* problems instead of stopping at the first,
so a user fixes the file in one push instead of one push per mistake. Each check
returns the value it found, or ``None`` after reporting why there is none.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ci.pipeline.document import BOOL, NULL, Problem, kind, line, listing, quote, string, text
from ci.pipeline.durations import format_duration, parse_duration

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Linux starts no program with one ``NAME=value`` string of this many bytes or more
#: (MAX_ARG_STRLEN counts the terminating NUL): the container would never run.
MAX_ENV_STRING_BYTES = 128 * 1024
# A reference to a matrix axis inside an image, e.g. `python:${PYTHON}`.
VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_SHELL_CHARS = frozenset(";|&$`<>()'\"\\{}")
# Docker's reference grammar (distribution/reference) without IPv6 hosts:
# [host[:port]/]path[/path...][:tag][@algorithm:hex]
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?{_IMAGE_PATH}(?:/{_IMAGE_PATH})*"
    r"(?::\w[\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)


def image_problem(value: str, written: str | None = None) -> str | None:
    """Why ``value`` is not a plain image reference, or None when it is one.

    Args:
        value: the reference to check.
        written: what the user wrote, when ``value`` was derived from it; named in the
            message instead of ``value``.
    """
    shown = quote(written if written is not None else value)
    if not value.strip():
        return "is empty; name an image such as `python:3.12`"
    if bad := next((c for c in value if c.isspace() or c in _SHELL_CHARS), None):
        found = "whitespace" if bad.isspace() else f"`{bad}`"
        hint = ("; `${NAME}` may name a matrix axis" if bad in "${}" else "")
        return (f"{shown} contains {found}, which an image reference cannot{hint}; "
                "write only the image, e.g. `python:3.12`")
    if not _IMAGE_RE.fullmatch(value):
        return (f"{shown} is not an image reference; write a lowercase `name:tag`, "
                "optionally after a registry, e.g. `registry.example.com/org/app:1.0`")
    return None


def suggest(found: str, valid: tuple[str, ...] | list[str], what: str) -> str:
    """ "did you mean `x`?" when one valid choice is closest, else the list of valid ones."""
    close = difflib.get_close_matches(found, valid, n=2)
    ratios = [difflib.SequenceMatcher(None, found, choice).ratio() for choice in close]
    if close and (len(close) == 1 or ratios[0] > ratios[1]):
        return f"did you mean `{close[0]}`?"
    return f"valid {what} are {listing(valid)}"


def _env_size_problem(name: str, value: str) -> str | None:
    """Why ``NAME=value`` cannot be in a process's environment, or None when it can."""
    size = len(f"{name}=".encode()) + len(value.encode("utf-8", "surrogatepass"))
    if size < MAX_ENV_STRING_BYTES:
        return None
    return (f"`{name}=…` is {size} bytes, over Linux's limit of 128 KiB for one variable "
            f"(MAX_ARG_STRLEN: {MAX_ENV_STRING_BYTES} bytes counting its terminating NUL); "
            "put larger values in a file")


class Linter:
    """Walks the nodes of one document, collecting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def report(self, path: str, where: Node | None, message: str) -> None:
        """Record a problem at the line where ``where`` starts."""
        self.problems.append(Problem(path, line(where), message))

    def mapping(
        self, node: MappingNode, path: str, valid: tuple[str, ...] | None
    ) -> dict[str, Node]:
        """Values by key; reports keys that are repeated, not names, or not in ``valid``."""
        values: dict[str, Node] = {}
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key is None:
                self.report(path, key_node, f"{kind(key_node)} cannot be a key; write a name")
            elif key in seen:
                self.report(path, key_node, f"{quote(key)} is given twice (also on line "
                                            f"{line(seen[key])}); keep one")
            elif valid is None or key in valid:
                values[key] = value_node
                seen[key] = key_node
            else:
                self.report(path, key_node, f"{quote(key)} is not a key; "
                                            f"{suggest(key, valid, 'keys')}")
        return values

    def keys(self, node: Node, path: str, valid: tuple[str, ...],
             example: str) -> dict[str, Node] | None:
        """A mapping's values by key, or None after reporting that it is no mapping."""
        if isinstance(node, MappingNode):
            return self.mapping(node, path, valid)
        self.report(path, node, f"must be a mapping, found {kind(node)}; e.g. {example}")
        return None

    def items(self, node: Node, path: str, example: str, limit: int) -> list[tuple[str, Node]]:
        """The scalar items of a list, each with its path; a lone string counts as a list.

        Reports a node that is neither, an empty list and a list over ``limit`` items.
        """
        if isinstance(node, ScalarNode) and node.tag != NULL:
            return [(path, node)]
        if not isinstance(node, SequenceNode):
            self.report(path, node, f"must be a list, found {kind(node)}; e.g. {example}")
            return []
        if not node.value:
            self.report(path, node, f"is empty; list at least one, e.g. {example}, or remove "
                                    "the key")
        elif len(node.value) > limit:
            self.report(path, node, f"has {len(node.value)} items, more than the limit of "
                                    f"{limit}")
            return []
        return [(f"{path}[{index}]", item) for index, item in enumerate(node.value)]

    def names(self, node: Node, path: str, example: str, limit: int,
              check: Callable[[str], str | None]) -> tuple[str, ...]:
        """A list of names, each vetted by ``check`` (which says what is wrong, or None).

        Repeats are dropped: naming something twice changes nothing.
        """
        found: dict[str, None] = {}
        for item_path, item in self.items(node, path, example, limit):
            value = text(item)
            if item.tag == BOOL:
                self.report(item_path, item, f"{quote(item.value)} reads as a boolean; quote "
                                             f'it: `"{item.value}"`')
            elif value is None:
                self.report(item_path, item, f"must be a string, found {kind(item)}; e.g. "
                                             f"{example}")
            elif (problem := check(value)) is not None:
                self.report(item_path, item, problem)
            else:
                found[value] = None
        return tuple(found)

    def env(self, node: Node, path: str) -> dict[str, str]:
        """Variables for a job, step or service, as strings."""
        if not isinstance(node, MappingNode):
            self.report(path, node, f"must be a mapping with one `NAME: value` per line, "
                                    f"found {kind(node)}")
            return {}
        env: dict[str, str] = {}
        for name, value_node in self.mapping(node, path, None).items():
            value = text(value_node)
            if not ENV_NAME_RE.fullmatch(name):
                self.report(path, value_node, f"{quote(name)} is not a valid variable name; use "
                                              "letters, digits and `_`, not starting with a digit")
            elif value is None:
                hint = (f'write `{name}: ""` for an empty string' if value_node.tag == NULL
                        else "quote it to pass it as text")
                self.report(f"{path}.{name}", value_node, f"must be a string, number or boolean, "
                                                          f"found {kind(value_node)}; {hint}")
            elif (problem := _env_size_problem(name, value)) is not None:
                self.report(f"{path}.{name}", value_node, problem)
            else:
                env[name] = value
        return env

    def image(self, node: Node, path: str) -> str | None:
        """An image reference, refused when it could smuggle anything into a command line.

        ``${AXIS}`` is allowed here; :mod:`ci.pipeline.matrix` checks that it names a matrix
        axis and that every cell's value makes a valid reference.
        """
        value = string(node)
        if value is None:
            self.report(path, node, f"must be a string such as `python:3.12`, found {kind(node)}")
            return None
        # Each ${NAME} stands for a value checked per cell; "0" fits anywhere in a reference.
        problem = image_problem(VARIABLE_RE.sub("0", value), value)
        if problem is not None:
            self.report(path, node, problem)
            return None
        return value

    def duration(self, node: Node, path: str, limit: int, default: str) -> int | None:
        """A duration in seconds, more than zero and at most ``limit`` (a whole h, m or s).

        ``default`` says what applies without the key, e.g. "the server's default".
        """
        value = text(node)
        if value is None:
            self.report(path, node, f"must be a duration such as `10m`, found {kind(node)}")
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            self.report(path, node, str(err))
            return None
        if 0 < seconds <= limit:
            return seconds
        wrong = ("must be more than zero" if seconds == 0
                 else f"is more than the {format_duration(limit)} limit")
        self.report(path, node, f"{quote(value)} {wrong}; write e.g. "
                                f"`{format_duration(min(limit, 1800))}`, or remove "
                                f"`{path.rsplit('.', 1)[-1]}` to use {default}")
        return None

    def script(self, node: Node, path: str) -> str | None:
        """A shell script: a non-empty string."""
        if string(node) is None:
            hint = ("put several commands in a block: `run: |`, then one command per line"
                    if isinstance(node, SequenceNode) else "write the commands as text")
            self.report(path, node, f"must be a string (a shell script), found {kind(node)}; "
                                    f"{hint}")
        elif not node.value.strip():
            self.report(path, node, "is empty; write the shell commands to run")
        else:
            return node.value
        return None
