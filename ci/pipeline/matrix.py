"""``matrix``: one pipeline, run once per combination of values ("cell"), each cell a job.

The cells are the product of the axes in file order (the first axis varies slowest),
minus every combination an ``exclude`` entry matches, plus the ``include`` entries
appended in file order. Every limit is checked when the file is parsed, so expanding
a parsed pipeline never fails.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from yaml.nodes import MappingNode, Node, SequenceNode

from ci.pipeline.document import NULL, kind, listing, quote, text
from ci.pipeline.lint import ENV_NAME_RE, VARIABLE_RE, Linter, image_problem, suggest

if TYPE_CHECKING:
    from ci.pipeline.config import Pipeline

MAX_CELLS = 64
# Combinations before `exclude`; bounds the work of expanding to well under a millisecond.
MAX_COMBINATIONS = 16 * MAX_CELLS
MAX_AXES = 16
_LISTS = ("exclude", "include", "allow_failures")
_EXAMPLE = '`matrix: {PYTHON: ["3.11", "3.12"]}`'


@dataclass(frozen=True)
class Matrix:
    """The ``matrix`` of a pipeline.

    Attributes:
        axes: each axis's values, as strings, in file order.
        exclude: partial cells; a combination matching every pair of one is dropped.
        include: whole cells (a value for every axis) appended after the product.
        allow_failures: partial cells; a job matching every pair of one may fail
            without failing the build.
    """

    axes: dict[str, tuple[str, ...]]
    exclude: tuple[dict[str, str], ...] = ()
    include: tuple[dict[str, str], ...] = ()
    allow_failures: tuple[dict[str, str], ...] = ()

    def cells(self) -> list[dict[str, str]]:
        """Every cell, in the order described in the module's docstring."""
        names = list(self.axes)
        product = (dict(zip(names, values)) for values in itertools.product(*self.axes.values()))
        kept = [cell for cell in product if not any(_within(rule, cell) for rule in self.exclude)]
        return kept + [dict(cell) for cell in self.include]


def _within(pairs: dict[str, str], cell: dict[str, str]) -> bool:
    """Whether ``cell`` has every pair of ``pairs``."""
    return all(cell.get(name) == value for name, value in pairs.items())


def expand_matrix(pipeline: Pipeline) -> list[dict[str, str]]:
    """The jobs of a build: one cell (axis name -> value) each; ``[{}]`` without a matrix."""
    return [{}] if pipeline.matrix is None else pipeline.matrix.cells()


def cell_name(cell: dict[str, str]) -> str:
    """A cell as shown on build pages, e.g. ``PYTHON=3.12 DB=postgres``; ``""`` for ``{}``."""
    return " ".join(f"{name}={value}" for name, value in cell.items())


def allows_failure(pipeline: Pipeline, cell: dict[str, str]) -> bool:
    """Whether the job of ``cell`` may fail without failing the build."""
    rules = pipeline.matrix.allow_failures if pipeline.matrix is not None else ()
    return any(_within(rule, cell) for rule in rules)


def for_cell(pipeline: Pipeline, cell: dict[str, str]) -> Pipeline:
    """The pipeline one job runs: ``${AXIS}`` replaced by the cell's values.

    Replaced in the pipeline's, the steps' and the services' images and ``env`` values;
    other text, and ``${NAME}`` of anything but an axis, is left as written. The cell's
    pairs are added to the pipeline's ``env``, where a variable the file sets explicitly
    wins. ``matrix`` is kept, so :func:`allows_failure` still answers for the copy.
    """
    def fill(value: str) -> str:
        return VARIABLE_RE.sub(lambda m: cell.get(m.group(1), m.group(0)), value)

    def fill_env(env: dict[str, str]) -> dict[str, str]:
        return {name: fill(value) for name, value in env.items()}

    return replace(
        pipeline,
        image=fill(pipeline.image) if pipeline.image is not None else None,
        env={**cell, **fill_env(pipeline.env)},
        steps=tuple(replace(step, image=fill(step.image) if step.image is not None else None,
                            env=fill_env(step.env)) for step in pipeline.steps),
        services=tuple(replace(service, image=fill(service.image), env=fill_env(service.env))
                       for service in pipeline.services),
    )


