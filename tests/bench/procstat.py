"""CPU time and memory of the processes a measurement runs, read from /proc.

The breakdowns under "Where the time goes" come from here: how many CPU milliseconds each
of a stack's processes spent over a round says which one a missed target waits on, without
a profiler in the processes measured.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 on); None once it exited."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def sessions_cpu(sessions: dict[str, int]) -> Counter[str]:
    """CPU seconds (user + system, children reaped included) spent so far by the
    processes of each named session (a process started with ``start_new_session``)."""
    names = {sid: name for name, sid in sessions.items()}
    spent: Counter[str] = Counter()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (fields := _stat(entry.name)) is None:
            continue
        name = names.get(int(fields[3]))
        if name is not None:
            # utime, stime, cutime, cstime are fields 14-17, here 11-14.
            spent[name] += sum(int(value) for value in fields[11:15]) / TICK
    return spent


def own_cpu() -> float:
    """CPU seconds this process (the bench's client) has spent so far."""
    times = os.times()
    return times.user + times.system


def session_rss(session: int, word: str) -> list[tuple[int, int, int]]:
    """(pid, parent pid, resident bytes) of the processes of ``session`` whose command
    line holds ``word``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (fields := _stat(entry.name)) is None:
            continue
        if int(fields[3]) != session:
            continue
        try:
            command = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if word.encode() in command:
            found.append((int(entry.name), int(fields[1]), int(fields[21]) * PAGE))
    return found


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat, not idle or
    waiting for I/O): what other tenants and unnamed processes (PostgreSQL, the Docker
    engine, containers) spend shows as the difference from the named ones."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


class CpuMeter:
    """CPU seconds the named sessions and the bench itself spend between two reads."""

    def __init__(self, sessions: dict[str, int]) -> None:
        self.sessions = sessions
        self.before = sessions_cpu(sessions)
        self.client_before = own_cpu()
        self.machine_before = machine_cpu()

    def spent(self) -> dict[str, float]:
        """CPU seconds by session name since the meter started, the bench's as ``client``,
        and the rest of the machine's busy time as ``elsewhere``."""
        after = sessions_cpu(self.sessions)
        spent = {name: after[name] - self.before[name] for name in self.sessions}
        spent["client"] = own_cpu() - self.client_before
        busy = machine_cpu() - self.machine_before
        spent["elsewhere"] = max(0.0, busy - sum(spent.values()))
        return spent


def describe(spent: dict[str, float], per: int, unit: str) -> str:
    """CPU spent, as milliseconds per ``unit`` for each process, busiest first."""
    parts = [f"{name} {milliseconds:.2f}" if milliseconds < 10 else f"{name} {milliseconds:.0f}"
             for name, milliseconds in sorted(((name, seconds * 1000 / per)
                                               for name, seconds in spent.items()),
                                              key=lambda item: -item[1])]
    return f"CPU ms per {unit}: " + ", ".join(parts)
