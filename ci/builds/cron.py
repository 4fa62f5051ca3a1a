"""Cron expressions in a time zone: whether one is usable, and the times it names.

croniter reads the expressions, counting in the schedule's own time zone, so that
``0 3 * * *`` in Europe/Paris stays at three o'clock across daylight saving time. Times go
in and come out as naive UTC, as the database keeps them (an aware time is taken as it is).
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

from ci.store import StoreError

DEFAULT_TIME_ZONE = "UTC"
#: What the database's column holds; real expressions are a few dozen characters.
MAX_EXPRESSION_CHARS = 100
FIELDS = "minute hour day-of-month month day-of-week"
EXAMPLES = "e.g. '0 3 * * *' (03:00 every day) or '*/30 8-18 * * 1-5' (every half hour, weekdays)"


def check_expression(expression: str) -> str:
    """``expression`` with its spaces made single, when croniter reads it as five fields or
    a nickname (``@daily``) and it names a time that comes.

    Five fields only: a sixth (seconds, for croniter) would ask for more than the
    recorders' look every 15 seconds can give.

    Raises:
        StoreError: saying what is wrong and what to write instead.
    """
    expression = " ".join(expression.split())
    if not expression:
        raise StoreError(f"the schedule is empty; write five fields ({FIELDS}), {EXAMPLES}")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise StoreError(f"the schedule is {len(expression)} characters long; at most "
                         f"{MAX_EXPRESSION_CHARS}, {EXAMPLES}")
    fields = len(expression.split())
    if not expression.startswith("@") and fields != 5:
        raise StoreError(f"{expression!r} has {fields} field{'s' * (fields != 1)}; a schedule "
                         f"has five ({FIELDS}), {EXAMPLES}")
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=timezone.utc)).get_next(datetime)
    except CroniterBadDateError:
        raise StoreError(f"{expression!r} names no time that ever comes (such as 30 "
                         "February)") from None
    except CroniterError as exc:
        raise StoreError(f"{expression!r} is not a cron schedule ({exc}); write five fields "
                         f"({FIELDS}) or @hourly, @daily, @weekly, @monthly, @yearly, "
                         f"{EXAMPLES}") from None
    return expression


@cache
def _zones_by_lower_name() -> dict[str, str]:
    """Every IANA time zone name the system knows, by its lower-case spelling."""
    return {name.lower(): name for name in available_timezones()}


def check_time_zone(name: str) -> str:
    """The IANA name of time zone ``name`` (any case; empty: UTC).

    Looked up among the names the system has, never opened as given: a name is a path
    under the zone database, and ``../`` must not reach anything else.

    Raises:
        StoreError: no such time zone.
    """
    found = _zones_by_lower_name().get((name.strip() or DEFAULT_TIME_ZONE).lower())
    if found is None:
        raise StoreError(f"unknown time zone {name!r}; use a name of the IANA time zone "
                         "database, e.g. UTC, Europe/Paris or America/New_York")
    return found


def next_times(expression: str, time_zone: str, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` times of a checked expression strictly after ``after``."""
    times = croniter(expression, _aware(after).astimezone(ZoneInfo(time_zone)))
    return [naive_utc(times.get_next(datetime)) for _ in range(count)]


def due_and_following(expression: str, time_zone: str,
                      now: datetime) -> tuple[datetime, datetime]:
    """The newest time at or before ``now``, and the first after it."""
    following = next_times(expression, time_zone, now, 1)[0]
    newest = croniter(expression, _aware(following).astimezone(ZoneInfo(time_zone)))
    return naive_utc(newest.get_prev(datetime)), following


def shown(time: datetime, time_zone: str) -> str:
    """``time`` as a person in ``time_zone`` reads it: ``2025-03-04 03:00 CET``."""
    return _aware(time).astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M %Z")


def naive_utc(time: datetime) -> datetime:
    """``time`` as the database keeps times: naive, in UTC."""
    return _aware(time).astimezone(timezone.utc).replace(tzinfo=None)


def _aware(time: datetime) -> datetime:
    return time.replace(tzinfo=timezone.utc) if time.tzinfo is None else time
