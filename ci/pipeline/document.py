"""Read a ``.slipway.yml`` as YAML nodes, safely, and describe what is wrong with it.

The file is read as YAML *nodes* rather than loaded Python values, for two reasons:
every problem can name the line it comes from, and anchors and aliases are measured
before anything is expanded, so a small file cannot make the server build a huge
object. Reading stops as soon as a limit is passed, so a huge file costs no more
than the limit does.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

CONFIG_FILE = ".slipway.yml"
MAX_FILE_BYTES = 256 * 1024
# Keys, list items and values, counted with every alias expanded: a "billion laughs"
# file is only a few lines long.
MAX_NODES = 10_000
# Far deeper than any real pipeline; keeps the recursive walks clear of Python's limit.
MAX_DEPTH = 32

EXAMPLE = "`steps: [make test]`"
_TOO_DEEP = (f"values are nested more than {MAX_DEPTH} levels deep (counting aliases, `*name`); "
             "a pipeline needs only a few")
_TOO_MANY = (f"the file has more than {MAX_NODES} values (keys, list items and scalars); a "
             "pipeline needs a few hundred at most, so move data into files in the repository")

_TAG = "tag:yaml.org,2002:"
STR, BOOL, NULL = (_TAG + name for name in ("str", "bool", "null"))
_KINDS = {STR: "a string", _TAG + "int": "a number", _TAG + "float": "a number",
          BOOL: "a boolean", NULL: "an empty value", _TAG + "timestamp": "a date"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a ``.slipway.yml``.

    Attributes:
        path: where in the document, e.g. ``steps[1].run`` or ``timeout``; ``""`` for
            the whole file or the top level's keys.
        line: the 1-based line in the file, when known.
        message: what was found and what to write instead.
    """

    path: str
    line: int | None
    message: str

    def describe(self, filename: str = CONFIG_FILE) -> str:
        """The sentence shown on the build page, e.g. "`.slipway.yml` line 3, timeout: ..."."""
        line = f" line {self.line}" if self.line is not None else ""
        path = f", {self.path}" if self.path else ""
        return f"`{filename}`{line}{path}: {self.message}"


class ConfigError(ValueError):
    """An invalid ``.slipway.yml``: the build errors with these problems instead of running.

    ``str(error)`` is one sentence per problem, one per line.

    Attributes:
        problems: every problem found, in file order; those without a line last.
        filename: the file name the messages refer to.
    """

    def __init__(self, problems: list[Problem], filename: str = CONFIG_FILE) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        self.filename = filename
        super().__init__("\n".join(p.describe(filename) for p in self.problems))


class _Stop(Exception):
    """Raised inside the composer when a limit is passed; carries the message."""


class _Loader(yaml.SafeLoader):
    """The safe loader, counting nodes and depth while it composes them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.composed = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self.composed += 1
        if self.composed > MAX_NODES:
            raise _Stop(_TOO_MANY)
        if self.depth >= MAX_DEPTH:
            raise _Stop(_TOO_DEEP)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_document(text: str | bytes, filename: str = CONFIG_FILE) -> Node:
    """The root node of the file's one YAML document.

    Raises:
        ConfigError: the file is too large, not UTF-8, not YAML, empty, more than one
            document, or too big or deep once aliases are expanded.
    """
    return _compose(_decode(text, filename), filename)


def _fatal(filename: str, line: int | None, message: str) -> ConfigError:
    """The error for a problem that stops the file from being read any further."""
    return ConfigError([Problem("", line, message)], filename)


def _decode(text: str | bytes, filename: str) -> str:
    """Check the file's size and encoding before YAML sees it."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise _fatal(filename, None, (
            f"the file is {-(-size // 1024)} KiB, more than the {MAX_FILE_BYTES // 1024} KiB "
            "limit; move long scripts into files in the repository and run those from steps"
        ))
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as err:
        line = text.count(b"\n", 0, err.start) + 1
        message = f"the file is not UTF-8 (byte 0x{text[err.start]:02x}); save it as UTF-8"
        raise _fatal(filename, line, message) from err


