"""Runs a job's steps in Docker containers through the docker SDK.

The job container's main process is an idle ``sleep`` (under Docker's init),
bounded by the job's lifetime; each step is an ``exec`` of ``sh -ec <script>`` in
the shared workspace, so steps share files but each has its own exit code and
output stream. A step with an image of its own runs in a second container with the
same workspace. All of them, services included, are on a bridge network of the job's
own, where services answer to their names; :mod:`runners.job_network` firewalls it
off from other jobs and from the runner host. Containers are never privileged, never
see the Docker socket, and carry labels (their job, their runner process) so that
:func:`sweep_orphans` can remove what a dead runner left behind.

A job may start in a container started ahead of it (:mod:`runners.spare`): then its
environment comes with each ``exec`` rather than with the container, and the
container is renamed after the job.
"""

from __future__ import annotations

import codecs
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from ci.pipeline.config import Service
from runners import spare
from runners.containers import (WORKSPACE, create_network, remove_container, remove_network,
                                start_container, workspace_volumes)
from runners.executor import ExecutorError, JobEnvironment
from runners.images import IMAGES
from runners.output_pieces import sent_in_pieces
from runners.owner import LABEL_RUNNER, RunnerProcess

log = logging.getLogger(__name__)

LABEL = "slipway.job"
LABEL_ATTEMPT = "slipway.attempt"
#: Which Slipway installation (which Redis) a container belongs to, so that two
#: installations sharing a Docker engine never judge each other's containers by their
#: own leases (a container whose runner process is gone is an orphan to both).
LABEL_INSTANCE = "slipway.instance"
OOM_EXIT_CODE = 137
SERVICE_LOG_BYTES = 64 * 1024
READY_POLL_SECONDS = 0.25
_JOB_NAME = re.compile(r"slipway-job-(\d+)-(\d+)-[0-9a-f]+")


