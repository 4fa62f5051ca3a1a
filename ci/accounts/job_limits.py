"""Per-repository job limits: a repository may differ from the defaults, never above the
maxima an administrator set (``SLIPWAY_MAX_JOB_*``)."""

from __future__ import annotations

import re
from dataclasses import replace

from ci import store
from ci.pipeline.spec import Limits
from ci.settings import Settings
from ci.store import Session, StoreError
from ci.store.models import Repo

MEMORY = re.compile(r"(\d+(?:\.\d+)?)([kmg]?)b?", re.IGNORECASE)
UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def memory_bytes(value: str) -> int:
    """``"512m"`` → 536870912; raises :class:`StoreError` for anything else."""
    match = MEMORY.fullmatch(value.strip())
    if not match:
        raise StoreError(f"{value!r} is not an amount of memory; write e.g. 512m or 4g")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def set_limits(session: Session, settings: Settings, repo: Repo, memory: str | None = None,
               cpus: float | None = None, pids: int | None = None) -> Limits:
    """Change a repository's limits (None keeps one as it is) and commit; returns them."""
    top = settings.max_limits
    if memory is not None and memory_bytes(memory) > memory_bytes(top.memory):
        raise StoreError(f"memory {memory} is above the maximum of {top.memory} "
                         "(SLIPWAY_MAX_JOB_MEMORY)")
    if memory is not None and memory_bytes(memory) < 6 * 1024 ** 2:
        raise StoreError(f"memory {memory} is below Docker's minimum of 6m")
    if cpus is not None and not 0 < cpus <= top.cpus:
        raise StoreError(f"cpus {cpus} must be above 0 and at most {top.cpus} "
                         "(SLIPWAY_MAX_JOB_CPUS)")
    if pids is not None and not 16 <= pids <= top.pids:
        raise StoreError(f"pids {pids} must be between 16 and {top.pids} (SLIPWAY_MAX_JOB_PIDS)")
    store.set_repo_limits(session, repo, memory.strip().lower() if memory is not None else None,
                          cpus, pids)
    return limits_for(settings, repo)


def limits_for(settings: Settings, repo: Repo) -> Limits:
    """The limits a job of ``repo`` runs with: its own where set, else the defaults."""
    return replace(settings.limits,
                   **{key: value for key, value in (("memory", repo.job_memory),
                                                    ("cpus", repo.job_cpus),
                                                    ("pids", repo.job_pids))
                      if value is not None})
