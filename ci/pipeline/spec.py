"""The job payload the server sends and the events a runner sends back.

A :class:`JobSpec` is self-contained: a runner needs nothing but it, Redis and a
Docker engine to run the job. :class:`Event` is what the runner reports; the
recorder applies events to the database. Both travel as plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

#: What a job runs with when neither the installation nor its pipeline says otherwise.
DEFAULT_IMAGE = "slipway/python:3.11"
DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_LOG_LIMIT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Resource limits of one build container."""

    memory: str = "2g"
    cpus: float = 2.0
    pids: int = 1024


@dataclass(frozen=True)
class JobSpec:
    """Everything a runner needs to run one job of one build.

    Args:
        job_id: the job's database id; the key of its log stream and lease.
        attempt: which attempt of the job this is; events of older attempts are
            rejected by the recorder.
        build_id: the build's database id (for labels and the environment).
        repo: ``owner/name``.
        clone_url: where to clone from (https, ssh, a local path or ``file://``).
        sha: the exact commit to check out.
        ref: the git ref the build was triggered for (``refs/heads/main``).
        event: ``push``, ``tag``, ``pull_request``, ``manual`` or ``cron``.
        branch: the branch ``when`` filters match (a pull request's base branch).
        default_branch: the repository's default branch, whose cache a new branch
            starts from.
        plan: this is the build's first job: it reads the pipeline, decides whether
            the build runs at all and which matrix cells it has (reported as
            ``build.planned``), and runs the first cell itself.
        cell: the matrix cell this job runs (``{}`` without a matrix).
        env: variables Slipway sets for every step (``CI``, ``SLIPWAY_*``).
        default_image: image used when ``.slipway.yml`` names none.
        timeout_seconds: the longest a job may run; ``.slipway.yml`` may ask for
            less, never more.
        limits: container resource limits.
        log_limit_bytes: output beyond this is dropped (the log says so), so a
            runaway step cannot fill Redis or the disk.
        sealed_secrets: the repository's secrets, for a trusted build only, sealed
            with the installation's key (JSON inside a Fernet token) so that Redis
            never holds them in clear; the runner opens them, gives each step the
            ones it names, and masks their values in the log.
        secrets_withheld: why this build has no secrets (a step naming one fails
            with this sentence), or None.
        repo_id: the repository's database id: the fair queue counts the job against
            it until the job ends (``ci.pipeline.fair_queue``).
    """

    job_id: int
    attempt: int
    build_id: int
    repo: str
    clone_url: str
    sha: str
    ref: str
    event: str
    branch: str | None = None
    default_branch: str = "main"
    plan: bool = False
    cell: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    default_image: str = DEFAULT_IMAGE
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    limits: Limits = field(default_factory=Limits)
    log_limit_bytes: int = DEFAULT_LOG_LIMIT_BYTES
    sealed_secrets: str = ""
    secrets_withheld: str | None = None
    repo_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Shallow, not dataclasses.asdict: this runs for every webhook, and asdict
        # deep-copies every value.
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["limits"] = asdict(self.limits)
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        values = dict(data)
        values["limits"] = Limits(**values.get("limits", {}))
        return cls(**values)


class EventType(str, Enum):
    """What a runner reports about a job, in the order it happens."""

    JOB_STARTED = "job.started"
    BUILD_PLANNED = "build.planned"
    STEPS_PLANNED = "job.steps"
    STEP_STARTED = "step.started"
    STEP_FINISHED = "step.finished"
    JOB_ARTIFACTS = "job.artifacts"
    JOB_FINISHED = "job.finished"


@dataclass(frozen=True)
class Event:
    """One runner event. ``data`` depends on the type:

    - ``job.started``: ``runner`` (its name)
    - ``build.planned``: ``cells`` (the matrix cells, this job's first) and
      ``allow_failures`` (one boolean per cell)
    - ``job.steps``: ``steps`` (list of step names), ``image``
    - ``step.started``: ``step`` (0-based index)
    - ``step.finished``: ``step``, ``status``, ``exit_code``
    - ``job.artifacts``: ``key`` (the Redis list of the kept files' tar,
      :func:`~ci.pipeline.keys.artifact_chunks`), ``chunks`` (how many it holds) and
      ``files`` (one ``{path, size, sha256}`` per file); sent before ``job.finished``
    - ``job.finished``: ``status``, ``error`` (a sentence, or ``None``)
    """

    type: EventType
    job_id: int
    attempt: int
    #: When it happened (seconds since the epoch, the runner's clock).
    at: float
    data: dict[str, Any] = field(default_factory=dict)
    #: Its place among the events of its attempt: 1, 2, 3, … as the runner sent them, so
    #: that recorders reading one stream side by side apply each once and in order.
    seq: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.type.value, "job_id": self.job_id, "attempt": self.attempt,
             "seq": self.seq, "at": self.at, "data": self.data}
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        raw = json.loads(text)
        return cls(
            type=EventType(raw["type"]),
            job_id=int(raw["job_id"]),
            attempt=int(raw["attempt"]),
            at=float(raw["at"]),
            data=dict(raw.get("data") or {}),
            seq=int(raw.get("seq") or 0),
        )
