"""Which runner process owns a job's containers and workspace, and whether it still runs.

A runner that dies (SIGKILL, out of memory, a crash) cannot clean up after itself,
and Redis, where its lease lives, may be the very thing that is away. So each job's
containers and network carry the owner in the :data:`LABEL_RUNNER` label and each
workspace a note beside it, and another runner on the same host tells from ``/proc``
alone that the owner is gone: same boot and PID namespace (so the PID means the same
process table), and that PID no longer runs the process that started at that moment
(PIDs are reused; the start time is not).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

#: The owning runner process, as :meth:`RunnerProcess.label` writes it.
LABEL_RUNNER = "slipway.runner"
#: The suffix of the note beside a workspace that names its owner.
NOTE_SUFFIX = ".owner"
_PROC = Path("/proc")


@dataclass(frozen=True)
class RunnerProcess:
    """A process, named so that it stays unambiguous on this host until the next boot.

    Attributes:
        boot: the kernel's boot id (``/proc/sys/kernel/random/boot_id``).
        namespace: the inode of the PID namespace the ``pid`` belongs to.
        pid: the process id.
        started: when the process started, in clock ticks after boot.
    """

    boot: str
    namespace: str
    pid: int
    started: int

    @classmethod
    def current(cls) -> RunnerProcess:
        """This process (computed each time: a worker pool forks children)."""
        pid = os.getpid()
        return cls(_boot_id(), _pid_namespace(), pid, _start_time(pid) or 0)

    @classmethod
    def parse(cls, text: str) -> RunnerProcess | None:
        """The process a :meth:`label` names, or None when ``text`` is not one."""
        match = re.fullmatch(r"([0-9a-f-]+)/(\d+)/(\d+)/(\d+)", text.strip())
        if match is None:
            return None
        boot, namespace, pid, started = match.groups()
        return cls(boot, namespace, int(pid), int(started))

    def label(self) -> str:
        return f"{self.boot}/{self.namespace}/{self.pid}/{self.started}"

    def is_local(self) -> bool:
        """Whether this host can tell if the process runs: same boot, same PID namespace."""
        return self.boot == _boot_id() and self.namespace == _pid_namespace()

    def is_gone(self) -> bool:
        """Whether the process is known to have ended (False when this host cannot tell)."""
        return self.is_local() and _start_time(self.pid) != self.started


def claim(folder: Path) -> None:
    """Write the note saying this process owns ``folder`` (a job's workspace)."""
    _note(folder).write_text(RunnerProcess.current().label())


def remove(folder: Path) -> None:
    """Remove a workspace, then the note naming its owner."""
    shutil.rmtree(folder, ignore_errors=True)
    _note(folder).unlink(missing_ok=True)


def abandoned(parent: Path) -> list[Path]:
    """The workspaces in ``parent`` whose owner is known to be gone."""
    found = []
    for note in parent.glob(f"*{NOTE_SUFFIX}"):
        try:
            owner = RunnerProcess.parse(note.read_text())
        except OSError:
            continue
        if owner is not None and owner.is_gone():
            found.append(note.with_name(note.name[:-len(NOTE_SUFFIX)]))
    return found


def _note(folder: Path) -> Path:
    return folder.with_name(folder.name + NOTE_SUFFIX)


def _boot_id() -> str:
    return (_PROC / "sys/kernel/random/boot_id").read_text().strip()


def _pid_namespace() -> str:
    return re.sub(r"\D", "", os.readlink(_PROC / "self/ns/pid"))


def _start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat``; None when no such process runs (or only its zombie)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[19])
