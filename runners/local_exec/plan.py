"""What ``slipway exec`` runs, decided before any container starts: the pipeline read and
linted, the event and branch its ``when`` filters see, the matrix cells, the secrets.

Every mistake in what was asked is a :class:`PlanError` naming the fix, found before the
first job, so that a typo costs a second rather than a pipeline's run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ci.pipeline.config import (CONFIG_FILE, DEFAULT_PIPELINE_HELP, MAX_FILE_BYTES, ConfigError,
                                Pipeline, default_pipeline, expand_matrix, parse_pipeline)
from ci.pipeline.document import listing, quote
from ci.pipeline.events import TAG
from runners.checkout import CheckoutError
from runners.local_exec.cells import CellError, parse_choices, select_cells
from runners.local_exec.tree import WorkingTree


class PlanError(ValueError):
    """The pipeline cannot run as asked (the pipeline is invalid, an option is wrong);
    the message says what to change."""


@dataclass(frozen=True)
class Plan:
    """One ``slipway exec`` run.

    Attributes:
        pipeline: the checkout's pipeline (or the default one for a Python project).
        event: what ``when`` filters see as the build's event.
        branch: what they see as its branch; None for none (a tag).
        cells: the matrix cells to run, one job each, in the matrix's order.
        secrets: the values of the secrets given, by name.
        skipped: why the pipeline's own ``when`` skips the whole run, or None.
        notes: what the user should know before the jobs run.
    """

    pipeline: Pipeline
    event: str
    branch: str | None
    cells: list[dict[str, str]]
    secrets: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


def read_pipeline(tree: WorkingTree) -> tuple[Pipeline, list[str]]:
    """The tree's ``.slipway.yml``, read as a runner reads a commit's; or the default
    pipeline of a Python project, with a note saying so.

    Raises:
        PlanError: the file is invalid (the linter's messages, one per line), not a regular
            file, too large, or missing from a tree that is no Python project.
    """
    try:
        text = tree.read(CONFIG_FILE, MAX_FILE_BYTES)
        if text is not None:
            return parse_pipeline(text), []
        default = default_pipeline(tree.root_files())
    except (CheckoutError, ConfigError) as exc:
        raise PlanError(str(exc)) from None
    if default is None:
        raise PlanError(DEFAULT_PIPELINE_HELP.rstrip("\n"))
    return default, [f"no {CONFIG_FILE}: using the default pipeline for a Python project "
                     "(install, then pytest)"]


def make_plan(tree: WorkingTree, *, event: str, branch: str | None, cells: tuple[str, ...],
              secret_names: tuple[str, ...], environ: Mapping[str, str]) -> Plan:
    """Decide the run; ``branch`` None means the checkout's own (none for a tag).

    Args:
        cells: ``--cell`` options, ``AXIS=VALUE`` each.
        secret_names: ``--secret`` options; each value is read from ``environ``.

    Raises:
        PlanError: as :func:`read_pipeline`; or a cell, a secret or a missing secret is
            wrong, as the message says.
    """
    pipeline, notes = read_pipeline(tree)
    if branch is None and event != TAG:
        branch = tree.branch
    try:
        chosen = select_cells(expand_matrix(pipeline), parse_choices(cells))
    except CellError as exc:
        raise PlanError(str(exc)) from None
    secrets = _secrets(pipeline, secret_names, environ)
    if not pipeline.when.matches(branch=branch, event=event):
        skipped = (f"skipped: the pipeline's `when` does not match event {event!r} on branch "
                   f"{branch or '(none)'!r}; choose others with --event and --branch")
        return Plan(pipeline, event, branch, chosen, secrets, skipped, notes)
    _check_secrets_given(pipeline, secrets, event, branch)
    return Plan(pipeline, event, branch, chosen, secrets, None, notes)


def _secrets(pipeline: Pipeline, names: tuple[str, ...],
             environ: Mapping[str, str]) -> dict[str, str]:
    """Each secret's value, from the environment variable of its name."""
    asked = list(dict.fromkeys(name for step in pipeline.steps for name in step.secrets))
    values = {}
    for name in names:
        if name not in asked:
            wanted = (f"its steps ask for {listing(asked)}" if asked
                      else "none of its steps asks for a secret")
            raise PlanError(f"--secret {quote(name)}: no step of the pipeline asks for it; "
                            f"{wanted}")
        if name not in environ:
            raise PlanError(f"--secret {name}: the environment has no variable {name} to "
                            f"take its value from; set it first, e.g. `read -rs {name} && "
                            f"export {name}`")
        values[name] = environ[name]
    return values


def _check_secrets_given(pipeline: Pipeline, secrets: dict[str, str], event: str,
                         branch: str | None) -> None:
    """Every step the event and branch run has the secrets it asks for."""
    for step in pipeline.steps:
        missing = [name for name in step.secrets if name not in secrets]
        if missing and step.when.matches(branch=branch, event=event):
            flags = " ".join(f"--secret {name}" for name in missing)
            noun = "secrets" if len(missing) > 1 else "secret"
            raise PlanError(f"step {step.name!r} needs the {noun} {', '.join(missing)}: pass "
                            f"`{flags}` with the value in the environment variable of that "
                            "name (or choose an --event or --branch that skips the step)")
