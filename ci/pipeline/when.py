"""``when``: which builds run a pipeline, and which steps run after an earlier one failed."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from yaml.nodes import Node

from ci.pipeline.document import quote
from ci.pipeline.events import EVENTS
from ci.pipeline.lint import Linter, suggest

STATUSES = ("success", "failure")
_KEYS = ("branch", "event", "status")
# Far more than any real filter needs; keeps matching a build cheap.
MAX_FILTERS = 50


@dataclass(frozen=True)
class When:
    """A filter on builds (``branch``, ``event``) and on a job's progress (``status``).

    Each field is a set of accepted values; an empty one accepts anything, except that
    an empty ``status`` means ``("success",)``: a step runs only while nothing failed.

    Attributes:
        branch: ``fnmatch`` globs matched against the whole branch name, case-sensitively
            (``release/*`` matches ``release/1.0`` and ``release/1.0/rc``).
        event: a subset of :data:`EVENTS`.
        status: a subset of :data:`STATUSES`; only steps may set it.
    """

    branch: tuple[str, ...] = ()
    event: tuple[str, ...] = ()
    status: tuple[str, ...] = ()

    def matches(self, *, branch: str | None, event: str) -> bool:
        """Whether a build of ``event`` on ``branch`` passes the branch and event filters.

        Args:
            branch: the branch name without ``refs/heads/``; ``None`` when the build has no
                branch (a tag), which only passes when no branch filter is set.
            event: one of :data:`EVENTS`.
        """
        if self.event and event not in self.event:
            return False
        if not self.branch:
            return True
        return branch is not None and any(fnmatchcase(branch, glob) for glob in self.branch)

    def runs_after(self, failed: bool) -> bool:
        """Whether a step with this filter runs, given whether an earlier step failed."""
        statuses = self.status or ("success",)
        return ("failure" if failed else "success") in statuses


def lint_when(linter: Linter, node: Node, path: str, *, step: bool) -> When:
    """Check a ``when`` mapping; ``status`` is allowed only when ``step`` is true."""
    keys = linter.keys(node, path, _KEYS, "`when: {branch: main, event: push}`")
    if keys is None:
        return When()
    if "status" in keys and not step:
        linter.report(f"{path}.status", keys.pop("status"), (
            "is only for steps: the pipeline's `when` chooses which builds run, by `branch` "
            "and `event`; move `status` to the steps that should run after a failure"
        ))
    return When(
        branch=_branches(linter, keys["branch"], f"{path}.branch") if "branch" in keys else (),
        event=_choices(linter, keys, path, "event", EVENTS),
        status=_choices(linter, keys, path, "status", STATUSES),
    )


def _branches(linter: Linter, node: Node, path: str) -> tuple[str, ...]:
    """Branch names or globs; numbers keep their text, anything else must be quoted."""
    def check(glob: str) -> str | None:
        if not glob.strip():
            return "is empty; write a branch name such as `main` or a glob such as `release/*`"
        if glob.startswith("refs/"):
            return (f"{quote(glob)} is a ref; write the branch name alone, e.g. "
                    f"{quote(glob.removeprefix('refs/heads/'))}")
        return None
    return linter.names(node, path, "`branch: [main, \"release/*\"]`", MAX_FILTERS, check)


def _choices(linter: Linter, keys: dict[str, Node], path: str, key: str,
             valid: tuple[str, ...]) -> tuple[str, ...]:
    """Values of ``key`` taken from ``valid``; a wrong one is named with the closest."""
    if key not in keys:
        return ()

    def check(value: str) -> str | None:
        if value in valid:
            return None
        return f"{quote(value)} is not {'an' if key == 'event' else 'a'} {key}; " + suggest(
            value, valid, f"{key}s" if key == "event" else "statuses")

    example = f"`{key}: [{', '.join(valid[:2])}]`"
    found = linter.names(keys[key], f"{path}.{key}", example, MAX_FILTERS, check)
    # The order of a set of choices means nothing: keep the documented order.
    return tuple(value for value in valid if value in found)

