"""One job of ``slipway exec``: the runner's own job loop, fed from the disk.

:class:`LocalJobRun` is :class:`runners.worker.JobRun` with the three parts that tie a job
to a server's build replaced: the code is the checkout copied from disk instead of a
commit cloned (:mod:`runners.local_exec.tree`), the pipeline is the one already read and
linted, and no build cache is restored or saved (the cache belongs to a runner host).
Artifacts are copied into a folder of this machine when one is given, else not kept.
Steps, services, ``when``, secrets, timeouts, limits, the Docker executor and its
confinement (the job's firewalled network included) are the runner's, unchanged.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

from ci.pipeline.config import Pipeline
from ci.pipeline.spec import JobSpec
from ci.pipeline.status import Status
from runners import worker
from runners.artifacts import Destination
from runners.checkout import CheckoutError
from runners.docker_executor import LABEL_INSTANCE
from runners.local_exec.tree import WorkingTree
from runners.reporter import Reporter
from runners.settings import RunnerSettings
from runners.worker import JobFailed, JobRun

#: Labels the containers and network of ``slipway exec``'s jobs with the checkout's path.
LABEL_EXEC = "slipway.exec"
#: The job id of every ``slipway exec`` job: no server's job has it (their ids start at 1),
#: so what filters a server job's containers by its id never finds these.
EXEC_JOB_ID = 0
#: The installation label of those jobs: no runner's lease ever answers for them, so a
#: runner's sweep removes them only once the ``slipway exec`` process is gone.
EXEC_INSTANCE = "exec"


class LocalJobRun(JobRun):
    """One matrix cell of a local pipeline, run to its end by :meth:`JobRun.run`."""

    def __init__(self, spec: JobSpec, settings: RunnerSettings, reporter: Reporter,
                 tree: WorkingTree, pipeline: Pipeline, secret_values: dict[str, str],
                 kept_files: Destination | None = None) -> None:
        super().__init__(spec, settings, reporter, worker.make_executor(), secret_values,
                         kept_files=kept_files)
        self.tree = tree
        self.pipeline = pipeline
        self.labels.update({LABEL_INSTANCE: EXEC_INSTANCE, LABEL_EXEC: str(tree.root)})
        self.resource_name = f"slipway-exec-{secrets.token_hex(4)}"
        #: The workspace is a copy made afresh (:meth:`_checkout`), in no folder given.
        self.spares = False

    def _checkout(self, timeout: int) -> Path:
        """Copy the checkout as it is on disk; returns the object folder it borrows from,
        which the job's containers see read-only, as a runner's mirror."""
        changes = ", uncommitted changes included" if self.tree.changed else ""
        self.publisher.info(f"copying {self.tree.root} into the job's workspace{changes}")
        started = time.monotonic()
        self.workspace.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.workspace, ignore_errors=True)
        try:
            copy = self.tree.copy_into(self.workspace)
        except CheckoutError as exc:
            raise JobFailed(Status.ERRORED, str(exc)) from None
        self.publisher.info(f"copied {copy.files} files in {time.monotonic() - started:.2f}s")
        return copy.objects

    def _read_pipeline(self) -> Pipeline:
        return self.pipeline

    def _restore_cache(self, pipeline: Pipeline, cell: dict[str, str]) -> str | None:
        """No cache: returns no key, so nothing is saved either."""
        if pipeline.cache:
            self.publisher.info("the pipeline's `cache` is not used by `slipway exec`: each "
                                "run starts without it")
        return None
