"""Removing what jobs kept: the bytes from the store and the rows that name them.

Retention (``slipway prune``) calls :func:`remove_job_artifacts` for the jobs it prunes.
"""

from __future__ import annotations

from ci import store
from ci.artifacts.store import artifact_store
from ci.settings import Settings
from ci.store import Session


def remove_job_artifacts(session: Session, settings: Settings, job_ids: list[int]) -> int:
    """Remove the kept files of every attempt of ``job_ids``; returns the bytes freed.

    The files go first, then the rows are deleted in the caller's transaction: the caller
    commits (with whatever marks the jobs pruned). A process killed in between leaves rows
    whose files are gone, which the pages answer as no longer stored; calling this again
    for the same jobs finishes the work (their files then free 0 bytes).
    """
    files = artifact_store(settings)
    freed = sum(files.remove_job(job_id) for job_id in job_ids)
    store.delete_artifacts(session, job_ids)
    return freed