def _compose(source: str, filename: str) -> Node:
    """Read the file's one YAML document as nodes, refusing what cannot be a pipeline."""
    loader = None
    try:
        loader = _Loader(source)
        root = loader.get_node() if loader.check_node() else None
        if root is not None and loader.check_node():
            raise _fatal(filename, line(loader.peek_event()), (
                "a second YAML document starts here; Slipway reads one, so delete the `---` "
                "and merge the two"
            ))
    except _Stop as stop:
        raise _fatal(filename, None, str(stop)) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        column = f" at column {mark.column + 1}" if mark else ""
        raise _fatal(filename, line(mark), (
            f"invalid YAML{column}: {err.problem}; check the indentation, and quote values "
            "that contain `: ` or start with `*`, `&`, `!`, `[` or `{`"
        )) from err
    except yaml.reader.ReaderError as err:
        at = source.count("\n", 0, err.position) + 1
        message = f"contains the character U+{err.character:04X}, which YAML forbids; delete it"
        raise _fatal(filename, at, message) from err
    except RecursionError as err:
        raise _fatal(filename, None, _TOO_DEEP) from err
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag == NULL):
        raise _fatal(filename, None, f"the file is empty; a minimal pipeline is {EXAMPLE}")
    if _measure(root, filename, {}, 0) > MAX_NODES:
        raise _fatal(filename, None, (
            f"the file expands to more than {MAX_NODES} values through anchors and aliases "
            "(`&name`, `*name`); write the values out instead"
        ))
    return root


def _measure(node: Node, filename: str, sizes: dict[int, int], depth: int) -> int:
    """Count the nodes under ``node`` with aliases expanded, stopping early past MAX_NODES.

    Each node is counted once and its size reused for every alias, so the work stays
    linear in the file even when the expansion is exponential. An anchor used inside
    its own value never finishes counting and is refused by the depth limit.
    """
    if id(node) in sizes:
        return sizes[id(node)]
    if depth > MAX_DEPTH:
        raise _fatal(filename, line(node), _TOO_DEEP)
    children = [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else (
        node.value if isinstance(node, SequenceNode) else []
    )
    total = 1
    for child in children:
        total += _measure(child, filename, sizes, depth + 1)
        if total > MAX_NODES:
            break
    sizes[id(node)] = total
    return total


def line(marked: Node | yaml.Mark | yaml.events.Event | None) -> int | None:
    """The 1-based line where a node or event starts, or where a mark points."""
    if marked is None:
        return None
    return (marked if isinstance(marked, yaml.Mark) else marked.start_mark).line + 1


def kind(node: Node) -> str:
    """Name a node's type as a user would, for "found ..." in messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged `{node.tag}`")


def text(node: Node) -> str | None:
    """The string a plain scalar stands for; None for collections, nulls and custom tags.

    Numbers keep the text the user wrote, so ``3.10`` stays ``"3.10"``; booleans become
    ``"true"`` or ``"false"``.
    """
    if not isinstance(node, ScalarNode) or node.tag not in _KINDS or node.tag == NULL:
        return None
    if node.tag == BOOL:
        return "true" if node.value.lower() in ("true", "yes", "on") else "false"
    return node.value


def string(node: Node) -> str | None:
    """The value of a scalar written as a string (quoted or plain), else None."""
    return node.value if isinstance(node, ScalarNode) and node.tag == STR else None


def quote(value: str, limit: int = 40) -> str:
    """A user's value in backticks on one line, shortened so it cannot flood a message."""
    value = value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"`{value if len(value) <= limit else value[: limit - 1] + '…'}`"


def listing(values: tuple[str, ...] | list[str], limit: int = 10) -> str:
    """Values as "`a`, `b`, `c`" for "valid ... are" hints; past ``limit``, a count."""
    shown = ", ".join(quote(value) for value in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
