"""Durations as people write them (``1h30m`` in ``.slipway.yml`` and settings) and read
them (``2m 14s`` on build pages and in commit statuses)."""

from __future__ import annotations

import re

from ci.pipeline.document import quote

_DURATION_RE = re.compile(r"(\d{1,9})|(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?", re.ASCII)


def parse_duration(value: str | int) -> int:
    """Turn a duration as users write it in ``.slipway.yml`` into seconds.

    Args:
        value: seconds as an int or digits (``90``, ``"90"``), or numbers with the
            units ``h``, ``m`` and ``s`` in that order (``"10m"``, ``"1h30m"``).

    Returns:
        The duration in seconds; zero is allowed here, callers decide the range.

    Raises:
        ValueError: the value is negative or not in this form; the message says how
            to write one.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or not any(match.groups()):
        raise ValueError(
            f"{quote(str(value))} is not a duration; write seconds like `90`, or numbers "
            "with units h, m and s like `10m`, `1h30m` or `45s`"
        )
    plain, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return plain + hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """Seconds as users write them, e.g. ``1h30m``, ``24h``, ``45s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{number}{unit}" for number, unit in parts if number) or "0s"


def human_duration(seconds: float | None, tenths: bool = True) -> str:
    """How long something took, for people: ``4.2s``, ``15s``, ``2m 14s``, ``1h 05m``.

    Args:
        seconds: the time taken; None when it has not started (shown as ``–``).
        tenths: show tenths below 10 seconds (pages); commit statuses show whole
            seconds only, as a forge's status list is no place for precision.
    """
    if seconds is None:
        return "–"
    if tenths and seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
