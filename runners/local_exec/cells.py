"""Which matrix cells ``slipway exec`` runs: every one, or those ``--cell AXIS=VALUE`` picks.

Several ``--cell`` options pick one value on several axes; a cell runs when it has every
pair given, so naming one axis of two runs each cell with that value.
"""

from __future__ import annotations

from ci.pipeline.config import MAX_CELLS, cell_name
from ci.pipeline.document import listing, quote


class CellError(ValueError):
    """A ``--cell`` names no axis or value of the matrix; the message lists the valid ones."""


def parse_choices(given: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["PYTHON=3.12", "DB=pg"]`` as ``{"PYTHON": "3.12", "DB": "pg"}``.

    Raises:
        CellError: an item is not ``AXIS=VALUE``, or names an axis twice.
    """
    choices: dict[str, str] = {}
    for item in given:
        axis, equals, value = item.partition("=")
        if not equals or not axis.strip():
            raise CellError(f"`--cell {item}` is not AXIS=VALUE; write e.g. "
                            "`--cell PYTHON=3.12`")
        axis = axis.strip()
        if axis in choices:
            raise CellError(f"`--cell` gives {axis} twice ({quote(choices[axis])} and "
                            f"{quote(value)}); give each axis once")
        choices[axis] = value
    return choices


def select_cells(cells: list[dict[str, str]], choices: dict[str, str]) -> list[dict[str, str]]:
    """The cells that have every pair of ``choices``, in the matrix's order.

    Args:
        cells: every cell of the pipeline (``[{}]`` without a matrix).
        choices: from :func:`parse_choices`; empty picks every cell.

    Raises:
        CellError: the pipeline has no matrix, an axis or value is not in it (the message
            lists the valid ones), or no cell has that combination.
    """
    if not choices:
        return cells
    if cells == [{}]:
        raise CellError("the pipeline has no matrix, so there is no cell to choose; "
                        "remove `--cell`")
    values: dict[str, list[str]] = {}
    for cell in cells:
        for axis, value in cell.items():
            values.setdefault(axis, [])
            if value not in values[axis]:
                values[axis].append(value)
    for axis, value in choices.items():
        if axis not in values:
            raise CellError(f"{quote(axis)} is not an axis of the matrix; its axes are "
                            f"{listing(list(values), MAX_CELLS)}")
        if value not in values[axis]:
            raise CellError(f"{quote(value)} is not a value of {axis}; its values are "
                            f"{listing(values[axis], MAX_CELLS)}")
    chosen = [cell for cell in cells
              if all(cell.get(axis) == value for axis, value in choices.items())]
    if not chosen:
        every = ", ".join(quote(cell_name(cell), 200) for cell in cells)
        raise CellError(f"no cell of the matrix has {quote(cell_name(choices), 200)}; "
                        f"its cells are {every}")
    return chosen