class DockerExecutor:
    """One job's containers. See :mod:`runners.executor` for the contract."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._owns_client = client is None
        self._environment: JobEnvironment | None = None
        self._say: Callable[[str], None] = log.info
        self._network: str | None = None
        self._making_network: threading.Thread | None = None
        self._network_error: ExecutorError | None = None
        self._labels: dict[str, str] = {}
        self._steps: dict[str, Container] = {}  # image -> container running steps
        self._services: dict[str, Container] = {}
        self._last: Container | None = None
        self._lock = threading.Lock()
        self._killed = threading.Event()
        self._step_started = 0.0
        self._spare: spare.Spare | None = None
        #: Whether :meth:`setup` got the job's container: a spare may be made like it.
        self._set_up = False

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env()
            except DockerException as exc:
                raise ExecutorError(f"the Docker engine is not reachable: {exc}") from None
        return self._client

    def begin(self, name: str, labels: dict[str, str], internet: bool,
              read_only_mounts: dict[str, str] | None = None) -> Path | None:
        self._labels = {**labels, LABEL_RUNNER: RunnerProcess.current().label()}
        try:
            client = self.client  # made here, not by two threads at once
        except ExecutorError as exc:
            self._network_error = exc
            return None
        if read_only_mounts is not None:
            self._spare = spare.take(read_only_mounts, internet)
        if self._spare is not None:
            return self._spare.workspace
        self._making_network = threading.Thread(target=self._create_network,
                                                args=(client, name, internet),
                                                name="job-network", daemon=True)
        self._making_network.start()
        return None

    def setup(self, environment: JobEnvironment, say: Callable[[str], None]) -> None:
        self._environment, self._say = environment, say
        if self._spare is not None:
            self._adopt(self._spare, environment)
            self._spare = None
        elif self._making_network is None and self._network_error is None:
            self.begin(environment.name, environment.labels, environment.internet)
        for image in [environment.image] + [service.image for service in environment.services]:
            self._ensure_image(image)
        self._network_made()
        for service in environment.services:
            self._start_service(service)
        self._step_container(environment.image)
        self._set_up = True
        for service in environment.services:
            self._wait_ready(service)

    def start_ahead(self) -> None:
        environment = self._environment
        if environment is None and self._spare is not None:
            spare.prepare_like(self._spare)  # before setup: like the one this job took
            return
        if self._set_up:
            spare.prepare(environment, {key: value for key, value in self._labels.items()
                                        if key in (LABEL_INSTANCE, LABEL_RUNNER)})

    def _adopt(self, taken: spare.Spare, environment: JobEnvironment) -> None:
        """Make the spare taken in :meth:`begin` this job's when its container fits and
        still runs (renamed after the job). Otherwise the spare's container and network
        are removed, and the job makes its own in the folder it checked out into."""
        taken.wait()
        if taken.fits(environment) and _running(taken.container):
            self._network = taken.network
            try:
                taken.container.rename(environment.name)
            except APIError as exc:
                log.warning("could not rename spare %s: %s", taken.name, exc)
            self._steps[environment.image] = taken.container
            self._say("the job runs in a container started ahead for it")
            return
        threading.Thread(target=taken.remove, kwargs={"workspace": False},
                         name="spare-removal", daemon=True).start()
        self._create_network(self.client, environment.name, environment.internet)

    def _create_network(self, client: docker.DockerClient, name: str, internet: bool) -> None:
        """The job's network (:func:`runners.containers.create_network`), made in a thread of
        its own (:meth:`begin`): a failure is kept for :meth:`_network_made`."""
        try:
            create_network(client, name, internet, self._labels)
        except ExecutorError as exc:
            self._network_error = exc
        else:
            self._network = name

    def _network_made(self) -> None:
        """Wait for the job's network; raises :class:`ExecutorError` if it could not be made."""
        if self._making_network is not None:
            self._making_network.join()
        if self._network_error is not None:
            raise self._network_error

    def _run(self, image: str, name: str, env: dict[str, str], command: list[str] | None,
             aliases: list[str], mounts: bool) -> Container:
        """Start one container of this job with the job's limits, labels and network."""
        environment = self._environment
        volumes = (workspace_volumes(environment.workspace, environment.read_only_mounts)
                   if mounts else {})
        container = start_container(self.client, image, name, env=env, command=command,
                                    labels=self._labels, limits=environment.limits,
                                    network=self._network, aliases=aliases, volumes=volumes)
        if self._killed.is_set():
            container.kill()
        return container

    def _step_container(self, image: str) -> Container:
        with self._lock:
            if image not in self._steps:
                if self._steps:
                    self._ensure_image(image)
                environment = self._environment
                name = f"{environment.name}-{len(self._steps)}" if self._steps else environment.name
                self._steps[image] = self._run(
                    image, name, environment.env, ["sleep", str(environment.lifetime_seconds)],
                    aliases=[], mounts=True)
            return self._steps[image]

    def _start_service(self, service: Service) -> None:
        self._say(f"starting service {service.name} ({service.image})")
        name = f"{self._environment.name}-{service.name}"
        self._services[service.name] = self._run(service.image, name, service.env, None,
                                                 aliases=[service.name], mounts=False)

    def _wait_ready(self, service: Service) -> None:
        """Poll the service's ``ready`` command (or that it keeps running) until a deadline."""
        container = self._services[service.name]
        deadline = time.monotonic() + service.ready_timeout_seconds
        last = ""
        while not self._killed.is_set():
            container.reload()
            if container.status not in ("created", "running"):
                raise ExecutorError(f"service {service.name} stopped before it was ready "
                                    f"({container.status}): {self._tail(container, 500)}")
            if service.ready is None:
                return
            result = container.exec_run(["sh", "-c", service.ready])
            if result.exit_code == 0:
                self._say(f"service {service.name} is ready")
                return
            last = result.output.decode("utf-8", "replace").strip()[-300:]
            if time.monotonic() > deadline:
                raise ExecutorError(
                    f"service {service.name} did not become ready within "
                    f"{service.ready_timeout_seconds}s (`{service.ready}`"
                    f"{': ' + last if last else ''})")
            time.sleep(READY_POLL_SECONDS)

    def _ensure_image(self, image: str) -> None:
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        except APIError as exc:
            raise ExecutorError(f"the Docker engine failed to look up {image}: "
                                f"{exc.explanation or exc}") from None
        self._say(f"pulling {image}")
        try:
            self.client.images.pull(image)
        except (APIError, DockerException) as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            hint = (f"; on the runner host, `slipway images build {image}` makes it"
                    if image in IMAGES else "")
            raise ExecutorError(f"image {image} not found locally and could not be pulled: "
                                f"{reason}{hint}") from None

    def run_step(self, script: str, on_output: Callable[[str], None], image: str | None = None,
                 env: dict[str, str] | None = None) -> int | None:
        if self._environment is None or self._killed.is_set():
            return None
        container = self._step_container(image or self._environment.image)
        self._last = container
        api = self.client.api
        self._step_started = time.time()
        try:
            # The job's environment too: a spare (:mod:`runners.spare`) was started without.
            exec_id = api.exec_create(container.id, ["sh", "-ec", script], workdir=WORKSPACE,
                                      environment={**self._environment.env, **(env or {})}
                                      )["Id"]
            decoder = codecs.getincrementaldecoder("utf-8")("replace")

            def send(piece: bytes) -> None:
                text = decoder.decode(piece)
                if text:
                    on_output(text)

            output = api.exec_start(exec_id, stream=True)
            try:
                with sent_in_pieces(send) as forward:
                    for chunk in output:
                        forward(chunk)
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
        if exit_code != OOM_EXIT_CODE or self._last is None:
            return None
        events = self.client.events(since=f"{self._step_started:.9f}", until=f"{time.time():.9f}",
                                    filters={"container": self._last.id, "event": "oom"},
                                    decode=True)
        try:
            if any(True for _ in events):
                limit = self._environment.limits.memory
                return f"killed: out of memory (the job's limit is {limit})"
        finally:
            events.close()
        return None

    def read_archive(self, path: str, into: Path) -> bool:
        try:
            stream, _stat = self._main().get_archive(path, chunk_size=1 << 20)
        except NotFound:
            return False
        with into.open("wb") as handle:
            for chunk in stream:
                handle.write(chunk)
        return True

    def stream_archive(self, path: str) -> Iterator[bytes] | None:
        with self._lock:
            container = self._steps.get(self._environment.image) if self._environment else None
        if container is None:
            raise ExecutorError("the job's container is gone")
        try:
            stream, _stat = container.get_archive(path, chunk_size=1 << 20)
        except NotFound:
            try:
                container.reload()  # a missing path, or a missing container?
            except NotFound:
                raise ExecutorError("the job's container is gone") from None
            return None
        except APIError as exc:
            raise ExecutorError(f"the Docker engine could not read {path}: "
                                f"{exc.explanation or exc}") from None
        return stream

    def write_archive(self, directory: str, tar: Path) -> None:
        container = self._main()
        container.exec_run(["mkdir", "-p", directory])
        with tar.open("rb") as handle:
            if not container.put_archive(directory, handle):
                raise ExecutorError(f"could not restore the cache into {directory}")

    def _main(self) -> Container:
        return self._step_container(self._environment.image)

    def service_logs(self) -> dict[str, str]:
        return {name: self._tail(container, SERVICE_LOG_BYTES)
                for name, container in self._services.items()}

    @staticmethod
    def _tail(container: Container, size: int) -> str:
        """The last ``size`` bytes of the output, from a line's start: a line cut in its
        middle could begin with the end of a secret, which no masker can recognise."""
        try:
            output = container.logs(tail=1000)
        except (APIError, NotFound):
            return ""
        if len(output) > size:
            output = output[-size:].partition(b"\n")[2]
        return output.decode("utf-8", "replace")

    def kill(self) -> None:
        self._killed.set()
        with self._lock:
            containers = list(self._steps.values())
        for container in containers:
            try:
                container.kill()
            except (APIError, NotFound):
                pass

    def destroy(self) -> None:
        with self._lock:
            containers = list(self._steps.values()) + list(self._services.values())
            self._steps, self._services, self._last = {}, {}, None
        for container in containers:
            remove_container(container)
        if self._spare is not None:  # taken, but the job ended before its setup
            self._spare.remove()
            self._spare = None
        if self._making_network is not None:
            self._making_network.join()  # a network still being made is removed too
        if self._network is not None:
            remove_network(self.client, self._network)
            self._network = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


