"""Import rules that keep Slipway's layers apart, checked on the source with ``ast``.

Why they exist:

- The server (``ci/``) and the runners (``runners/``) share only the pure core
  ``ci/pipeline/``: a runner may live on another host with nothing but Redis and
  Docker, so it must not pull in the database, the web app or the forges, and the
  core itself must do no I/O, read no clock and no environment.
- Only ``ci/store/`` speaks SQL; everyone else goes through its functions and
  decides only the transaction (commit, rollback, close).
- Only ``ci/views/`` (plus the app factory ``ci/__init__.py`` and ``app.py``)
  touches Flask, so the services stay usable from the CLI, the recorder and tests.
- The Docker SDK belongs to the runners and to the CLI that starts them.

Every import counts, also inside functions and under ``if TYPE_CHECKING:``. Each
rule is a function ``(path, source) -> violations`` so it can be tried on a snippet
(see the last test); the other tests run it over the whole tree.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

Rule = Callable[[str, str], list[str]]

PIPELINE_IO = {
    "sqlalchemy", "alembic", "redis", "rq", "docker", "flask", "werkzeug", "git",
    "subprocess", "socket", "os", "time", "urllib", "http", "shutil", "pathlib",
}
CLOCK_CALLS = {"now", "utcnow", "today"}
ENVIRONMENT = {"environ", "getenv"}
SESSION_QUERIES = {
    "get", "scalar", "scalars", "execute", "query", "add", "add_all", "delete", "merge", "flush",
}


@dataclass(frozen=True)
class Import:
    line: int
    statement: str  # as written, e.g. "from ci.store import db"
    targets: tuple[str, ...]  # absolute dotted names, e.g. ("ci.store.db",)


def top(name: str) -> str:
    return name.split(".")[0]


def within(path: str, *prefixes: str) -> bool:
    """Whether ``path`` is one of ``prefixes`` or under one ending in ``/``."""
    return any(path == prefix or (prefix.endswith("/") and path.startswith(prefix))
               for prefix in prefixes)


def package_of(path: str) -> list[str]:
    parts = path.removesuffix(".py").split("/")
    return parts[:-1]  # "ci/views/api.py" and "ci/views/__init__.py" -> ["ci", "views"]


def name_of(node: ast.AST) -> str | None:
    """The name an attribute or a plain name refers to (``now`` for ``datetime.now``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def imports(path: str, source: str) -> Iterator[Import]:
    """Every import in ``source``, with relative ones resolved against ``path``."""
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            targets = tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = package_of(path)
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = tuple(module if alias.name == "*" else f"{module}.{alias.name}".lstrip(".")
                            for alias in node.names)
        else:
            continue
        yield Import(node.lineno, ast.unparse(node), targets)


def import_rule(rule: str, applies: Callable[[str], bool],
                forbidden: Callable[[str, str], bool]) -> Rule:
    """A rule flagging, in files where ``applies(path)``, imports of names where
    ``forbidden(path, name)``."""
    def check(path: str, source: str) -> list[str]:
        if not applies(path):
            return []
        found = []
        for imp in imports(path, source):
            bad = [name for name in imp.targets if forbidden(path, name)]
            if bad:
                found.append(f"{path}:{imp.line}: `{imp.statement}` ({', '.join(bad)}) — {rule}")
        return found
    return check


runners_use_only_the_pipeline = import_rule(
    "rule 1: runners/ may import from ci only ci.pipeline",
    lambda path: within(path, "runners/"),
    lambda path, name: top(name) == "ci" and not (name == "ci.pipeline"
                                                  or name.startswith("ci.pipeline.")),
)

server_does_not_import_runners = import_rule(
    "rule 2: ci/ must not import runners (only ci/cli/, the composition root, may)",
    lambda path: within(path, "ci/") and not within(path, "ci/cli/"),
    lambda path, name: top(name) == "runners",
)

_pipeline_io_imports = import_rule(
    "rule 3: ci/pipeline/ is pure: no I/O modules",
    lambda path: within(path, "ci/pipeline/"),
    lambda path, name: top(name) in PIPELINE_IO,
)


def pipeline_is_pure(path: str, source: str) -> list[str]:
    """Rule 3: the I/O imports above, plus reading the clock or the environment."""
    found = _pipeline_io_imports(path, source)
    if not within(path, "ci/pipeline/"):
        return found
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Call) and name_of(node.func) in CLOCK_CALLS:
            found.append(f"{path}:{node.lineno}: `{ast.unparse(node)}` — "
                         "rule 3: ci/pipeline/ is pure: no reading the clock")
        elif name_of(node) in ENVIRONMENT:
            found.append(f"{path}:{node.lineno}: `{ast.unparse(node)}` — "
                         "rule 3: ci/pipeline/ is pure: no reading the environment")
    return found


_sql_imports = import_rule(
    "rule 4: only ci/store/ may import sqlalchemy or alembic",
    lambda path: not within(path, "ci/store/"),
    lambda path, name: top(name) in {"sqlalchemy", "alembic"},
)


