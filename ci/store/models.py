"""Database tables: repositories, builds, jobs (and their earlier attempts) and steps; users
and what they may do; schedules; notifications; artifacts.

SQL is the source of truth for everything a user needs later. The schema itself
is created and changed only by the Alembic migrations in ``ci/migrations``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column, relationship

from ci.pipeline.status import Status


def utcnow() -> datetime:
    """Timestamps are stored as naive UTC (SQLite keeps no time zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Repo(Base):
    """A registered repository: where to clone it from and how to trust its webhooks."""

    __tablename__ = "repos"

    id: Mapped[int] = mapped_column(primary_key=True)
    forge: Mapped[str] = mapped_column(String(20))
    full_name: Mapped[str] = mapped_column(String(200), unique=True)
    clone_url: Mapped[str] = mapped_column(Text)
    #: Encrypted (``ci.accounts.webhook_secrets``) when ``webhook_secret_encrypted``; rows
    #: from before revision 0007 hold it in clear until ``slipway db upgrade`` encrypts them.
    webhook_secret: Mapped[str] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[bool] = mapped_column(default=False)
    default_branch: Mapped[str] = mapped_column(String(255), default="main")
    #: The token commit statuses are reported with, encrypted (``ci.accounts.crypto``);
    #: None: no reports.
    forge_token: Mapped[str | None] = mapped_column(Text)
    #: The forge's API base URL when not the forge's default (GitHub Enterprise, own GitLab, Gitea).
    api_url: Mapped[str | None] = mapped_column(Text)
    last_build_number: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Only users with access see a private repository; anyone sees a public one.
    private: Mapped[bool] = mapped_column(default=False)
    #: Resource limits of this repository's jobs, when they differ from the defaults;
    #: never above the administrator's maxima (``ci.accounts.job_limits``).
    job_memory: Mapped[str | None] = mapped_column(String(20))
    job_cpus: Mapped[float | None] = mapped_column(Float)  # as migration 0006 made it
    job_pids: Mapped[int | None]
    #: How many of its jobs may run at once, when less than the administrator's maximum
    #: (``SLIPWAY_MAX_JOBS_PER_REPO``); None: that maximum (``ci.builds.fair_queue``).
    max_concurrent_jobs: Mapped[int | None]

    builds: Mapped[list[Build]] = relationship(back_populates="repo", cascade="all, delete-orphan",
                                               passive_deletes=True)
    secrets: Mapped[list[Secret]] = relationship(order_by="Secret.name",
                                                 cascade="all, delete-orphan",
                                                 passive_deletes=True)

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


class Build(Base):
    """One trigger of one commit: a push, a tag, a pull request update or a manual run."""

    __tablename__ = "builds"
    __table_args__ = (
        UniqueConstraint("repo_id", "number"),
        Index("ix_builds_repo_branch", "repo_id", "branch", "number"),
        Index("ix_builds_repo_pr", "repo_id", "pr_number", "number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    number: Mapped[int]
    status: Mapped[Status] = mapped_column(String(20), default=Status.QUEUED)
    event: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(255))
    branch: Mapped[str | None] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(255))
    pr_number: Mapped[int | None]
    sha: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(255), default="")
    compare_url: Mapped[str | None] = mapped_column(Text)
    #: A pull request from another repository: its builds never get secrets.
    fork: Mapped[bool] = mapped_column(default=False)
    delivery: Mapped[str | None] = mapped_column(String(120), unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    repo: Mapped[Repo] = relationship(back_populates="builds")
    jobs: Mapped[list[Job]] = relationship(back_populates="build", order_by="Job.number",
                                           cascade="all, delete-orphan", passive_deletes=True)


class Job(Base):
    """One cell of a build's matrix: one runner job, one container."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("build_id", "number"), Index("ix_jobs_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"))
    number: Mapped[int]
    name: Mapped[str] = mapped_column(String(255), default="default")
    #: The matrix cell, as JSON (``{"PYTHON": "3.12"}``); ``{}`` without a matrix.
    cell: Mapped[str] = mapped_column(Text, default="{}")
    allow_failure: Mapped[bool] = mapped_column(default=False)
    status: Mapped[Status] = mapped_column(String(20), default=Status.QUEUED)
    attempt: Mapped[int] = mapped_column(default=1)
    #: The sequence number of the last runner event of this attempt that was applied.
    event_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    #: How many times the runner running this job was lost; one loss is retried.
    runner_losses: Mapped[int] = mapped_column(default=0, server_default="0")
    image: Mapped[str | None] = mapped_column(String(255))
    runner: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    log_archived: Mapped[bool] = mapped_column(default=False)
    #: When retention removed the job's log and artifacts (``slipway prune``); None: kept.
    pruned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    build: Mapped[Build] = relationship(back_populates="jobs")
    steps: Mapped[list[Step]] = relationship(back_populates="job", order_by="Step.number",
                                             cascade="all, delete-orphan", passive_deletes=True)
    #: The attempts a rerun or a retry replaced, oldest first (``ci.store.history``).
    earlier_attempts: Mapped[list[JobAttempt]] = relationship(
        order_by="JobAttempt.number", cascade="all, delete-orphan", passive_deletes=True)
    #: The files the pipeline kept (``artifacts:``), of every attempt, by path.
    artifacts: Mapped[list[Artifact]] = relationship(
        order_by="(Artifact.attempt, Artifact.path)", cascade="all, delete-orphan",
        passive_deletes=True)


class JobAttempt(Base):
    """An attempt of a job that a later one replaced, as it ended: a rerun or a retry
    resets the job's own row for the next attempt, and this keeps what the earlier showed."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int]
    status: Mapped[Status] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(String(255))
    image: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: Its steps, as they ended: ``number``, ``name``, ``status``, ``exit_code`` and ISO
    #: ``started_at`` / ``finished_at`` each. Written once, never queried by step.
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Secret(Base):
    """A named value for a repository's steps, stored encrypted (see ``ci.accounts.crypto``)."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("repo_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Step(Base):
    """One ``run`` script of a job, with its exit code and timing."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int]
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[Status] = mapped_column(String(20), default=Status.QUEUED)
    exit_code: Mapped[int | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship(back_populates="steps")


class User(Base):
    """Someone who signs in to act on builds; an admin may do anything anywhere."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    #: A slow salted hash (werkzeug's scrypt), never the password.
    password_hash: Mapped[str] = mapped_column(Text)
    admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A secret that authenticates API requests as its user; only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    #: The token's first characters, so a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


class RepoAccess(Base):
    """What one user may do with one repository: ``read`` or ``write``."""

    __tablename__ = "repo_access"

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    permission: Mapped[str] = mapped_column(String(10))

    user: Mapped[User] = relationship()


class Schedule(Base):
    """A cron expression that builds a branch's head at each time it names
    (``ci.builds.schedules``). The next time is kept here, not in a process, so a restart
    or a second recorder picks up where the last one stopped."""

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_repo", "repo_id"),
                      Index("ix_schedules_next_due", "next_due"))

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    branch: Mapped[str] = mapped_column(String(255))
    #: Five cron fields (``0 3 * * *``) or a nickname (``@daily``), as croniter reads them.
    expression: Mapped[str] = mapped_column(String(100))
    #: The IANA time zone the expression counts in (``Europe/Paris``).
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(default=True)
    #: Who added it: a user's name, or who ran the CLI.
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The next time it builds (UTC); a recorder claims it by moving it on.
    next_due: Mapped[datetime]
    #: The last time it was due and claimed, and the last build it made (None: none yet,
    #: or removed since); ``error`` says when that time made none.
    last_slot: Mapped[datetime | None]
    last_build_id: Mapped[int | None] = mapped_column(
        ForeignKey("builds.id", ondelete="SET NULL"))
    #: Why its last time made no build (the branch is gone, the remote did not answer).
    error: Mapped[str | None] = mapped_column(Text)

    repo: Mapped[Repo] = relationship()
    last_build: Mapped[Build | None] = relationship()


class NotificationEmail(Base):
    """An address mailed when a build of its repository fails or is fixed
    (``ci.notifications``)."""

    __tablename__ = "notification_emails"
    __table_args__ = (UniqueConstraint("repo_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationHook(Base):
    """A URL that gets a signed JSON POST when a build of its repository finishes."""

    __tablename__ = "notification_hooks"
    __table_args__ = (Index("ix_notification_hooks_repo", "repo_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    #: The key of the body's HMAC, encrypted (``ci.accounts.crypto``): the sender needs it.
    secret: Mapped[str] = mapped_column(Text)
    #: Which builds it hears of: ``always``, ``failure`` or ``fixed``.
    events: Mapped[str] = mapped_column(String(10), default="always")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """One file a job's pipeline kept (``artifacts:``); its bytes are in the artifact store
    (``ci.artifacts``), under the job, the attempt and this path."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "attempt", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    #: Relative to the workspace, with ``/`` between its parts (``dist/app.whl``).
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Relationships are resolved now rather than on first use, so that instances built
# straight from rows (``ci.store.intake``) have every attribute in place.
configure_mappers()
