"""Parse and lint ``.slipway.yml``, the pipeline a repository asks Slipway to run.

The file is read as YAML *nodes* rather than loaded Python values, for two reasons:
every problem can name the line it comes from, and anchors and aliases are measured
before anything is expanded, so a small file cannot make the server build a huge
object. Every problem found is raised together in one :class:`ConfigError`, so a
user fixes the file in one push instead of one push per mistake.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

CONFIG_FILE = ".slipway.yml"
MAX_FILE_BYTES = 256 * 1024
# Counted with every alias expanded: a "billion laughs" file is only a few lines long.
MAX_NODES = 10_000
# Far deeper than any real pipeline; keeps the recursive walks clear of Python's limit.
MAX_DEPTH = 32
MAX_STEPS = 200
MAX_TIMEOUT_SECONDS = 24 * 3600

_TOP_LEVEL_KEYS = ("image", "env", "timeout", "steps")
_STEP_KEYS = ("name", "run")
_EXAMPLE = "`steps: [make test]`"
_TOO_DEEP = (f"values are nested more than {MAX_DEPTH} levels deep (counting aliases, `*name`); "
             "a pipeline needs only a few")

_TAG = "tag:yaml.org,2002:"
_STR, _BOOL, _NULL = (_TAG + name for name in ("str", "bool", "null"))
_KINDS = {_STR: "a string", _TAG + "int": "a number", _TAG + "float": "a number",
          _BOOL: "a boolean", _NULL: "an empty value", _TAG + "timestamp": "a date"}

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION_RE = re.compile(r"(\d{1,9})|(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?", re.ASCII)
_SHELL_CHARS = frozenset(";|&$`<>()'\"\\")
# Docker's reference grammar (distribution/reference) without IPv6 hosts:
# [host[:port]/]path[/path...][:tag][@algorithm:hex]
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?{_IMAGE_PATH}(?:/{_IMAGE_PATH})*"
    r"(?::\w[\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)


@dataclass(frozen=True)
class Step:
    """One step of a pipeline: a shell script run with ``sh -e`` in the job container."""

    name: str
    run: str


@dataclass(frozen=True)
class Pipeline:
    """A valid ``.slipway.yml``; ``None`` fields leave the choice to the runner's defaults."""

    image: str | None
    env: dict[str, str]
    timeout_seconds: int | None
    steps: tuple[Step, ...]


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


def parse_duration(value: str | int) -> int:
    """Turn a duration as users write it in ``.slipway.yml`` into seconds.

    Args:
        value: seconds as an int or digits (``90``, ``"90"``), or numbers with the
            units ``h``, ``m`` and ``s`` in that order (``"10m"``, ``"1h30m"``).

    Returns:
        The duration in seconds; zero is allowed here, callers decide the range.

    Raises:
        ValueError: the value is negative or not in this form; the message says how
            to write one.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or not any(match.groups()):
        raise ValueError(
            f"{_quote(str(value))} is not a duration; write seconds like `90`, or numbers "
            "with units h, m and s like `10m`, `1h30m` or `45s`"
        )
    plain, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return plain + hours * 3600 + minutes * 60 + seconds


def parse_pipeline(text: str | bytes, filename: str = CONFIG_FILE) -> Pipeline:
    """Parse and check a ``.slipway.yml``.

    Environment values are always strings: booleans become ``"true"``/``"false"`` and
    numbers keep the text the user wrote, so ``PYTHON: 3.10`` stays ``"3.10"`` instead
    of becoming the float ``3.1``.

    Args:
        text: the file's contents; bytes must be UTF-8.
        filename: the name used in error messages.

    Returns:
        The pipeline; a step without a ``name`` is named after its first command.

    Raises:
        ConfigError: listing every problem found, each with its line when known.
    """
    linter = _Linter()
    pipeline = linter.pipeline(_compose(_decode(text, filename), filename))
    if linter.problems:
        raise ConfigError(linter.problems, filename)
    return pipeline


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
        loader = yaml.SafeLoader(source)
        root = loader.get_node() if loader.check_node() else None
        if root is not None and loader.check_node():
            raise _fatal(filename, _line(loader.peek_event()), (
                "a second YAML document starts here; Slipway reads one, so delete the `---` "
                "and merge the two"
            ))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        column = f" at column {mark.column + 1}" if mark else ""
        raise _fatal(filename, _line(mark), (
            f"invalid YAML{column}: {err.problem}; check the indentation, and quote values "
            "that contain `: ` or start with `*`, `&`, `!`, `[` or `{`"
        )) from err
    except yaml.reader.ReaderError as err:
        line = source.count("\n", 0, err.position) + 1
        message = f"contains the character U+{err.character:04X}, which YAML forbids; delete it"
        raise _fatal(filename, line, message) from err
    except RecursionError as err:
        raise _fatal(filename, None, _TOO_DEEP) from err
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
        raise _fatal(filename, None, f"the file is empty; a minimal pipeline is {_EXAMPLE}")
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
        raise _fatal(filename, _line(node), _TOO_DEEP)
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


def _line(marked: Node | yaml.Mark | yaml.events.Event | None) -> int | None:
    """The 1-based line where a node or event starts, or where a mark points."""
    if marked is None:
        return None
    return (marked if isinstance(marked, yaml.Mark) else marked.start_mark).line + 1


def _kind(node: Node) -> str:
    """Name a node's type as a user would, for "found ..." in messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged `{node.tag}`")


