"""Artifacts on the server: the files a job's pipeline asked to keep (``artifacts:``).

A runner sends the files it kept through Redis (a tar in chunks, then a ``job.artifacts``
event); the recorder moves them into the artifact store (``intake``) and records one row
per file (``ci.store.artifacts``); the web serves them (``ci.views.artifacts``, one file
or a zip of all, ``zipped``); retention removes them (``removal``). ``store`` is where the
bytes live, behind a protocol that an S3-compatible store can implement too.

May import: ``ci.store``, ``ci.pipeline``, ``ci.settings``, Redis. Not Flask.
"""

from ci.artifacts.intake import forget, receive, record  # noqa: F401
from ci.artifacts.removal import remove_job_artifacts  # noqa: F401
from ci.artifacts.store import (ArtifactError, ArtifactStore, LocalArtifactStore,  # noqa: F401
                                artifact_store)
