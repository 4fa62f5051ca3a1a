"""Making a job's Docker network and containers, the one way that both a job's executor
(:mod:`runners.docker_executor`) and a spare started ahead of a job (:mod:`runners.spare`)
make them: never privileged, capabilities cut down, the job's limits, its own firewalled
bridge.
"""

from __future__ import annotations

import logging
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from ci.pipeline.spec import Limits
from runners import job_network
from runners.executor import ExecutorError

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
#: Builds install packages and run tests as root inside their container; these are
#: the capabilities that needs. Everything else Docker grants by default (raw
#: sockets, mknod, chroot, audit, file capabilities) is dropped.
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                "NET_BIND_SERVICE"]


def create_network(client: docker.DockerClient, name: str, internet: bool,
                   labels: dict[str, str]) -> None:
    """A bridge of the job's own, where its services answer to their names, named so that
    the host's firewall rules (checked first) keep it from other jobs and the host;
    ``internal`` (no route out) unless the job may reach the internet.

    Raises:
        ExecutorError: the network could not be made, or not firewalled.
    """
    try:
        with job_network.rules_in_force():
            client.networks.create(
                name, driver="bridge", internal=not internet, labels=labels,
                options={"com.docker.network.bridge.name": job_network.bridge_name()})
    except job_network.JobNetworkError as exc:
        raise ExecutorError(f"the job's network cannot be firewalled: {exc}") from None
    except (APIError, DockerException) as exc:
        raise ExecutorError(f"could not create the job's network: "
                            f"{getattr(exc, 'explanation', None) or exc}") from None


def remove_network(client: docker.DockerClient, name: str) -> None:
    try:
        client.networks.get(name).remove()
    except NotFound:
        pass
    except APIError as exc:
        log.warning("could not remove network %s: %s", name, exc)


def remove_container(container: Container) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        log.warning("could not remove container %s: %s", container.name, exc)


def workspace_volumes(workspace: Path, read_only_mounts: dict[str, str]) -> dict[str, dict]:
    """The job's workspace read-write at :data:`WORKSPACE`, and its read-only mounts."""
    volumes = {str(workspace): {"bind": WORKSPACE, "mode": "rw"}}
    volumes.update({host: {"bind": inside, "mode": "ro"}
                    for host, inside in read_only_mounts.items()})
    return volumes


def start_container(client: docker.DockerClient, image: str, name: str, *,
                    env: dict[str, str], command: list[str] | None, labels: dict[str, str],
                    limits: Limits, network: str | None, aliases: list[str],
                    volumes: dict[str, dict]) -> Container:
    """Start one container of a job: its limits, labels and network; in the workspace
    when it has one (``volumes``).

    Raises:
        ExecutorError: the engine refused it.
    """
    endpoint = client.api.create_endpoint_config(aliases=aliases) if aliases else None
    try:
        return client.containers.run(
            image, command, name=name, detach=True, init=True, labels=labels,
            environment=env, working_dir=WORKSPACE if volumes else None, volumes=volumes,
            mem_limit=limits.memory, memswap_limit=limits.memory,
            nano_cpus=int(limits.cpus * 1e9), pids_limit=limits.pids, privileged=False,
            security_opt=["no-new-privileges"], cap_drop=["ALL"], cap_add=CAPABILITIES,
            network=network,
            networking_config={network: endpoint} if endpoint else None,
        )
    except APIError as exc:
        raise ExecutorError(f"could not start a container from {image}: "
                            f"{exc.explanation or exc}") from None
