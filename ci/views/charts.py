"""The duration chart above a repository's builds: one bar per build, as tall as the
build took, coloured by its result, drawn by the server as inline SVG (no script).

Only the geometry is computed here; ``templates/_duration_chart.html`` draws it. Bars
live in a 0–100 tall box stretched to the chart's size, so a y coordinate is also a
percentage of the chart's height, which is where the gridlines' labels (kept out of
the stretched box, so text is never distorted) are placed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from ci.pipeline.durations import format_duration, human_duration
from ci.pipeline.status import Status
from ci.store.models import Build
from ci.views.present import seconds_between

#: How many builds a chart shows at most; fewer fill its left end.
SLOTS = 50
#: Width of one build's slot; its bar leaves a gap on either side.
SLOT_WIDTH = 10
BAR_WIDTH = 8
#: The box's height, and where the scale's top is (room above it for the top label).
HEIGHT = 100
TOP = 14
#: The lowest a bar is drawn, so that a build that took no time still has a bar to click.
MIN_BAR = 2
#: Gridline steps people read at a glance: 1s … 30s, 1m … 30m, 1h … 12h, 1d.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 3 * 3600,
         6 * 3600, 12 * 3600, 24 * 3600)


@dataclass(frozen=True)
class Bar:
    """One build: its rectangle in the box, the class of its colour, its link and tooltip."""

    x: float
    y: float
    width: float
    height: float
    status: str
    href: str
    title: str


@dataclass(frozen=True)
class Gridline:
    """A horizontal line at ``y`` (percent from the top) labelled with the duration it marks."""

    y: float
    label: str


@dataclass(frozen=True)
class DurationChart:
    bars: list[Bar]
    gridlines: list[Gridline]
    width: int = SLOTS * SLOT_WIDTH
    height: int = HEIGHT


def scale(longest: float) -> tuple[int, int]:
    """The gridline step and how many gridlines (1 or 2) a chart whose longest bar is
    ``longest`` seconds needs: the lowest top of the scale (the top gridline) a round
    step or two of them reach; two lines when that is as low."""
    one = next((step for step in STEPS if longest <= step), None)
    two = next((step for step in STEPS if longest <= 2 * step),
               3600 * math.ceil(longest / 7200))
    return (one, 1) if one is not None and one < 2 * two else (two, 2)


def duration_chart(builds: Sequence[Build], link: Callable[[Build], str]) -> DurationChart:
    """The chart of ``builds`` (oldest first, at most :data:`SLOTS`), each bar linked to
    ``link(build)``; a running build's bar is as long as it has run so far."""
    shown = list(builds)[-SLOTS:]
    seconds = [seconds_between(build.started_at, build.finished_at) for build in shown]
    step, lines = scale(max((value or 0 for value in seconds), default=0))
    top = step * lines
    bars = []
    for slot, (build, taken) in enumerate(zip(shown, seconds)):
        height = max((taken or 0) / top * (HEIGHT - TOP), MIN_BAR)
        bars.append(Bar(x=slot * SLOT_WIDTH + (SLOT_WIDTH - BAR_WIDTH) / 2, y=HEIGHT - height,
                        width=BAR_WIDTH, height=height, status=str(build.status),
                        href=link(build), title=_tooltip(build, taken)))
    gridlines = [Gridline(y=HEIGHT - step * count / top * (HEIGHT - TOP),
                          label=format_duration(step * count))
                 for count in range(1, lines + 1)]
    return DurationChart(bars=bars, gridlines=gridlines)


def _tooltip(build: Build, taken: float | None) -> str:
    """``#12 passed · 2m 14s``: what a bar's ``<title>`` says."""
    if taken is None:
        return f"#{build.number} {build.status}"
    so_far = "" if Status(build.status).finished else " so far"
    return f"#{build.number} {build.status} · {human_duration(taken)}{so_far}"