def _text(node: Node) -> str | None:
    """The string a plain scalar stands for; None for collections, nulls and custom tags."""
    if not isinstance(node, ScalarNode) or node.tag not in _KINDS or node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return "true" if node.value.lower() in ("true", "yes", "on") else "false"
    return node.value


def _quote(text: str, limit: int = 40) -> str:
    """A user's value in backticks on one line, shortened so it cannot flood a message."""
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"`{text if len(text) <= limit else text[: limit - 1] + '…'}`"


def _derived_name(run: str) -> str:
    """A step's default name: its first command, shortened to at most 40 characters."""
    first = next(line.strip() for line in run.splitlines() if line.strip())
    return first if len(first) <= 40 else first[:39] + "…"


class _Linter:
    """Walks the nodes of one document, collecting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def report(self, path: str, where: Node | None, message: str) -> None:
        """Record a problem at the line where ``where`` starts."""
        self.problems.append(Problem(path, _line(where), message))

    def mapping(
        self, node: MappingNode, path: str, valid: tuple[str, ...] | None
    ) -> dict[str, Node]:
        """Values by key; reports keys that are repeated, not names, or not in ``valid``."""
        values: dict[str, Node] = {}
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key is None:
                self.report(path, key_node, f"{_kind(key_node)} cannot be a key; write a name")
            elif key in seen:
                self.report(path, key_node, f"{_quote(key)} is given twice (also on line "
                                            f"{_line(seen[key])}); keep one")
            elif valid is None or key in valid:
                values[key] = value_node
                seen[key] = key_node
            else:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"did you mean `{close[0]}`?" if close else "valid keys are " + ", ".join(
                    f"`{name}`" for name in valid)
                self.report(path, key_node, f"{_quote(key)} is not a key; {hint}")
        return values

    def pipeline(self, root: Node) -> Pipeline:
        """Check the top level and build the pipeline (meaningful only without problems)."""
        if not isinstance(root, MappingNode):
            self.report("", root, f"the top level must be a mapping with a `steps` key, found "
                                  f"{_kind(root)}; for example {_EXAMPLE}")
            return Pipeline(None, {}, None, ())
        keys = self.mapping(root, "", _TOP_LEVEL_KEYS)
        if "steps" not in keys:
            self.report("steps", None, f"is missing; list the commands to run, e.g. {_EXAMPLE}")
        return Pipeline(
            image=self.image(keys["image"]) if "image" in keys else None,
            env=self.env(keys["env"]) if "env" in keys else {},
            timeout_seconds=self.timeout(keys["timeout"]) if "timeout" in keys else None,
            steps=self.steps(keys["steps"]) if "steps" in keys else (),
        )

    def image(self, node: Node) -> str | None:
        """The image reference, refused when it could smuggle anything into a command line."""
        value = node.value if isinstance(node, ScalarNode) and node.tag == _STR else None
        if value is None:
            message = f"must be a string such as `python:3.12`, found {_kind(node)}"
        elif not value.strip():
            message = "is empty; name an image such as `python:3.12`, or remove `image`"
        elif bad := next((c for c in value if c.isspace() or c in _SHELL_CHARS), None):
            shown = "whitespace" if bad.isspace() else f"`{bad}`"
            message = (f"{_quote(value)} contains {shown}, which an image reference cannot; "
                       "write only the image, e.g. `python:3.12`")
        elif not _IMAGE_RE.fullmatch(value):
            message = (f"{_quote(value)} is not an image reference; write a lowercase "
                       "`name:tag`, optionally after a registry, e.g. `ghcr.io/org/app:1.0`")
        else:
            return value
        self.report("image", node, message)
        return None

    def env(self, node: Node) -> dict[str, str]:
        """Variables set for every step, as strings."""
        if not isinstance(node, MappingNode):
            self.report("env", node, f"must be a mapping with one `NAME: value` per line, "
                                     f"found {_kind(node)}")
            return {}
        env: dict[str, str] = {}
        for name, value_node in self.mapping(node, "env", None).items():
            value = _text(value_node)
            if not _ENV_NAME_RE.fullmatch(name):
                self.report("env", value_node, f"{_quote(name)} is not a valid variable name; use "
                                               "letters, digits and `_`, not starting with a digit")
            elif value is None:
                hint = (f'write `{name}: ""` for an empty string' if value_node.tag == _NULL
                        else "quote it to pass it as text")
                self.report(f"env.{name}", value_node, f"must be a string, number or boolean, "
                                                       f"found {_kind(value_node)}; {hint}")
            else:
                env[name] = value
        return env

    def timeout(self, node: Node) -> int | None:
        """The job's time limit in seconds, more than zero and at most 24 hours."""
        text = _text(node)
        if text is None:
            self.report("timeout", node, f"must be a duration such as `10m`, found {_kind(node)}")
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as err:
            self.report("timeout", node, str(err))
            return None
        if 0 < seconds <= MAX_TIMEOUT_SECONDS:
            return seconds
        wrong = "must be more than zero" if seconds == 0 else "is more than the 24h limit"
        self.report("timeout", node, f"{_quote(text)} {wrong}; write e.g. `30m`, or remove "
                                     "`timeout` to use the server's default")
        return None

    def steps(self, node: Node) -> tuple[Step, ...]:
        """Every valid step; also checks that step names are unique."""
        if not isinstance(node, SequenceNode):
            self.report("steps", node, f"must be a list, found {_kind(node)}; start each step "
                                       "with `- `, e.g. `- run: make test`")
            return ()
        if not node.value:
            self.report("steps", node, "is empty; add at least one step, e.g. `- run: make test`")
        if len(node.value) > MAX_STEPS:
            self.report("steps", node, f"has {len(node.value)} steps, more than the limit of "
                                       f"{MAX_STEPS}; combine commands into fewer steps")
        steps: list[Step] = []
        first_use: dict[str, tuple[str, Node]] = {}
        for index, item in enumerate(node.value):
            path = f"steps[{index}]"
            found = self.step(item, path)
            if found is None:
                continue
            step, name_node = found
            if step.name in first_use:
                other, other_node = first_use[step.name]
                fix = "rename one" if name_node else "give one of them a `name:`"
                self.report(f"{path}.name" if name_node else path, name_node or item,
                            f"{_quote(step.name)} is already the name of {other} (line "
                            f"{_line(other_node)}); step names must be unique, so {fix}")
            first_use.setdefault(step.name, (path, name_node or item))
            steps.append(step)
        return tuple(steps)

    def step(self, node: Node, path: str) -> tuple[Step, Node | None] | None:
        """One step, and the node of its name when the name was written out."""
        if isinstance(node, ScalarNode) and node.tag == _STR:
            run = self.script(node, path)
            return (Step(_derived_name(run), run), None) if run else None
        if not isinstance(node, MappingNode):
            self.report(path, node, f"must be a shell command or a mapping with `run`, found "
                                    f"{_kind(node)}; e.g. `- run: make test`")
            return None
        keys = self.mapping(node, path, _STEP_KEYS)
        name = self.name(keys["name"], f"{path}.name") if "name" in keys else None
        if "run" not in keys:
            self.report(f"{path}.run", node, "is missing; every step needs `run:` with the "
                                             "shell commands to run")
            return None
        run = self.script(keys["run"], f"{path}.run")
        if run is None or ("name" in keys and name is None):
            return None
        return Step(name or _derived_name(run), run), keys.get("name")

    def name(self, node: Node, path: str) -> str | None:
        """A step's written-out name: one non-empty line."""
        text = _text(node)
        if text is None:
            self.report(path, node, f"must be a string, found {_kind(node)}")
        elif not text.strip() or "\n" in text.strip():
            self.report(path, node, "must be one non-empty line, e.g. `test`; or remove `name` "
                                    "to name the step after its first command")
        else:
            return text.strip()
        return None

    def script(self, node: Node, path: str) -> str | None:
        """A step's shell script: a non-empty string."""
        if not (isinstance(node, ScalarNode) and node.tag == _STR):
            hint = ("put several commands in a block: `run: |`, then one command per line"
                    if isinstance(node, SequenceNode) else "write the commands as text")
            self.report(path, node, f"must be a string (a shell script), found {_kind(node)}; "
                                    f"{hint}")
        elif not node.value.strip():
            self.report(path, node, "is empty; write the shell commands this step runs")
        else:
            return node.value
        return None
