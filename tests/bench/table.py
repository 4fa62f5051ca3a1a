"""The bench's one table: for each figure every round, the median, the floor it is held
against, the ratio to that floor, the target and the verdict.

Speed is asserted here, in the verdict column, and nowhere else: a timed test on a shared
machine fails for reasons that are not Slipway's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def median(values: list[float]) -> float:
    """The median of the rounds, as every figure is summed up."""
    return statistics.median(values)


@dataclass(frozen=True)
class Target:
    """``op`` (``>=`` or ``<=``) ``value``; of the ratio to the floor when ``of_floor``."""

    op: str
    value: float
    of_floor: bool = False

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}" + (" x floor" if self.of_floor else "")


@dataclass
class Figure:
    """One row: a measurement's rounds and what it is judged against.

    ``worst`` judges the worst round rather than the median (a maximum, a count of lost
    items); ``digits`` is how many decimals the table shows.
    """

    name: str
    unit: str
    rounds: list[float]
    target: Target | None = None
    floor: float | None = None
    worst: bool = False
    digits: int = 0

    @property
    def value(self) -> float:
        if not self.worst:
            return statistics.median(self.rounds)
        higher_is_worse = self.target is None or self.target.op == "<="
        return max(self.rounds) if higher_is_worse else min(self.rounds)

    @property
    def ratio(self) -> float | None:
        return self.value / self.floor if self.floor else None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        judged = self.ratio if self.target.of_floor else self.value
        return "PASS" if judged is not None and self.target.met(judged) else "MISS"

    def cells(self) -> tuple[str, ...]:
        number = f"{{:.{self.digits}f}}"
        rounds = ", ".join(number.format(value) for value in self.rounds)
        summary = ("worst " if self.worst else "") + number.format(self.value)
        floor = number.format(self.floor) if self.floor else ""
        ratio = f"{self.ratio:.2f}" if self.ratio is not None else ""
        target = str(self.target) if self.target else ""
        if self.target and not self.target.of_floor:
            target += f" {self.unit}"
        return (self.name, self.unit, rounds, summary, floor, ratio, target, self.verdict)


HEADER = ("figure", "unit", "rounds", "median", "floor", "ratio", "target", "verdict")


def render(figures: list[Figure]) -> str:
    """The figures as one Markdown table."""
    rows = [HEADER, *(figure.cells() for figure in figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)
