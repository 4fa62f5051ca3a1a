"""The filters a list of builds takes from its query string (``branch``, ``event``,
``status``, ``page``), read one way for the repository page and the JSON API, so both
accept the same values and refuse the same ones with the same words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ci import store
from ci.pipeline.events import EVENTS
from ci.pipeline.status import Status


@dataclass(frozen=True)
class BuildFilters:
    """Which builds a list shows; None: any."""

    branch: str | None = None
    event: str | None = None
    status: Status | None = None

    def query(self) -> dict[str, str]:
        """The filters that are set, as query-string arguments (for links that keep them)."""
        return {name: str(value) for name, value in
                (("branch", self.branch), ("event", self.event), ("status", self.status))
                if value is not None}

    def __bool__(self) -> bool:
        return bool(self.query())


class BadFilter(ValueError):
    """Query arguments a list cannot use; ``problems`` says what is wrong with each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_filters(args: Mapping[str, str]) -> BuildFilters:
    """The filters in ``args``; an empty argument is no filter.

    Raises:
        BadFilter: an event or status that builds never have, or a branch name git
            would refuse; every such argument is named, not just the first.
    """
    problems: list[str] = []
    filters = _filters(args, problems)
    if problems:
        raise BadFilter(problems)
    return filters


def parse_page(args: Mapping[str, str]) -> int:
    """The page number asked for (1 when none).

    Raises:
        BadFilter: the page is not a whole number from 1 on.
    """
    problems: list[str] = []
    page = _page(args, problems)
    if problems:
        raise BadFilter(problems)
    return page


def parse_list_query(args: Mapping[str, str]) -> tuple[BuildFilters, int]:
    """The filters and the page number in ``args``.

    Raises:
        BadFilter: naming every argument that is wrong.
    """
    problems: list[str] = []
    filters, page = _filters(args, problems), _page(args, problems)
    if problems:
        raise BadFilter(problems)
    return filters, page


def _filters(args: Mapping[str, str], problems: list[str]) -> BuildFilters:
    branch = args.get("branch") or None
    if branch is not None:
        try:
            store.validate_branch(branch)
        except store.StoreError as exc:
            problems.append(f"branch: {exc}")
    event = _one_of(args, "event", EVENTS, problems)
    status = _one_of(args, "status", tuple(Status), problems)
    return BuildFilters(branch=branch, event=event, status=Status(status) if status else None)


def _one_of(args: Mapping[str, str], name: str, allowed: tuple[str, ...],
            problems: list[str]) -> str | None:
    value = args.get(name) or None
    if value is not None and value not in allowed:
        problems.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
        return None
    return value


def _page(args: Mapping[str, str], problems: list[str]) -> int:
    text = args.get("page") or "1"
    try:
        page = int(text)
    except ValueError:
        page = 0
    if page < 1:
        problems.append(f"page {text!r} is not a page number; pages count from 1")
    return page
