"""The runner's RQ entry point: one job, from checkout to the last log line.

``run_job`` is enqueued by name (:data:`ci.pipeline.keys.RUN_JOB`). It never
raises for a build problem: every outcome — passed, failed, errored — is reported
as events, and the job's container and workspace are removed in every case.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from redis import Redis, RedisError
from rq import get_current_job

from ci.pipeline.config import (CONFIG_FILE, DEFAULT_PIPELINE_HELP, MAX_FILE_BYTES, ConfigError,
                                Pipeline, Step, allows_failure, default_pipeline, expand_matrix,
                                for_cell, parse_pipeline)
from ci.pipeline import keys
from ci.pipeline.durations import format_duration
from ci.pipeline.logformat import SERVICE_SECTIONS_START
from ci.pipeline.spec import EventType, JobSpec
from ci.pipeline.status import Status
from runners import artifacts, owner, spare
from runners.cache import BuildCache
from runners.checkout import CheckoutError, CheckoutTimeout, CloneUrl, CommitFiles, MirrorCache
from runners.docker_executor import (LABEL, LABEL_ATTEMPT, LABEL_INSTANCE, DockerExecutor,
                                     job_resource_name)
from runners.executor import Executor, ExecutorError, JobEnvironment
from runners.publisher import Publisher
from runners.reporter import Reporter
from runners.sealed_secrets import SecretsUnavailable, open_secrets
from runners.settings import RunnerSettings, load_runner_settings

log = logging.getLogger(__name__)

CA_BUNDLE_INSIDE = "/etc/ssl/certs/ca-certificates.crt"

#: Builds the executor for a job; the composition root may swap it (one place).
make_executor: Callable[[], Executor] = DockerExecutor

#: The jobs this process runs now, so that a runner stopped on purpose can end them.
_running: set[JobRun] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()
#: The removals of finished jobs' containers, networks and workspaces under way.
_cleanups: set[threading.Thread] = set()


def wait_for_cleanups() -> None:
    """Wait until what this process's finished jobs left is removed, the spare started
    for the next job included: a burst ends, or a runner stops, with nothing of its jobs
    left behind."""
    with _running_lock:
        cleanups = list(_cleanups)
    for cleanup in cleanups:
        cleanup.join()
    spare.discard()


def stop_running_jobs() -> None:
    """End this process's jobs as errored, "runner stopped" (its containers go with them),
    and any job that starts from now on at once: the runner is shutting down."""
    _stopping.set()
    with _running_lock:
        runs = list(_running)
    for run in runs:
        run.stop()


class JobFailed(Exception):
    """Ends a job early with a status and the sentence to show for it."""

    def __init__(self, status: Status, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def run_job(payload: dict[str, Any]) -> str:
    """Run one attempt of one job; returns its final status (also sent as events)."""
    spec = JobSpec.from_dict(payload)
    settings = load_runner_settings()
    current = get_current_job()
    redis = current.connection if current is not None else Redis.from_url(settings.redis_url)
    try:
        secrets, withheld = open_secrets(settings.encryption_key, spec.sealed_secrets), None
    except SecretsUnavailable as exc:
        secrets, withheld = {}, str(exc)
    publisher = Publisher(redis, spec,
                          list(secrets.values()) + CloneUrl.parse(spec.clone_url).secrets())
    refusal = publisher.claim()
    if refusal:
        log.info("job %s: not running: %s", spec.job_id, refusal)
        return "refused"
    who = publisher.canceled_by()
    if who is not None:
        publisher.finished(Status.CANCELED.value, f"canceled by {who} before it started")
        publisher.release()
        return Status.CANCELED.value
    run = JobRun(spec, settings, publisher, make_executor(), secrets,
                 withheld or spec.secrets_withheld,
                 artifacts.RedisDestination(redis, spec.job_id, spec.attempt))
    run.jobs_waiting = lambda: _jobs_ready(redis)
    return run.run()


def _jobs_ready(redis: Redis) -> bool:
    """Whether RQ's list holds a job for the next free runner (False if Redis is away)."""
    try:
        return redis.llen(keys.JOBS_QUEUE_KEY) > 0
    except RedisError:
        return False


