"""Parse and lint ``.slipway.yml``, the pipeline a repository asks Slipway to run.

Every problem found is raised together in one :class:`ConfigError`, each with the line
it comes from, so a user fixes the file in one push instead of one push per mistake.
The parts live in their own modules — reading YAML safely in
:mod:`~ci.pipeline.document`, the shared checks in :mod:`~ci.pipeline.lint`, ``matrix``
in :mod:`~ci.pipeline.matrix`, ``when`` in :mod:`~ci.pipeline.when`, ``artifacts`` in
:mod:`~ci.pipeline.artifacts` — and every public name is importable from here.
``docs/pipeline.md`` describes the format for users.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ci.pipeline.artifacts import Artifacts, lint_artifacts
from ci.pipeline.document import (CONFIG_FILE, EXAMPLE, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, STR,
                                  ConfigError, Problem, kind, quote, read_document, text)
from ci.pipeline.durations import parse_duration
from ci.pipeline.events import EVENTS
from ci.pipeline.lint import Linter
from ci.pipeline.matrix import (MAX_CELLS, Matrix, allows_failure, cell_name, check_images,
                                expand_matrix, for_cell, lint_matrix)
from ci.pipeline.when import STATUSES, When, lint_when

__all__ = [
    "Artifacts", "CONFIG_FILE", "DEFAULT_PIPELINE_HELP", "EVENTS", "MAX_CACHE_PATHS", "MAX_CELLS",
    "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "MAX_READY_TIMEOUT_SECONDS", "MAX_SECRETS",
    "MAX_SERVICES", "MAX_STEPS", "MAX_TIMEOUT_SECONDS", "STATUSES", "ConfigError", "Matrix",
    "Pipeline", "Problem", "Service", "Step", "When", "allows_failure", "cell_name",
    "default_pipeline", "expand_matrix", "for_cell", "parse_duration", "parse_pipeline",
]

MAX_STEPS = 200
MAX_TIMEOUT_SECONDS = 24 * 3600
MAX_SERVICES = 10
MAX_READY_TIMEOUT_SECONDS = 600
MAX_CACHE_PATHS = 20
MAX_SECRETS = 50

_TOP_LEVEL_KEYS = ("image", "matrix", "env", "services", "cache", "artifacts", "when", "timeout",
                   "steps")
_STEP_KEYS = ("name", "run", "image", "env", "secrets", "when")
_SERVICE_KEYS = ("image", "env", "ready", "ready_timeout")
_SERVICE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_SECRET_RE = re.compile(r"[A-Z_][A-Z0-9_]*", re.ASCII)

# Shown as the job's error (the build page keeps its line breaks).
DEFAULT_PIPELINE_HELP = (
    f"there is no `{CONFIG_FILE}` at the repository root, and no `pyproject.toml`, "
    "`setup.py` or `requirements.txt` to run the default Python pipeline for; add a "
    f"`{CONFIG_FILE}` that lists the commands to run, for example:\n\n"
    "steps:\n"
    "  - name: test\n"
    "    run: make test\n"
)
# Set rather than passed as --break-system-packages, which pip before 23.0.1 refuses.
_PIP_ENV = {"PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
_ENSURE_PYTEST = "python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install pytest\n"


@dataclass(frozen=True)
class Step:
    """One step of a pipeline: a shell script run with ``sh -e`` in the job's workspace.

    Attributes:
        name: unique within the pipeline; defaults to the script's first command.
        run: the shell script.
        image: the image to run it in instead of the pipeline's (same workspace).
        env: variables for this step only, over the pipeline's.
        secrets: the names of the repository's secrets this step receives; no other
            step sees them.
        when: when the step runs; by default only while no earlier step failed.
    """

    name: str
    run: str
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    when: When = field(default_factory=When)


@dataclass(frozen=True)
class Service:
    """A sidecar container, reachable from the steps at the host name ``name``.

    Attributes:
        name: a DNS label, the key it was written under.
        image: the image it runs; may hold ``${AXIS}`` until :func:`for_cell`.
        env: its environment.
        ready: a shell command run inside it until it exits 0; steps start after that,
            or at once when ``None``.
        ready_timeout_seconds: how long ``ready`` may take to succeed.
    """

    name: str
    image: str
    env: dict[str, str]
    ready: str | None
    ready_timeout_seconds: int = 60


@dataclass(frozen=True)
class Pipeline:
    """A valid ``.slipway.yml``; ``None`` fields leave the choice to the runner's defaults.

    Images and env values may hold ``${AXIS}``; :func:`for_cell` gives one job's copy.
    """

    image: str | None
    env: dict[str, str]
    timeout_seconds: int | None
    steps: tuple[Step, ...]
    matrix: Matrix | None = None
    services: tuple[Service, ...] = ()
    cache: tuple[str, ...] = ()
    when: When = field(default_factory=When)
    artifacts: Artifacts = field(default_factory=Artifacts)


def parse_pipeline(text: str | bytes, filename: str = CONFIG_FILE) -> Pipeline:
    """Parse and check a ``.slipway.yml``.

    Environment and matrix values are always strings: booleans become
    ``"true"``/``"false"`` and numbers keep the text the user wrote, so ``PYTHON: 3.10``
    stays ``"3.10"`` instead of becoming the float ``3.1``.

    Args:
        text: the file's contents; bytes must be UTF-8.
        filename: the name used in error messages.

    Returns:
        The pipeline; a step without a ``name`` is named after its first command.

    Raises:
        ConfigError: listing every problem found, each with its line when known.
    """
    linter = _PipelineLinter()
    pipeline = linter.pipeline(read_document(text, filename))
    if linter.problems:
        raise ConfigError(linter.problems, filename)
    return pipeline


def default_pipeline(files: set[str]) -> Pipeline | None:
    """The pipeline for a repository without ``.slipway.yml``, judged by its root files.

    A Python project (``pyproject.toml`` or ``setup.py``) is installed with its ``test``
    extra when it has one; a ``requirements.txt`` alone is installed as it is. Either
    way pytest is installed when missing, then ``python3 -m pytest -q`` runs.

    Args:
        files: the names of the files at the repository root.

    Returns:
        The pipeline, or None when the repository is not a Python project; the runner
        then shows :data:`DEFAULT_PIPELINE_HELP`.
    """
    if "pyproject.toml" in files or "setup.py" in files:
        install = "python3 -m pip install -e '.[test]' || python3 -m pip install -e .\n"
    elif "requirements.txt" in files:
        install = "python3 -m pip install -r requirements.txt\n"
    else:
        return None
    steps = (Step("install", install + _ENSURE_PYTEST), Step("test", "python3 -m pytest -q"))
    return Pipeline(image=None, env=dict(_PIP_ENV), timeout_seconds=None, steps=steps)


def _derived_name(run: str) -> str:
    """A step's default name: its first command, shortened to at most 40 characters."""
    first = next(line.strip() for line in run.splitlines() if line.strip())
    return first if len(first) <= 40 else first[:39] + "…"