def job_resource_name(job_id: int, attempt: int) -> str:
    """A name for a job's containers and network, unique even for a retried attempt."""
    return f"slipway-job-{job_id}-{attempt}-{secrets.token_hex(3)}"


def _job_named(name: str) -> tuple[int, int] | None:
    """The (job id, attempt) a :func:`job_resource_name` names; None for another name."""
    match = _JOB_NAME.fullmatch(name)
    return (int(match[1]), int(match[2])) if match else None


def _running(container: Container | None) -> bool:
    """Whether the container still runs: the engine may have restarted, or its ``sleep``
    been killed, since it was started ahead."""
    if container is None:
        return False
    try:
        container.reload()
    except (APIError, NotFound):
        return False
    return container.status == "running"


def sweep_orphans(client: docker.DockerClient, instance: str,
                  is_live: Callable[[int, int], bool | None]) -> list[str]:
    """Remove the job containers and networks that no live runner holds.

    What a runner process on this host made is an orphan as soon as that process is
    gone, which ``/proc`` tells without Redis (:mod:`runners.owner`), whichever
    installation it served. For the rest (made by a runner in another PID namespace, or
    before owners were labelled) this installation's lease decides, and only for its
    own containers: another installation's leases are in another Redis. A spare
    (:mod:`runners.spare`) of a runner in another PID namespace is an orphan once its
    container stopped (its idle ``sleep`` ended, or it was killed) or, taken by a job, by
    that job's lease; its network once no container of the spare is left.

    Args:
        instance: the installation's :data:`LABEL_INSTANCE` value.
        is_live: tells whether (job id, attempt) is still owned by a runner; None when it
            cannot tell (Redis away), and then nothing of that job is removed.

    Returns:
        The names of what was removed.
    """
    def orphaned(labels: dict[str, str]) -> bool:
        owner = RunnerProcess.parse(labels.get(LABEL_RUNNER, ""))
        if owner is not None and owner.is_local():
            return owner.is_gone()
        if labels.get(LABEL_INSTANCE) != instance:
            return False
        try:
            return is_live(int(labels[LABEL]), int(labels.get(LABEL_ATTEMPT, "0"))) is False
        except (KeyError, ValueError):
            return False

    def spare_orphaned(labels: dict[str, str], stopped: bool, name: str = "") -> bool:
        owner = RunnerProcess.parse(labels.get(LABEL_RUNNER, ""))
        if owner is not None and owner.is_local():
            return owner.is_gone()
        if labels.get(LABEL_INSTANCE) != instance:
            return False
        taken_by = _job_named(name)  # a spare a job took bears the job's name
        return stopped or (taken_by is not None and is_live(*taken_by) is False)

    removed = []
    filters = {"label": [LABEL]}
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        if orphaned(container.labels):
            try:
                container.remove(force=True)
                removed.append(container.name)
            except (APIError, NotFound):
                pass
    for network in client.networks.list(filters=filters):
        if orphaned(network.attrs.get("Labels") or {}):
            remove_network(client, network.name)
            removed.append(network.name)
    spares = {"label": [spare.LABEL_SPARE]}
    left = set()
    for container in client.containers.list(all=True, filters=spares, ignore_removed=True):
        if spare_orphaned(container.labels, container.status != "running", container.name):
            try:
                container.remove(force=True)
                removed.append(container.name)
                continue
            except (APIError, NotFound):
                pass
        left.add(container.labels.get(spare.LABEL_SPARE))
    for network in client.networks.list(filters=spares):
        labels = network.attrs.get("Labels") or {}
        if spare_orphaned(labels, labels.get(spare.LABEL_SPARE) not in left):
            remove_network(client, network.name)
            removed.append(network.name)
    return removed