def lint_matrix(linter: Linter, node: Node) -> tuple[Matrix | None, set[str]]:
    """Check ``matrix``: the matrix when it is valid, and every axis name written.

    The names let image checks tell an axis that does not exist from one already
    reported as invalid.
    """
    if not isinstance(node, MappingNode):
        linter.report("matrix", node, f"must be a mapping of axis names to lists of values, "
                                      f"found {kind(node)}; e.g. {_EXAMPLE}")
        return None, set()
    before = len(linter.problems)
    entries = linter.mapping(node, "matrix", None)
    written = {key for key in entries if key not in _LISTS}
    axes: dict[str, tuple[str, ...]] = {}
    for key in (key for key in entries if key not in _LISTS):
        values = _axis(linter, key, entries[key])
        if values is not None:
            axes[key] = values
    if not written:
        linter.report("matrix", node, f"has no axes; name at least one with its values, e.g. "
                                      f"{_EXAMPLE}, or remove `matrix`")
        return None, written
    if len(written) > MAX_AXES:
        linter.report("matrix", node, f"has {len(written)} axes, more than the limit of "
                                      f"{MAX_AXES}")
    known = {name: list(values) for name, values in axes.items()}
    lists = {"exclude": _rules(linter, entries.get("exclude"), "exclude", axes, written, known),
             "include": _rules(linter, entries.get("include"), "include", axes, written, None)}
    for cell, _ in lists["include"]:
        for name, value in cell.items():
            if value not in known[name]:
                known[name].append(value)
    lists["allow_failures"] = _rules(linter, entries.get("allow_failures"), "allow_failures",
                                     axes, written, known)
    if len(linter.problems) > before:
        return None, written
    matrix = Matrix(axes, *(tuple(rule for rule, _ in lists[name]) for name in _LISTS))
    _check_cells(linter, node, matrix, lists["include"], lists["allow_failures"])
    return (matrix if len(linter.problems) == before else None), written


def _axis(linter: Linter, name: str, node: Node) -> tuple[str, ...] | None:
    """One axis's values: a list of scalars (or one scalar), unique, each on one line."""
    path = f"matrix.{name}"
    if not ENV_NAME_RE.fullmatch(name):
        linter.report(path, node, f"{quote(name)} is not a valid axis name; an axis is also an "
                                  "environment variable, so use letters, digits and `_`, not "
                                  "starting with a digit")
        return None
    items = node.value if isinstance(node, SequenceNode) else [node]
    close = difflib.get_close_matches(name.lower(), _LISTS, n=1)
    if close and any(isinstance(item, MappingNode) for item in items):
        linter.report(path, node, f"{quote(name)} is not a key; did you mean `{close[0]}`?")
        return None
    if (isinstance(node, SequenceNode) and not node.value) or node.tag == NULL:
        linter.report(path, node, f"has no values; list at least one, e.g. `{name}: "
                                  f'["3.11", "3.12"]`, or remove the axis')
        return None
    values: dict[str, Node] = {}
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]" if isinstance(node, SequenceNode) else path
        value = text(item)
        if value is None:
            linter.report(item_path, item, f"must be a string, number or boolean, found "
                                           f"{kind(item)}")
        elif not value.isprintable():
            linter.report(item_path, item, f"{quote(value)} must be one line of printable text; "
                                           "it names a job")
        elif value in values:
            linter.report(item_path, item, f"{quote(value)} is listed twice (also on line "
                                           f"{values[value].start_mark.line + 1}); keep one")
        else:
            values[value] = item
    return tuple(values) if len(values) == len(items) else None


