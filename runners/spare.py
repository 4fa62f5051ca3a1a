"""A job container started ahead, for this runner process's next job.

Starting a container is most of what a job waits for before its first step: Docker
takes 0.3–0.7 s for it on a small host, and 0.1 s more for the job's network. So once
a job's container is up, its runner process starts a *spare* in the background: a
network and a container made the way this job's were (the same image, limits and
read-only mounts, its repository's mirror among them), with nothing of any job in
them: an empty workspace folder, no environment (each step's ``exec`` brings the
job's), no secrets, no command run but the idle ``sleep``.

The next job of the process takes the spare if it is of the same repository
(:func:`take`, before the checkout, which goes into the spare's workspace folder) and
keeps its container if it also needs the same image and limits (:meth:`Spare.fits`).
From then on the spare is that job's alone and is removed with it: a spare serves one
job, never two. One that does not fit is removed, and the job starts its own.

There is one spare per runner process at most; the process removes it when it stops
working (:func:`discard`). A runner killed meanwhile leaves it to the sweeps: it is
labelled with its owner like a job's containers (:data:`LABEL_SPARE`).
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time

import docker
from docker.errors import DockerException
from docker.models.containers import Container

from runners import owner
from runners.containers import (create_network, remove_container, remove_network,
                                start_container, workspace_volumes)
from runners.executor import ExecutorError, JobEnvironment

log = logging.getLogger(__name__)

#: Labels a spare's container and network with the spare's name.
LABEL_SPARE = "slipway.spare"
#: How long a spare waits for a job before its idle ``sleep`` ends on its own, on top of
#: the lifetime of the job it was made after: a runner gone meanwhile leaves nothing
#: running for longer than that.
IDLE_SECONDS = 3600


class Spare:
    """A network and a container started ahead of a job, and the folder mounted as the
    container's workspace; made in a thread of its own (:meth:`wait` for it).

    Attributes:
        ends_at: the :func:`time.monotonic` time the container's ``sleep`` ends.
        container: the container, once started (None before, or if it could not be).
        network: the network's name, once made.
        made_like: the environment of the job it was made after (its image, limits,
            mounts and network kind are the spare's), and ``given_labels`` the labels it
            was given: what the next spare is made like when this one is taken before its
            job's pipeline is read (:func:`prepare_like`).
    """

    def __init__(self, client: docker.DockerClient, environment: JobEnvironment,
                 labels: dict[str, str]) -> None:
        self.name = f"slipway-spare-{secrets.token_hex(4)}"
        self.workspace = environment.workspace.parent / self.name
        self.lifetime = environment.lifetime_seconds + IDLE_SECONDS
        self.ends_at = time.monotonic() + self.lifetime
        self.labels = {**labels, LABEL_SPARE: self.name}
        self.made_like, self.given_labels = environment, labels
        self.container: Container | None = None
        self.network: str | None = None
        self._client = client
        owner.claim(self.workspace)
        self.workspace.mkdir()
        self._making = threading.Thread(target=self._make, name="spare", daemon=True)
        self._making.start()

    def wait(self) -> None:
        """Wait until the network and the container are made, or could not be."""
        self._making.join()

    def fits(self, environment: JobEnvironment) -> bool:
        """Whether ``environment``'s container is this one: it mounts the same, runs the
        same image under the same limits, and the ``sleep`` outlives the job."""
        like = self.made_like
        return (self.container is not None and environment.workspace == self.workspace
                and environment.image == like.image and environment.limits == like.limits
                and self.serves(environment.read_only_mounts, environment.internet)
                and time.monotonic() + environment.lifetime_seconds <= self.ends_at)

    def serves(self, read_only_mounts: dict[str, str], internet: bool) -> bool:
        """Whether a job with these mounts and network kind may take it, its ``sleep``
        not over: what :func:`take` knows of a job before its pipeline is read."""
        return (read_only_mounts == self.made_like.read_only_mounts
                and internet == self.made_like.internet and time.monotonic() < self.ends_at)

    def remove(self, workspace: bool = True) -> None:
        """Remove the container and the network once made, and the workspace folder unless
        a job checked out into it (then the job removes it)."""
        self.wait()
        if self.container is not None:
            remove_container(self.container)
        if self.network is not None:
            remove_network(self._client, self.network)
        if workspace:
            owner.remove(self.workspace)

    def _make(self) -> None:
        like = self.made_like
        try:
            create_network(self._client, self.name, like.internet, self.labels)
            self.network = self.name
            self.container = start_container(
                self._client, like.image, self.name, env={},
                command=["sleep", str(self.lifetime)], labels=self.labels, limits=like.limits,
                network=self.name, aliases=[],
                volumes=workspace_volumes(self.workspace, like.read_only_mounts))
        except (ExecutorError, DockerException) as exc:
            log.warning("could not start a spare container for the next job: %s", exc)


_lock = threading.Lock()
_held: Spare | None = None
_client: docker.DockerClient | None = None


def prepare(environment: JobEnvironment, labels: dict[str, str]) -> None:
    """Start making a spare like ``environment``'s container, unless this process has one.

    Args:
        labels: the spare's labels besides :data:`LABEL_SPARE` (its installation and its
            owner, as a job's containers have them; nothing of the job).
    """
    global _held, _client
    with _lock:
        if _held is not None:
            return
        try:
            if _client is None:
                _client = docker.from_env()
                atexit.register(discard)
            _held = Spare(_client, environment, labels)
        except (DockerException, OSError) as exc:
            log.warning("could not start a spare container for the next job: %s", exc)


def prepare_like(taken: Spare) -> None:
    """Start making a spare like ``taken`` (the job that took it has not read its pipeline
    yet, and most often needs what the job before it needed), unless this process has one."""
    prepare(taken.made_like, taken.given_labels)


def take(read_only_mounts: dict[str, str], internet: bool) -> Spare | None:
    """The spare for a job with these mounts, now the caller's, maybe still being made;
    None when there is none (one made for another repository is removed, in the
    background)."""
    spare = _pop()
    if spare is None:
        return None
    if spare.serves(read_only_mounts, internet):
        return spare
    threading.Thread(target=spare.remove, name="spare-removal", daemon=True).start()
    return None


def discard() -> None:
    """Remove this process's spare, once made if it is being made: the process stops
    taking jobs (or exits: a runner stopped in a hurry must not leave it running)."""
    spare = _pop()
    if spare is not None:
        spare.remove()


def _pop() -> Spare | None:
    global _held
    with _lock:
        spare, _held = _held, None
    return spare
