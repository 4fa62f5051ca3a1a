"""Per-repository job limits: a repository may differ from the defaults, never above the
maxima an administrator set (``SLIPWAY_MAX_JOB_*``), and may run fewer of its jobs at once
than the administrator allows (``SLIPWAY_MAX_JOBS_PER_REPO``; ``ci.builds.fair_queue``)."""

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
WHOLE = re.compile(r"-?[0-9]+")


def memory_bytes(value: str) -> int:
    """``"512m"`` → 536870912; raises :class:`StoreError` for anything else."""
    match = MEMORY.fullmatch(value.strip())
    if not match:
        raise StoreError(f"{value!r} is not an amount of memory; write e.g. 512m or 4g")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


#: What ``max_jobs`` is given as to follow the administrator's maximum again.
DEFAULT_MAX_JOBS = ("", "default")


def parse_max_jobs(settings: Settings, text: str) -> int | None:
    """How many jobs of a repository may run at once, as typed: a whole number from 1 to
    the administrator's maximum, or ``default`` (or nothing): that maximum (None).

    Raises:
        StoreError: anything else, saying what to type.
    """
    value = text.strip().lower()
    if value in DEFAULT_MAX_JOBS:
        return None
    if not WHOLE.fullmatch(value):
        raise StoreError(f"jobs at once {text!r} is not a whole number; write e.g. 2, or "
                         "default for the administrator's maximum")
    number, top = int(value), settings.max_jobs_per_repo
    if number < 1:
        raise StoreError(f"jobs at once {number} must be at least 1; write default to "
                         "follow the administrator's maximum")
    if top and number > top:
        raise StoreError(f"jobs at once {number} is above the maximum of {top} "
                         "(SLIPWAY_MAX_JOBS_PER_REPO)")
    return number


def max_jobs_for(settings: Settings, repo: Repo) -> int:
    """How many of ``repo``'s jobs may run at once: its own limit where set, never above the
    administrator's maximum (lowered since, say); 0 when neither sets one."""
    top, own = settings.max_jobs_per_repo, repo.max_concurrent_jobs
    if own is None:
        return top
    return min(own, top) if top else own


def set_limits(session: Session, settings: Settings, repo: Repo, memory: str | None = None,
               cpus: float | None = None, pids: int | None = None,
               max_jobs: str | None = None) -> Limits:
    """Change a repository's limits (None keeps one as it is) and commit; returns them.

    ``max_jobs`` is typed text (:func:`parse_max_jobs`): every value is checked before any
    is stored, so a refusal changes nothing.
    """
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
    if max_jobs is not None:
        store.set_repo_max_jobs(session, repo, parse_max_jobs(settings, max_jobs))
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