def _secret_problem(name: str) -> str | None:
    """Why ``name`` cannot name a secret, or None."""
    if _SECRET_RE.fullmatch(name):
        return None
    upper = name.upper()
    hint = f"; write {quote(upper)}" if _SECRET_RE.fullmatch(upper) else ", e.g. `DEPLOY_TOKEN`"
    return (f"{quote(name)} is not a secret name; secret names are upper-case letters, digits "
            f"and `_`, not starting with a digit{hint}")


def _cache_problem(path: str) -> str | None:
    """Why ``path`` cannot be cached, or None: it must stay in the workspace or in ``~``."""
    where = "the workspace, e.g. `.venv`, or in the home directory, e.g. `~/.cache/pip`"
    inside = path.removeprefix("~/")
    if not path.strip() or not path.isprintable():
        return f"{quote(path)} is not a path; write one line naming a directory inside {where}"
    if path.startswith("/"):
        return f"{quote(path)} is an absolute path; a cache path is inside {where}"
    if path in ("~", "~/"):
        return f"{quote(path)} names a whole directory; name a directory inside {where}"
    if path.startswith("~") and not path.startswith("~/"):
        return f"{quote(path)} is not in your home directory; write `~/` and a path inside it"
    if ".." in path.split("/"):
        return f"{quote(path)} goes up a directory with `..`; a cache path stays inside {where}"
    if posixpath.normpath(inside) == ".":
        return f"{quote(path)} names a whole directory; name a directory inside {where}"
    return None


