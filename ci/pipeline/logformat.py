"""The entries of a job's log stream, as written by runners and read by the server.

Each Redis stream entry has a kind ``t`` and a payload ``d``:

- ``step``: a step begins; ``s`` is its 0-based index, ``d`` its name.
- ``out``: output of step ``s`` (stdout and stderr interleaved), UTF-8 text.
- ``info``: a line from Slipway itself (cloning, pulling, exit codes, errors); ``s`` is
  the step it concerns, -1 before the first step.
- ``end``: the job finished; ``d`` is its status. Nothing follows it.

Sections numbered :data:`SERVICE_SECTIONS_START` and below hold the output of the
job's services (``step`` entry ``service NAME``), written after the steps ran.
"""

from __future__ import annotations

from dataclasses import dataclass

STEP, OUT, INFO, END = "step", "out", "info", "end"
SERVICE_SECTIONS_START = -2


@dataclass(frozen=True)
class LogEntry:
    """One decoded log stream entry; ``id`` is the Redis stream id (``"1700000000000-0"``)."""

    id: str
    kind: str
    step: int
    data: str

    @classmethod
    def from_fields(cls, entry_id: bytes | str, fields: dict) -> LogEntry:
        def text(value: bytes | str | None) -> str:
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace")
            return value or ""

        get = lambda key: fields.get(key.encode(), fields.get(key))  # noqa: E731
        return cls(id=text(entry_id), kind=text(get("t")), step=int(text(get("s")) or -1),
                   data=text(get("d")))

    def to_fields(self) -> dict[str, str]:
        return {"t": self.kind, "s": str(self.step), "d": self.data}


def to_text(entries: list[LogEntry]) -> str:
    """The plain-text log of ``entries``, as served at ``log.txt``."""
    parts: list[str] = []
    for entry in entries:
        if entry.kind == STEP and entry.step <= SERVICE_SECTIONS_START:
            parts.append(f"\n--- {entry.data} ---\n")
        elif entry.kind == STEP:
            parts.append(f"\n--- step {entry.step + 1}: {entry.data} ---\n")
        elif entry.kind == OUT:
            parts.append(entry.data)
        elif entry.kind == INFO:
            parts.append(f"[slipway] {entry.data}\n")
        elif entry.kind == END:
            parts.append(f"\n--- job {entry.data} ---\n")
    return "".join(parts).lstrip("\n")