def only_the_store_speaks_sql(path: str, source: str) -> list[str]:
    """Rule 4: the SQL imports above, plus ORM session queries and writes in ``ci/``."""
    found = _sql_imports(path, source)
    if not within(path, "ci/") or within(path, "ci/store/"):
        return found
    for node in ast.walk(ast.parse(source, filename=path)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SESSION_QUERIES and isinstance(node.func.value, ast.Name)
                and "session" in node.func.value.id.lower()):
            found.append(f"{path}:{node.lineno}: `{ast.unparse(node.func)}(…)` — rule 4: only "
                         "ci/store/ may query or write through a session (commit/rollback/close "
                         "are fine)")
    return found


only_the_views_use_flask = import_rule(
    "rule 5: only ci/views/, ci/__init__.py and app.py may import flask",
    lambda path: not within(path, "ci/views/", "ci/__init__.py", "app.py"),
    lambda path, name: top(name) == "flask",
)

docker_only_in_runners_and_cli = import_rule(
    "rule 6: only runners/ and ci/cli/ may import the docker SDK",
    lambda path: not within(path, "runners/", "ci/cli/"),
    lambda path, name: top(name) == "docker",
)


@cache
def tree() -> list[tuple[str, str]]:
    """(relative path, source) of every checked file."""
    files = sorted([*ROOT.glob("ci/**/*.py"), *ROOT.glob("runners/**/*.py"), ROOT / "app.py"])
    return [(file.relative_to(ROOT).as_posix(), file.read_text(encoding="utf-8")) for file in files]


def offenders(rule: Rule) -> list[str]:
    return [violation for path, source in tree() for violation in rule(path, source)]


def report(found: list[str]) -> str:
    return f"{len(found)} violation(s):\n" + "\n".join(found)


def test_the_tree_is_found_and_relative_imports_resolve() -> None:
    paths = [path for path, _ in tree()]
    assert "app.py" in paths and "ci/pipeline/spec.py" in paths and "runners/worker.py" in paths
    source = "from ..store import db\nfrom . import present\nfrom .lookup import *"
    assert [imp.targets for imp in imports("ci/views/api.py", source)] == [
        ("ci.store.db",), ("ci.views.present",), ("ci.views.lookup",)]


@pytest.mark.parametrize("rule", [
    pytest.param(runners_use_only_the_pipeline, id="1-runners-import-only-the-pipeline"),
    pytest.param(server_does_not_import_runners, id="2-the-server-does-not-import-runners"),
    pytest.param(pipeline_is_pure, id="3-the-pipeline-does-no-io"),
    pytest.param(only_the_store_speaks_sql, id="4-only-the-store-speaks-sql"),
    pytest.param(only_the_views_use_flask, id="5-only-the-views-use-flask"),
    pytest.param(docker_only_in_runners_and_cli, id="6-docker-only-in-runners-and-the-cli"),
])
def test_the_tree_keeps_the_rule(rule: Rule) -> None:
    assert not (found := offenders(rule)), report(found)


#: For each rule, a file it applies to and sources it must refuse there.
REFUSED: list[tuple[Rule, str, list[str]]] = [
    (runners_use_only_the_pipeline, "runners/x.py",
     ["from ci.store import db", "def f():\n    import ci", "from ci import pipeline, settings"]),
    (server_does_not_import_runners, "ci/builds/x.py", ["from runners import worker"]),
    (pipeline_is_pure, "ci/pipeline/x.py",
     ["if TYPE_CHECKING:\n    from os import PathLike", "stamp = datetime.now(timezone.utc)",
      "home = environ['HOME']"]),
    (only_the_store_speaks_sql, "ci/views/x.py",
     ["from sqlalchemy import select", "db_session.scalars(query)"]),
    (only_the_views_use_flask, "ci/builds/x.py", ["import flask", "from flask import g"]),
    (docker_only_in_runners_and_cli, "ci/builds/x.py", ["from docker.errors import APIError"]),
]


@pytest.mark.parametrize(("rule", "path", "source", "expected"), [
    (rule, path, source, f"rule {number}")
    for number, (rule, path, sources) in enumerate(REFUSED, start=1) for source in sources
])
def test_the_checker_catches_a_violation(rule: Rule, path: str, source: str,
                                         expected: str) -> None:
    found = rule(path, source)
    assert len(found) == 1 and found[0].startswith(f"{path}:") and expected in found[0], found


@pytest.mark.parametrize(("rule", "path", "source"), [
    (runners_use_only_the_pipeline, "runners/x.py", "from ci.pipeline.spec import JobSpec"),
    (runners_use_only_the_pipeline, "runners/x.py", "from ci import pipeline"),
    (server_does_not_import_runners, "ci/cli/x.py", "from runners import worker"),
    (only_the_store_speaks_sql, "ci/views/x.py", "session.commit()"),
    (only_the_store_speaks_sql, "ci/store/migrations/versions/x.py", "import sqlalchemy as sa"),
    (only_the_views_use_flask, "ci/views/x.py", "from flask import request"),
])
def test_the_checker_allows_what_the_rules_allow(rule: Rule, path: str, source: str) -> None:
    assert rule(path, source) == []
