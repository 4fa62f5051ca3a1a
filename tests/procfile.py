"""The Procfile's command lines: what ``make run`` starts, read by the tests and the bench so
that they run the very same processes (including any added later)."""

from __future__ import annotations

from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def read_procfile() -> dict[str, str]:
    """The Procfile's command lines by process name (comments and blank lines skipped)."""
    processes = {}
    for line in PROCFILE.read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() and not line.lstrip().startswith("#"):
            processes[name.strip()] = command.strip()
    return processes