class JobRun:
    """The state of one job while it runs on this runner.

    It reports through a :class:`~runners.reporter.Reporter` only. Where the code comes
    from is :meth:`_checkout` and :meth:`_read_pipeline` (a commit, cloned), and the
    build cache is :meth:`_restore_cache`; ``slipway exec`` replaces those three
    (:mod:`runners.local_exec.job`) and runs the rest of the loop unchanged.
    """

    def __init__(self, spec: JobSpec, settings: RunnerSettings, publisher: Reporter,
                 executor: Executor, secrets: dict[str, str] | None = None,
                 secrets_withheld: str | None = None,
                 kept_files: artifacts.Destination | None = None) -> None:
        self.spec = spec
        #: Where the files the pipeline keeps (``artifacts:``) go; None: nowhere.
        self.kept_files = kept_files
        self.settings = settings
        self.publisher = publisher
        self.executor = executor
        self.timed_out = threading.Event()
        self.lease_lost = threading.Event()
        self.runner_stopped = threading.Event()
        self.canceled_by: str | None = None
        self.secrets = secrets or {}
        self.secrets_withheld = secrets_withheld
        self.workspace = settings.work_dir / "workspaces" / f"{spec.job_id}-{spec.attempt}"
        #: What the job's containers and network are called and labelled, for the sweeps.
        self.resource_name = job_resource_name(spec.job_id, spec.attempt)
        self.labels = {LABEL: str(spec.job_id), LABEL_ATTEMPT: str(spec.attempt),
                       LABEL_INSTANCE: settings.instance, "slipway.repo": spec.repo}
        self.taken = time.monotonic()
        self._timer: threading.Timer | None = None
        #: The index of the step running now; -1 before and after the steps.
        self.running_step = -1
        #: Whether the job may start in a container started ahead (:mod:`runners.spare`),
        #: and start one for the next job.
        self.spares = settings.spare_containers
        #: Whether :attr:`workspace` is a folder the executor gave, made and empty.
        self.workspace_given = False
        #: Whether another job is ready for a runner now (then a spare starts early).
        self.jobs_waiting: Callable[[], bool] = lambda: False

    def run(self) -> str:
        status, error, error_step = Status.ERRORED, None, -1
        timeout = self.spec.timeout_seconds
        self._arm_timer(timeout)
        with _running_lock:
            _running.add(self)
        if _stopping.is_set():
            self.stop()
        self.publisher.keep_lease(on_lost=self._on_lease_lost)
        self.publisher.watch_cancel(self._on_cancel)
        try:
            self.publisher.event(EventType.JOB_STARTED, runner=self.settings.name)
            # Docker takes about 0.1 s to make the job's network: meanwhile, check out.
            mounts = self._read_only_mounts(MirrorCache(self.settings.work_dir).mirror_path(
                self.spec.clone_url)) if self.spares else None
            given = self.executor.begin(self.resource_name, self.labels, self.settings.internet,
                                        mounts)
            if given is not None:
                self.workspace, self.workspace_given = given, True
            if self.spares and self.jobs_waiting():
                # The next job comes as this one ends: its container must be up by then.
                self.executor.start_ahead()
            mirror = self._checkout(timeout)
            pipeline = self._read_pipeline()
            cell = self._plan(pipeline) if self.spec.plan else self.spec.cell
            pipeline = for_cell(pipeline, cell)
            timeout = min(pipeline.timeout_seconds or timeout, timeout)
            image = pipeline.image or self.spec.default_image
            self.publisher.event(EventType.STEPS_PLANNED,
                                 steps=[step.name for step in pipeline.steps], image=image)
            self._arm_timer(timeout)
            if self.timed_out.is_set():
                raise JobFailed(Status.ERRORED, self._kill_reason(timeout))
            self._setup(pipeline, image, mirror, timeout)
            if self.spares and self.jobs_waiting():
                self.executor.start_ahead()  # unless started already
            cache_key = self._restore_cache(pipeline, cell)
            status, error, error_step = self._run_steps(pipeline, timeout)
            self.running_step = -1
            if status == Status.PASSED and cache_key:
                self._save_cache(pipeline, cache_key)
            self._keep_artifacts(pipeline, status)
        except JobFailed as failed:
            status, error = failed.status, failed.error
        except Exception as exc:  # noqa: BLE001 - any surprise must still end the job
            log.exception("job %s crashed", self.spec.job_id)
            status, error = Status.ERRORED, f"internal runner error: {exc!r}"
            error_step = self.running_step
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._publish_service_logs()
            # The result is known: report it first, clean up after, so nobody waits on it.
            self.publisher.finished(status.value, error, error_step)
            self.publisher.release()
            with _running_lock:
                _running.discard(self)
            self._clean_up()
            self.publisher.wait_sent()
        return status.value

    def _clean_up(self) -> None:
        """Remove the job's containers, network and workspace in a thread of its own, so
        that the runner takes its next job meanwhile: removing them takes Docker about
        0.4 s. Not a daemon thread: the process waits for it before it exits (a runner
        killed meanwhile leaves them to the sweeps, as a runner killed mid-job does).

        Then, unless a job waiting had it started already, the container for the next job
        starts (:meth:`Executor.start_ahead`): after the steps, the report and the removal,
        it takes no CPU from them (nor from the last lines on their way to the viewers)."""
        def clean_up() -> None:
            try:
                self.executor.destroy()
                if self.spares and not _stopping.is_set():
                    self.executor.start_ahead()
                owner.remove(self.workspace)
            finally:
                with _running_lock:
                    _cleanups.discard(cleanup)

        cleanup = threading.Thread(target=clean_up, name=f"cleanup-{self.resource_name}")
        with _running_lock:
            _cleanups.add(cleanup)
        cleanup.start()

    def _arm_timer(self, timeout: int) -> None:
        """(Re)start the job's timer: ``timeout`` counts from when the runner took the job,
        so the clone and the reading of the pipeline are inside it."""
        if self._timer is not None:
            self._timer.cancel()
        remaining = self.taken + timeout - time.monotonic()
        if remaining <= 0:
            self._on_timeout()
            return
        self._timer = threading.Timer(remaining, self._on_timeout)
        self._timer.daemon = True
        self._timer.start()

    def _checkout(self, timeout: int) -> Path:
        spec = self.spec
        self.publisher.info(f"checking out {spec.sha[:12]} ({spec.ref})")
        started = time.monotonic()
        self.workspace.parent.mkdir(parents=True, exist_ok=True)
        if not self.workspace_given:
            owner.claim(self.workspace)
            shutil.rmtree(self.workspace, ignore_errors=True)
        try:
            mirror = MirrorCache(self.settings.work_dir).checkout(
                spec.clone_url, spec.sha, self.workspace, deadline=self.taken + timeout)
        except CheckoutTimeout:
            self.timed_out.set()
            raise JobFailed(Status.ERRORED, self._kill_reason(timeout)) from None
        except CheckoutError as exc:
            raise JobFailed(Status.ERRORED, str(exc)) from None
        self.publisher.info(f"checked out in {time.monotonic() - started:.2f}s")
        return mirror

    def _read_pipeline(self) -> Pipeline:
        """The commit's pipeline, read from git's objects and never from the work tree, where
        a committed link would make this runner read a file of its host."""
        try:
            files = CommitFiles(self.workspace, self.spec.sha)
            text = files.read(CONFIG_FILE, MAX_FILE_BYTES)
        except CheckoutError as exc:
            raise JobFailed(Status.ERRORED, str(exc)) from None
        if text is None:
            default = default_pipeline(files.root_files())
            if default is None:
                raise JobFailed(Status.ERRORED, f"commit {self.spec.sha[:12]}: "
                                f"{DEFAULT_PIPELINE_HELP}")
            self.publisher.info(f"no {CONFIG_FILE}: using the default pipeline for a Python "
                                "project (install, then pytest)")
            return default
        try:
            return parse_pipeline(text)
        except ConfigError as exc:
            raise JobFailed(Status.ERRORED, str(exc)) from None

    def _plan(self, pipeline: Pipeline) -> dict[str, str]:
        """Decide whether the build runs and which cells it has; returns this job's cell."""
        spec = self.spec
        if not pipeline.when.matches(branch=spec.branch, event=spec.event):
            raise JobFailed(Status.SKIPPED, f"skipped: the pipeline's `when` does not match "
                            f"event {spec.event!r} on branch {spec.branch or '(none)'!r}")
        cells = expand_matrix(pipeline)
        self.publisher.event(EventType.BUILD_PLANNED, cells=cells,
                             allow_failures=[allows_failure(pipeline, cell) for cell in cells])
        return cells[0]

    def _read_only_mounts(self, mirror: Path) -> dict[str, str]:
        """The mirror the workspace borrows its objects from, and the CA bundle if any."""
        mounts = {str(mirror): str(mirror)}
        if self.settings.ca_bundle:
            mounts[str(self.settings.ca_bundle)] = CA_BUNDLE_INSIDE
        return mounts

    def _setup(self, pipeline: Pipeline, image: str, mirror: Path, timeout: int) -> None:
        mounts = self._read_only_mounts(mirror)
        env = {**self.spec.env, "PYTHONUNBUFFERED": "1", **pipeline.env}
        if self.settings.ca_bundle:
            env.setdefault("REQUESTS_CA_BUNDLE", CA_BUNDLE_INSIDE)
            env.setdefault("PIP_CERT", CA_BUNDLE_INSIDE)
            env.setdefault("SSL_CERT_FILE", CA_BUNDLE_INSIDE)
        environment = JobEnvironment(
            name=self.resource_name, image=image, env=env, workspace=self.workspace,
            read_only_mounts=mounts, labels=self.labels, limits=self.spec.limits,
            lifetime_seconds=timeout + 60, services=pipeline.services,
            internet=self.settings.internet,
        )
        try:
            self.executor.setup(environment, self.publisher.info)
        except ExecutorError as exc:
            raise JobFailed(Status.ERRORED, str(exc)) from None

    def _run_steps(self, pipeline: Pipeline, timeout: int) -> tuple[Status, str | None, int]:
        """Run the steps in order; after a failure only steps that ask for it (``when:
        status: [failure]``) run. Returns the job's status, its first error and the index
        of the step that error concerns (-1 when there is none)."""
        status, error, error_step = Status.PASSED, None, -1
        for index, step in enumerate(pipeline.steps):
            failed = status == Status.FAILED
            if not (step.when.matches(branch=self.spec.branch, event=self.spec.event)
                    and step.when.runs_after(failed)):
                self._step_finished(index, Status.SKIPPED, None)
                continue
            self.running_step = index
            self.publisher.step_started(index, step.name)
            refusal = self._secrets_refusal(step)
            if refusal:
                self.publisher.info(refusal, index)
                self._step_finished(index, Status.FAILED, None)
                if not failed:
                    status, error, error_step = Status.FAILED, refusal, index
                continue
            env = {**step.env, **{name: self.secrets[name] for name in step.secrets}}
            try:
                code = self.executor.run_step(
                    step.run, lambda text, i=index: self.publisher.output(i, text),
                    image=step.image, env=env)
            except ExecutorError as exc:
                self._step_finished(index, Status.ERRORED, None)
                return Status.ERRORED, str(exc), index
            finally:
                self.publisher.end_output(index)
            if code is None:
                killed = Status.CANCELED if self.canceled_by else Status.ERRORED
                self._step_finished(index, killed, None)
                return killed, self._kill_reason(timeout), index
            if code != 0:
                self._step_finished(index, Status.FAILED, code)
                why = self.executor.diagnose(code)
                if not failed:
                    status, error = Status.FAILED, (f"step {step.name!r} exited with code {code}"
                                                    + (f" ({why})" if why else ""))
                    error_step = index
                continue
            self._step_finished(index, Status.PASSED, 0)
        return status, error, error_step

    def _cache(self) -> BuildCache:
        return BuildCache(self.settings.work_dir / "cache", self.settings.cache_limit_bytes)

    def _restore_cache(self, pipeline: Pipeline, cell: dict[str, str]) -> str | None:
        """Restore this ref's cache (else the default branch's); returns the key to save to."""
        if not pipeline.cache:
            return None
        cache, spec = self._cache(), self.spec
        own = cache.key(spec.repo, spec.ref, cell, pipeline.cache)
        fallback = cache.key(spec.repo, f"refs/heads/{spec.default_branch}", cell, pipeline.cache)
        try:
            cache.restore(self.executor, pipeline.cache, list(dict.fromkeys([own, fallback])),
                          self.publisher.info)
        except Exception as exc:  # noqa: BLE001 - a broken cache must not fail the build
            self.publisher.info(f"cache not restored: {exc}")
        return own

    def _save_cache(self, pipeline: Pipeline, key: str) -> None:
        try:
            self._cache().save(self.executor, pipeline.cache, key, self.publisher.info)
        except Exception as exc:  # noqa: BLE001 - a passing build stays passed
            self.publisher.info(f"cache not saved: {exc}")

    def _keep_artifacts(self, pipeline: Pipeline, status: Status) -> None:
        """Keep the files ``artifacts:`` names, when it asks for this ending. Never for a
        job canceled, taken over or stopped with its runner: nobody waits for its files. A
        failure here is said in the log and leaves the job's status as it is."""
        stopped = self.canceled_by or self.lease_lost.is_set() or self.runner_stopped.is_set()
        if stopped or not pipeline.artifacts.wanted(status == Status.PASSED):
            return
        if self.kept_files is None:
            self.publisher.info("artifacts: not kept; `slipway exec --artifacts DIR` copies "
                                "them into DIR")
            return
        limit = self.settings.artifact_limit_bytes
        try:
            found = artifacts.collect(self.executor, pipeline.artifacts, limit, self.kept_files)
            data = self.kept_files.finish(found.kept)
        except Exception as exc:  # noqa: BLE001 - a passing build stays passed
            log.warning("job %s: artifacts not kept", self.spec.job_id, exc_info=True)
            self.publisher.info(f"artifacts: not kept: {exc}")
            try:
                self.kept_files.discard()
            except Exception:  # noqa: BLE001 - what is left expires by itself
                log.warning("job %s: kept files not discarded", self.spec.job_id, exc_info=True)
            return
        for line in artifacts.report(found, limit):
            self.publisher.info(line)
        if data is not None:
            self.publisher.event(EventType.JOB_ARTIFACTS, **data)

    def _secrets_refusal(self, step: Step) -> str | None:
        """Why ``step`` cannot have the secrets it names, or None when it can."""
        if not step.secrets:
            return None
        wanted = ", ".join(step.secrets)
        if self.secrets_withheld:
            return f"step {step.name!r} needs {wanted}: {self.secrets_withheld}"
        missing = [name for name in step.secrets if name not in self.secrets]
        if missing:
            return (f"step {step.name!r} needs {', '.join(missing)}, which this repository "
                    f"does not have; set it with `slipway secret set {self.spec.repo} "
                    f"{missing[0]}`")
        return None

    def _publish_service_logs(self) -> None:
        """Services' output goes into the job's log, one section per service, after the steps;
        like a step's, it is masked and counts towards the log's limit (a service may echo
        a secret a step sent it)."""
        try:
            service_logs = self.executor.service_logs()
        except ExecutorError:
            return
        for number, (name, text) in enumerate(service_logs.items()):
            section = SERVICE_SECTIONS_START - number
            self.publisher.section(section, f"service {name}")
            self.publisher.output(section, text)
            self.publisher.end_output(section)

    def _step_finished(self, index: int, status: Status, code: int | None) -> None:
        self.publisher.event(EventType.STEP_FINISHED, step=index, status=status.value,
                             exit_code=code)

    def _kill_reason(self, timeout: int) -> str:
        if self.canceled_by:
            return f"canceled by {self.canceled_by}"
        if self.runner_stopped.is_set():
            return "runner stopped"
        if self.timed_out.is_set():
            return f"timed out after {format_duration(timeout)}"
        if self.lease_lost.is_set():
            return "stopped: another runner took over this job"
        return "the job's container stopped unexpectedly"

    def stop(self) -> None:
        """The runner is stopping: kill the job's containers; it ends errored."""
        self.runner_stopped.set()
        self.executor.kill()

    def _on_timeout(self) -> None:
        self.timed_out.set()
        self.executor.kill()

    def _on_cancel(self, who: str) -> None:
        self.canceled_by = who
        self.executor.kill()

    def _on_lease_lost(self) -> None:
        self.lease_lost.set()
        self.executor.kill()
