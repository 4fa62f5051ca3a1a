"""Runs a job's steps in one Docker container through the docker SDK.

The container's main process is an idle ``sleep`` (under Docker's init) bounded by
the job's lifetime; each step is an ``exec`` of ``sh -ec <script>`` in the shared
workspace, so steps share files but each has its own exit code and output stream.
Containers are never privileged, never see the Docker socket, and carry labels
so that :func:`sweep_orphans` can remove what a dead runner left behind.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from typing import Callable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from runners.executor import ExecutorError, JobEnvironment

log = logging.getLogger(__name__)

LABEL = "slipway.job"
LABEL_ATTEMPT = "slipway.attempt"
#: Which Slipway installation (which Redis) a container belongs to, so that two
#: installations sharing a Docker engine never sweep each other's containers.
LABEL_INSTANCE = "slipway.instance"
WORKSPACE = "/workspace"
#: Builds install packages and run tests as root inside their container; these are
#: the capabilities that needs. Everything else Docker grants by default (raw
#: sockets, mknod, chroot, audit, file capabilities) is dropped.
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                "NET_BIND_SERVICE"]
OOM_EXIT_CODE = 137


class DockerExecutor:
    """One job's container. See :mod:`runners.executor` for the contract."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._owns_client = client is None
        self._container: Container | None = None
        self._killed = threading.Event()
        self._memory = ""
        self._step_started = 0.0

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env()
            except DockerException as exc:
                raise ExecutorError(f"the Docker engine is not reachable: {exc}") from None
        return self._client

    def setup(self, environment: JobEnvironment, say: Callable[[str], None]) -> None:
        self._ensure_image(environment.image, say)
        volumes = {str(environment.workspace): {"bind": WORKSPACE, "mode": "rw"}}
        volumes.update({host: {"bind": inside, "mode": "ro"}
                        for host, inside in environment.read_only_mounts.items()})
        limits = environment.limits
        memory = self._memory = limits.memory
        try:
            self._container = self.client.containers.run(
                environment.image, ["sleep", str(environment.lifetime_seconds)],
                name=environment.name, detach=True, init=True, labels=environment.labels,
                environment=environment.env, working_dir=WORKSPACE, volumes=volumes,
                mem_limit=memory, memswap_limit=memory, nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids, privileged=False, security_opt=["no-new-privileges"],
                cap_drop=["ALL"], cap_add=CAPABILITIES,
                network_mode="bridge",
            )
        except APIError as exc:
            raise ExecutorError(f"could not start a container from {environment.image}: "
                                f"{exc.explanation or exc}") from None
        if self._killed.is_set():
            self.kill()

    def _ensure_image(self, image: str, say: Callable[[str], None]) -> None:
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        except APIError as exc:
            raise ExecutorError(f"the Docker engine failed to look up {image}: "
                                f"{exc.explanation or exc}") from None
        say(f"pulling {image}")
        try:
            self.client.images.pull(image)
        except (APIError, DockerException) as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            raise ExecutorError(f"image {image} not found locally and could not be pulled: "
                                f"{reason}") from None

    def run_step(self, script: str, on_output: Callable[[str], None]) -> int | None:
        if self._container is None or self._killed.is_set():
            return None
        api = self.client.api
        self._step_started = time.time()
        try:
            exec_id = api.exec_create(self._container.id, ["sh", "-ec", script],
                                      workdir=WORKSPACE)["Id"]
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            output = api.exec_start(exec_id, stream=True)
            try:
                for chunk in output:
                    text = decoder.decode(chunk)
                    if text:
                        on_output(text)
            finally:
                output.close()
            tail = decoder.decode(b"", final=True)
            if tail:
                on_output(tail)
            if self._killed.is_set():
                return None
            return api.exec_inspect(exec_id)["ExitCode"]
        except (APIError, NotFound) as exc:
            if self._killed.is_set():
                return None
            raise ExecutorError(f"the Docker engine failed to run the step: "
                                f"{getattr(exc, 'explanation', None) or exc}") from None

    def diagnose(self, exit_code: int) -> str | None:
        """Docker reports an out-of-memory kill as an ``oom`` event of the container."""
        if exit_code != OOM_EXIT_CODE or self._container is None:
            return None
        events = self.client.events(since=f"{self._step_started:.9f}", until=f"{time.time():.9f}",
                                    filters={"container": self._container.id, "event": "oom"},
                                    decode=True)
        try:
            if any(True for _ in events):
                return f"killed: out of memory (the job's limit is {self._memory})"
        finally:
            events.close()
        return None

    def kill(self) -> None:
        self._killed.set()
        container = self._container
        if container is not None:
            try:
                container.kill()
            except (APIError, NotFound):
                pass

    def destroy(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.remove(force=True)
            except NotFound:
                pass
            except APIError as exc:
                log.warning("could not remove container %s: %s", container.name, exc)
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


def sweep_orphans(client: docker.DockerClient, instance: str,
                  is_live: Callable[[int, int], bool]) -> list[str]:
    """Remove this installation's job containers that no live runner holds.

    Args:
        instance: the installation's :data:`LABEL_INSTANCE` value.
        is_live: tells whether (job id, attempt) is still owned by a runner.

    Returns:
        The names of the removed containers.
    """
    removed = []
    filters = {"label": [LABEL, f"{LABEL_INSTANCE}={instance}"]}
    for container in client.containers.list(all=True, filters=filters):
        try:
            job_id = int(container.labels[LABEL])
            attempt = int(container.labels.get(LABEL_ATTEMPT, "0"))
        except ValueError:
            continue
        if not is_live(job_id, attempt):
            try:
                container.remove(force=True)
                removed.append(container.name)
            except (APIError, NotFound):
                pass
    return removed
