"""Handing jobs to runners through RQ, fairly, and re-handing what Redis lost.

Each job waits in its repository's line until the fair queue admits it to RQ's queue
(``ci.builds.fair_queue``), so that one repository's burst does not starve the others.

The database is the source of truth: a job is ``queued`` in SQL before it is
enqueued, so when Redis is down or loses data, :func:`reconcile` finds the jobs
Redis does not hold and enqueues them again, and finds running jobs whose runner
stopped renewing its lease: each gets one more attempt on another runner, and is
errored "runner lost" only if that runner is lost too. It also releases the admissions
that dead processes left counted against a repository's limit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

from ci import store
from ci.accounts import repo_secrets
from ci.accounts.job_limits import limits_for, max_jobs_for
from ci.builds import changes, fair_queue
from ci.logs import storage
from ci.pipeline import fair_queue as admission
from ci.pipeline import keys
from ci.pipeline.spec import JobSpec
from ci.pipeline.status import Status
from ci.settings import Settings
from ci.store import Session
from ci.store.models import Build, Job, Repo, utcnow

log = logging.getLogger(__name__)

#: How long a queued job may go unseen by a runner before it is handed out again.
REQUEUE_GRACE = timedelta(seconds=10)
WAITING_RQ_STATES = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def job_spec(settings: Settings, repo: Repo, build: Build, job: Job, attempt: int) -> JobSpec:
    """The self-contained payload a runner needs for ``job``."""
    env = {
        "CI": "true",
        "SLIPWAY": "true",
        "SLIPWAY_REPO": repo.full_name,
        "SLIPWAY_BUILD_NUMBER": str(build.number),
        "SLIPWAY_ATTEMPT": str(attempt),
        "SLIPWAY_BUILD_URL": f"{settings.base_url}/{repo.full_name}/builds/{build.number}",
        "SLIPWAY_COMMIT": build.sha,
        "SLIPWAY_REF": build.ref,
        "SLIPWAY_EVENT": build.event,
        "SLIPWAY_BRANCH": build.branch or "",
        "SLIPWAY_TAG": build.tag or "",
        "SLIPWAY_PULL_REQUEST": str(build.pr_number or ""),
    }
    return JobSpec(
        job_id=job.id, attempt=attempt, build_id=build.id, repo=repo.full_name,
        clone_url=repo.clone_url, sha=build.sha, ref=build.ref, event=build.event,
        branch=build.branch, default_branch=repo.default_branch, plan=len(build.jobs) == 1,
        cell=json.loads(job.cell or "{}"), env=env,
        default_image=settings.default_image, timeout_seconds=settings.job_timeout_seconds,
        limits=limits_for(settings, repo), log_limit_bytes=settings.log_limit_bytes,
        sealed_secrets=repo_secrets.seal(settings, repo_secrets.for_build(settings, repo, build)),
        secrets_withheld=repo_secrets.withheld_reason(build), repo_id=repo.id,
    )


def enqueue(redis: Redis, spec: JobSpec, max_jobs: int = 0,
            notices: Iterable[tuple[int, int]] = ()) -> None:
    """Put one attempt of a job in its repository's line for the runners, and admit what may
    go: one transaction, one round trip to Redis.

    Args:
        max_jobs: how many of the repository's jobs may run at once (0: no limit).
        notices: (repository id, build id) changes to announce in the same round trip
            (:func:`ci.builds.changes.add_to`).
    """
    queue = fair_queue.FairQueue(redis, spec.repo_id, max_jobs)
    with redis.pipeline() as pipe:
        # RQ starts the transaction itself, so its call comes first.
        queue.enqueue_call(
            keys.RUN_JOB, args=(spec.to_dict(),), job_id=keys.rq_job_id(spec.job_id, spec.attempt),
            timeout=spec.timeout_seconds + 300, result_ttl=600, failure_ttl=86400,
            description=f"{spec.repo} job {spec.job_id}", pipeline=pipe,
        )
        pipe.set(keys.current_attempt(spec.job_id), spec.attempt, ex=7 * 86400)
        # An attempt starts clean: no cancel of a rerun's earlier attempt, and no live log
        # of a job that had this id before the database was restored from a backup.
        pipe.delete(keys.cancel(spec.job_id), keys.log_stream(spec.job_id))
        changes.add_to(pipe, notices)
        pipe.execute()


#: How long a cancel request is kept for a runner that has yet to see the job.
CANCEL_TTL_SECONDS = 86400


def request_cancel(redis: Redis, job: Job, who: str) -> None:
    """Tell whichever runner has (or will get) ``job`` to stop, and drop it from the queue.

    A queued job also leaves its line and its repository's count, and the next in line may
    go; a running one counts until its runner has stopped it.
    """
    with redis.pipeline() as pipe:
        pipe.set(keys.cancel(job.id), who, ex=CANCEL_TTL_SECONDS)
        pipe.publish(keys.cancel(job.id), who)
        pipe.execute()
    rq_job_id = keys.rq_job_id(job.id, job.attempt)
    try:
        RQJob.fetch(rq_job_id, connection=redis, serializer=keys.RQ_SERIALIZER).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass
    if job.status == Status.QUEUED:
        admission.withdraw(redis, job.build.repo_id, rq_job_id)


def enqueue_build(redis: Redis, settings: Settings, build: Build,
                  announce: bool = False) -> bool:
    """Enqueue every queued job of a committed build; False when Redis is unreachable.

    A failure loses nothing: the jobs stay queued in SQL and :func:`reconcile`
    enqueues them once Redis answers again.

    Args:
        announce: also announce the build's change (:mod:`ci.builds.changes`), with the
            first job, in its round trip.
    """
    return enqueue_jobs(redis, settings, build,
                        [job for job in build.jobs if job.status == Status.QUEUED],
                        [(build.repo_id, build.id)] if announce else ())


def enqueue_jobs(redis: Redis, settings: Settings, build: Build, jobs: list[Job],
                 notices: Iterable[tuple[int, int]] = ()) -> bool:
    """Enqueue ``jobs`` of a committed build; False when Redis is unreachable.

    Args:
        notices: changes to announce with the first job (:func:`enqueue`).
    """
    if not jobs and notices:
        changes.announce(redis, notices)
    try:
        for index, job in enumerate(jobs):
            enqueue(redis, job_spec(settings, build.repo, build, job, job.attempt),
                    max_jobs_for(settings, build.repo), notices if index == 0 else ())
    except RedisError as exc:
        log.warning("build %s queued in the database; Redis unavailable (%s)", build.id, exc)
        return False
    return True


@dataclass
class Reconciled:
    """Ids of the jobs :func:`reconcile` acted on, by what it did."""

    #: Queued jobs Redis did not hold, enqueued again.
    requeued: list[int] = field(default_factory=list)
    #: Running jobs whose runner was lost, put back in the queue for another runner.
    retried: list[int] = field(default_factory=list)
    #: Running jobs whose runner was lost for the second time, errored.
    lost: list[int] = field(default_factory=list)


#: The error of a job whose runner, and the runner of its retry, were lost.
RUNNER_LOST = "runner lost: the runner stopped reporting while the job ran, twice"


def reconcile(session: Session, redis: Redis, settings: Settings) -> Reconciled:
    """Re-enqueue queued jobs Redis lost; retry once, then error, jobs whose runner is gone.

    Several processes may reconcile at once: each change is claimed with a conditional
    update (``ci.store.attempts``) and committed before the job is enqueued, so one
    process wins each job and a crash between the two leaves a job that the next
    round enqueues.
    """
    result = Reconciled()
    session.commit()  # the database is read after Redis (``fair_queue.admitted_jobs``)
    admitted = fair_queue.admitted_jobs(redis)
    jobs = store.unfinished_jobs(session)
    session.commit()  # hold no database lock while asking Redis
    fair_queue.forget(redis, fair_queue.stale_admissions(admitted, jobs))
    with redis.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.exists(keys.lease(job.id))
        leased = pipe.execute()
    now = utcnow()
    unleased = [job for job, has_lease in zip(jobs, leased) if not has_lease]
    waiting = [job for job in unleased if job.status == Status.QUEUED
               and now - job.since > REQUEUE_GRACE]
    for job, held in zip(waiting, _rq_holds(redis, waiting)):
        if not held and _commit_if(session, store.claim_requeue(session, job.id, job.attempt)):
            result.requeued.append(job.id)
    for job in unleased:
        if job.status != Status.RUNNING:
            continue
        retried = store.claim_retry(session, job.id, job.attempt)
        if retried:
            # Before the commit: the retry's enqueue starts the job's live stream anew.
            storage.keep_attempt_log(redis, settings.log_dir, job.id, job.attempt,
                                     archived=False)
        if _commit_if(session, retried):
            result.retried.append(job.id)
        elif store.claim_loss(session, job.id, job.attempt):
            found = store.get_job(session, job.id)
            store.finish_job(session, found, Status.ERRORED, now, RUNNER_LOST)
            session.commit()
            result.lost.append(job.id)
        else:
            session.rollback()
    again = result.requeued + result.retried
    for job in store.get_jobs(session, again):
        repo = job.build.repo
        # The attempt replaced no longer counts against its repository's limit.
        admission.release(redis, repo.id, keys.rq_job_id(job.id, job.attempt - 1))
        enqueue(redis, job_spec(settings, repo, job.build, job, job.attempt),
                max_jobs_for(settings, repo))
    session.commit()
    admission.admit(redis)  # a safety net: whatever stopped before it admitted
    return result


def _commit_if(session: Session, claimed: bool) -> bool:
    """End the claim's transaction: commit what was claimed, release what was not."""
    if claimed:
        session.commit()
    else:
        session.rollback()
    return claimed


def _rq_holds(redis: Redis, jobs: list[store.UnfinishedJob]) -> list[bool]:
    """For each job, whether RQ still has its attempt waiting (not started, failed or gone):
    on RQ's queue or in its repository's line, its hash says ``queued``.

    One round trip for all: a backlog of thousands of queued jobs is normal when the
    runners are busy, and this runs every few seconds.
    """
    with redis.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.hget(RQJob.key_for(keys.rq_job_id(job.id, job.attempt)), "status")
        states = pipe.execute()
    # Started but without a lease: the runner died before it could claim the job.
    return [state is not None and state.decode() in WAITING_RQ_STATES for state in states]
