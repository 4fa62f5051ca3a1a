"""The executor contract: what a runner needs from a place that runs steps.

Lifecycle, for one job: ``setup`` → ``run_step`` once per step, in order →
(``stream_archive`` of what the job keeps) → ``destroy``. ``kill`` may be called from
another thread at any time (timeout, lost lease) and makes the running and all later
``run_step`` calls return at once. ``destroy`` is idempotent and safe after a failed or
partial ``setup``. A second executor (plain processes, Podman) is one new module
implementing this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from ci.pipeline.config import Service
from ci.pipeline.spec import Limits


class ExecutorError(RuntimeError):
    """The executor could not do its part (image missing, engine down); the message says what."""


@dataclass(frozen=True)
class JobEnvironment:
    """What the job's container is made of.

    Attributes:
        name: a unique name for the job's resources (``slipway-job-<id>-<attempt>``).
        image: the image to run the steps in.
        env: environment variables of every step.
        workspace: the host folder checked out for the job, mounted at ``/workspace``.
        read_only_mounts: host paths mounted read-only at the same path inside
            (the mirror the workspace borrows objects from, a CA bundle).
        labels: labels that let orphaned resources be found after a runner dies.
        limits: memory, CPU and process limits.
        lifetime_seconds: the container removes nothing by itself, but stops doing
            anything after this long even if no runner is left to stop it.
        services: sidecar containers, reachable from the steps by their name on a
            network private to the job, ready before the first step.
        internet: whether the job's network has a route out (``SLIPWAY_JOB_NETWORK=internet``);
            either way it reaches neither other jobs nor the runner host.
    """

    name: str
    image: str
    env: dict[str, str]
    workspace: Path
    read_only_mounts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    lifetime_seconds: int = 3600
    services: tuple[Service, ...] = ()
    internet: bool = True


class Executor(Protocol):
    def begin(self, name: str, labels: dict[str, str], internet: bool,
              read_only_mounts: dict[str, str] | None = None) -> Path | None:
        """Start, in the background, what needs no pipeline (Docker: the job's network),
        so it is ready by :meth:`setup`, which gets the same name and labels.

        Args:
            read_only_mounts: the job's, when the caller may check out into a folder the
                executor gives (below); None: it may not.

        Returns:
            A folder, made and empty, to check out into and give :meth:`setup` as the
            workspace: one already mounted in a container started ahead for a job with
            these mounts (Docker: :mod:`runners.spare`); None: the job's own.
        """

    def setup(self, environment: JobEnvironment, say: Callable[[str], None]) -> None:
        """Prepare the job's container; raises :class:`ExecutorError` with a sentence."""

    def run_step(self, script: str, on_output: Callable[[str], None], image: str | None = None,
                 env: dict[str, str] | None = None) -> int | None:
        """Run ``script`` with ``sh -e`` in the workspace, streaming output as it comes.

        Args:
            image: run this step in another image (same workspace, limits and network).
            env: variables for this step only, on top of the job's.

        Returns:
            The exit code, or None when the step was killed.
        """

    def start_ahead(self) -> None:
        """Start, in the background, a container like this job's for the next job of this
        process (Docker: a spare, :mod:`runners.spare`); nothing when the process has one
        or this job's never started; after :meth:`destroy` too. Before :meth:`setup`, a
        container like the one this job started in, if it started in one made ahead."""

    def diagnose(self, exit_code: int) -> str | None:
        """Why the last step ended with ``exit_code``, when the executor knows (out of memory)."""

    def read_archive(self, path: str, into: Path) -> bool:
        """Write a tar of ``path`` inside the job to the host file ``into``; False if absent."""

    def write_archive(self, directory: str, tar: Path) -> None:
        """Unpack the host tar file ``tar`` into ``directory`` inside the job."""

    def stream_archive(self, path: str) -> Iterator[bytes] | None:
        """A tar of ``path`` inside the job, streamed in chunks as it is read; None when
        ``path`` does not exist. Links are archived as links, never followed, so the tar
        holds nothing from outside ``path``. Works after :meth:`kill` too (the container
        stopped, not removed); raises :class:`ExecutorError` once it is gone. The caller
        reads it to its end or closes it."""

    def service_logs(self) -> dict[str, str]:
        """Each service's output so far (its tail), by service name."""

    def kill(self) -> None:
        """Stop whatever runs now; thread-safe."""

    def destroy(self) -> None:
        """Remove everything ``setup`` made; idempotent."""