def _rules(linter: Linter, node: Node | None, key: str, axes: dict[str, tuple[str, ...]],
           written: set[str], known: dict[str, list[str]] | None,
           ) -> list[tuple[dict[str, str], Node]]:
    """``exclude``, ``include`` or ``allow_failures``: mappings from axes to values.

    Args:
        known: the values each axis may take here; None to allow new ones (``include``).
    """
    if node is None:
        return []
    path = f"matrix.{key}"
    example = f'`{key}: [{{PYTHON: "3.11", DB: postgres}}]`'
    if not isinstance(node, SequenceNode) or not node.value:
        found = ("is empty" if isinstance(node, SequenceNode)
                 else f"must be a list, found {kind(node)}")
        linter.report(path, node, f"{found}; list mappings from axis names to values, e.g. "
                                  f"{example}")
        return []
    if len(node.value) > MAX_CELLS:
        linter.report(path, node, f"has {len(node.value)} entries, more than the limit of "
                                  f"{MAX_CELLS}")
        return []
    rules = []
    for index, item in enumerate(node.value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, MappingNode) or not item.value:
            found = "is empty" if isinstance(item, MappingNode) else f"found {kind(item)}"
            linter.report(item_path, item, f"must map axis names to values, {found}; e.g. "
                                           f"{example}")
            continue
        rule: dict[str, str] = {}
        for name, value_node in linter.mapping(item, item_path, None).items():
            value = text(value_node)
            if name not in axes:
                if name not in written:
                    linter.report(item_path, value_node, (
                        f"{quote(name)} is not an axis of the matrix; "
                        f"{suggest(name, list(axes), 'axes')}"))
            elif value is None:
                linter.report(f"{item_path}.{name}", value_node, (
                    f"must be a string, number or boolean, found {kind(value_node)}"))
            elif known is not None and value not in known[name]:
                linter.report(f"{item_path}.{name}", value_node, (
                    f"{quote(value)} is not a value of `{name}`; "
                    f"{suggest(value, known[name], 'values')}"))
            elif not value.isprintable():
                linter.report(f"{item_path}.{name}", value_node,
                              f"{quote(value)} must be one line of printable text")
            else:
                rule[name] = value
        missing = [name for name in axes if name not in rule]
        if key == "include" and missing and written <= set(axes):
            linter.report(item_path, item, f"misses {listing(missing)}; an included job names "
                                           "a value for every axis")
        rules.append(({name: rule[name] for name in axes if name in rule}, item))
    return rules


def _check_cells(linter: Linter, node: Node, matrix: Matrix,
                 include: list[tuple[dict[str, str], Node]],
                 allow_failures: list[tuple[dict[str, str], Node]]) -> None:
    """The limits on the number of jobs, and entries that repeat or match no job."""
    combinations = 1
    for values in matrix.axes.values():
        combinations *= len(values)
        if combinations > MAX_COMBINATIONS:
            linter.report("matrix", node, (
                f"has more than {MAX_COMBINATIONS} combinations of axis values before "
                f"`exclude`, and at most {MAX_CELLS} jobs may run; remove values, or split "
                "the matrix"))
            return
    cells = matrix.cells()
    product = cells[: len(cells) - len(include)]
    for index, (cell, item) in enumerate(include):
        if cell in product or cell in [other for other, _ in include[:index]]:
            linter.report(f"matrix.include[{index}]", item, (
                f"{quote(cell_name(cell), 80)} is already a job of the matrix; remove this "
                "entry"))
    if not cells:
        linter.report("matrix", node, "`exclude` removes every combination, so there is no "
                                      "job to run; remove entries from `exclude`")
    elif len(cells) > MAX_CELLS:
        linter.report("matrix", node, (
            f"makes {len(cells)} jobs, more than the limit of {MAX_CELLS}; remove values, or "
            "`exclude` combinations you do not need"))
    for index, (rule, item) in enumerate(allow_failures):
        if not any(_within(rule, cell) for cell in cells):
            linter.report(f"matrix.allow_failures[{index}]", item, (
                f"{quote(cell_name(rule), 80)} matches no job of the matrix; check the "
                "values, or remove this entry"))


def check_images(linter: Linter, matrix: Matrix | None, written: set[str],
                 images: list[tuple[str, Node, str]]) -> None:
    """Check ``${NAME}`` in images: it names an axis, and every cell makes a valid image.

    Args:
        linter: collects the problems.
        matrix: the valid matrix, or None when there is none or it has problems.
        written: every axis name the file wrote, valid or not.
        images: ``(path, node, image)`` of every image that was valid as a template.
    """
    cells = matrix.cells() if matrix is not None else []
    for path, node, image in images:
        names = VARIABLE_RE.findall(image)
        unknown = [name for name in names if name not in written]
        for name in dict.fromkeys(unknown):
            close = difflib.get_close_matches(name, sorted(written), n=1)
            hint = (f"did you mean `${{{close[0]}}}`?" if close
                    else f"the axes are {listing(sorted(written))}" if written
                    else "this pipeline has no `matrix`, so write the image out")
            linter.report(path, node, f"{quote('${' + name + '}')} is not a matrix axis; {hint}")
        if unknown or not names:
            continue
        for cell in cells:
            filled = VARIABLE_RE.sub(lambda m, c=cell: c[m.group(1)], image)
            if (problem := image_problem(filled)) is not None:
                linter.report(path, node, f"for the job {quote(cell_name(cell), 80)}, {problem}")
                break