def _service_name_fix(name: str) -> str:
    """A DNS label close to ``name``, to suggest in the message."""
    fixed = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    return fixed or "db"


class _PipelineLinter(Linter):
    """Walks a whole ``.slipway.yml``; remembers each image to check it per matrix cell."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, Node, str]] = []

    def pipeline(self, root: Node) -> Pipeline:
        """Check the top level and build the pipeline (meaningful only without problems)."""
        if not isinstance(root, MappingNode):
            self.report("", root, f"the top level must be a mapping with a `steps` key, found "
                                  f"{kind(root)}; for example {EXAMPLE}")
            return Pipeline(None, {}, None, ())
        keys = self.mapping(root, "", _TOP_LEVEL_KEYS)
        if "steps" not in keys:
            self.report("steps", None, f"is missing; list the commands to run, e.g. {EXAMPLE}")
        matrix, axes = lint_matrix(self, keys["matrix"]) if "matrix" in keys else (None, set())
        pipeline = Pipeline(
            image=self.template(keys["image"], "image") if "image" in keys else None,
            env=self.env(keys["env"], "env") if "env" in keys else {},
            timeout_seconds=(self.duration(keys["timeout"], "timeout", MAX_TIMEOUT_SECONDS,
                                           "the server's default") if "timeout" in keys else None),
            steps=self.steps(keys["steps"]) if "steps" in keys else (),
            matrix=matrix,
            services=self.services(keys["services"]) if "services" in keys else (),
            cache=self.cache(keys["cache"]) if "cache" in keys else (),
            when=lint_when(self, keys["when"], "when", step=False) if "when" in keys else When(),
            artifacts=(lint_artifacts(self, keys["artifacts"]) if "artifacts" in keys
                       else Artifacts()),
        )
        check_images(self, matrix, axes, self.images)
        return pipeline

    def template(self, node: Node, path: str) -> str | None:
        """An image that may hold ``${AXIS}``, remembered for the per-cell check."""
        image = self.image(node, path)
        if image is not None:
            self.images.append((path, node, image))
        return image

    def services(self, node: Node) -> tuple[Service, ...]:
        """The sidecars, by name."""
        example = "`services: {redis: {image: redis:7}}`"
        if not isinstance(node, MappingNode):
            self.report("services", node, f"must be a mapping from service names to their "
                                          f"settings, found {kind(node)}; write each as "
                                          f"`name: {{image: ...}}`, e.g. {example}")
            return ()
        entries = self.mapping(node, "services", None)
        if len(entries) > MAX_SERVICES:
            self.report("services", node, f"has {len(entries)} services, more than the limit "
                                          f"of {MAX_SERVICES}")
        found = []
        for name, value in entries.items():
            service = self.service(name, value, f"services.{name}")
            if service is not None:
                found.append(service)
        return tuple(found)

    def service(self, name: str, node: Node, path: str) -> Service | None:
        """One sidecar; its name must work as a host name."""
        if not _SERVICE_NAME_RE.fullmatch(name):
            self.report(path, node, (
                f"{quote(name)} is not a valid service name; steps reach a service at its name, "
                "so it must be a DNS label: at most 63 lowercase letters, digits and `-`, not "
                f"starting or ending with `-`, e.g. {quote(_service_name_fix(name))}"))
        keys = self.keys(node, path, _SERVICE_KEYS, "`redis: {image: redis:7}`")
        if keys is None:
            return None
        if "image" not in keys:
            self.report(f"{path}.image", node, "is missing; every service needs the `image` it "
                                               "runs, e.g. `image: redis:7`")
        if "ready_timeout" in keys and "ready" not in keys:
            self.report(f"{path}.ready_timeout", keys["ready_timeout"], (
                "has no effect without `ready`; add `ready:` with a command that succeeds once "
                "the service is up, e.g. `pg_isready -U postgres`, or remove `ready_timeout`"))
        image = self.template(keys["image"], f"{path}.image") if "image" in keys else None
        service = Service(
            name=name,
            image=image or "",
            env=self.env(keys["env"], f"{path}.env") if "env" in keys else {},
            ready=self.script(keys["ready"], f"{path}.ready") if "ready" in keys else None,
            ready_timeout_seconds=(self.duration(
                keys["ready_timeout"], f"{path}.ready_timeout", MAX_READY_TIMEOUT_SECONDS,
                "the default of 60s") if "ready_timeout" in keys else None) or 60,
        )
        return service if image else None

    def cache(self, node: Node) -> tuple[str, ...]:
        """Directories kept between builds, normalized (``./.venv/`` becomes ``.venv``)."""
        paths = self.names(node, "cache", "`cache: [.venv, ~/.cache/pip]`", MAX_CACHE_PATHS,
                           _cache_problem)
        normal = (("~/" + posixpath.normpath(path[2:])) if path.startswith("~/")
                  else posixpath.normpath(path) for path in paths)
        return tuple(dict.fromkeys(normal))

    def steps(self, node: Node) -> tuple[Step, ...]:
        """Every valid step; also checks that step names are unique."""
        if not isinstance(node, SequenceNode):
            self.report("steps", node, f"must be a list, found {kind(node)}; start each step "
                                       "with `- `, e.g. `- run: make test`")
            return ()
        if not node.value:
            self.report("steps", node, "is empty; add at least one step, e.g. `- run: make test`")
        if len(node.value) > MAX_STEPS:
            self.report("steps", node, f"has {len(node.value)} steps, more than the limit of "
                                       f"{MAX_STEPS}; combine commands into fewer steps")
            return ()
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
                            f"{quote(step.name)} is already the name of {other} (line "
                            f"{other_node.start_mark.line + 1}); step names must be unique, "
                            f"so {fix}")
            first_use.setdefault(step.name, (path, name_node or item))
            steps.append(step)
        return tuple(steps)

    def step(self, node: Node, path: str) -> tuple[Step, Node | None] | None:
        """One step, and the node of its name when the name was written out."""
        if isinstance(node, ScalarNode) and node.tag == STR:
            run = self.script(node, path)
            return (Step(_derived_name(run), run), None) if run else None
        if not isinstance(node, MappingNode):
            self.report(path, node, f"must be a shell command or a mapping with `run`, found "
                                    f"{kind(node)}; e.g. `- run: make test`")
            return None
        keys = self.mapping(node, path, _STEP_KEYS)
        before = len(self.problems)
        name = self.name(keys["name"], f"{path}.name") if "name" in keys else None
        if "run" not in keys:
            self.report(f"{path}.run", node, "is missing; every step needs `run:` with the "
                                             "shell commands to run")
        run = self.script(keys["run"], f"{path}.run") if "run" in keys else None
        env = self.env(keys["env"], f"{path}.env") if "env" in keys else {}
        secrets = self.secrets(keys["secrets"], f"{path}.secrets", env) if "secrets" in keys else ()
        step = Step(
            name=name or (_derived_name(run) if run else ""),
            run=run or "",
            image=self.template(keys["image"], f"{path}.image") if "image" in keys else None,
            env=env,
            secrets=secrets,
            when=lint_when(self, keys["when"], f"{path}.when", step=True) if "when" in keys
            else When(),
        )
        return None if len(self.problems) > before else (step, keys.get("name"))

    def secrets(self, node: Node, path: str, env: dict[str, str]) -> tuple[str, ...]:
        """The names of the secrets a step receives; none may also be set in its ``env``."""
        names = self.names(node, path, "`secrets: [DEPLOY_TOKEN]`", MAX_SECRETS, _secret_problem)
        for name in names:
            if name in env:
                self.report(path, node, f"{quote(name)} is also set in this step's `env`; "
                                        "remove it from one of them")
        return names

    def name(self, node: Node, path: str) -> str | None:
        """A step's written-out name: one non-empty line."""
        value = text(node)
        if value is None:
            self.report(path, node, f"must be a string, found {kind(node)}")
        elif not value.strip() or "\n" in value.strip():
            self.report(path, node, "must be one non-empty line, e.g. `test`; or remove `name` "
                                    "to name the step after its first command")
        else:
            return value.strip()
        return None

