"""A runner outside its Docker engine's network namespace still firewalls its jobs.

A runner in a container with the engine's socket mounted, or one of several runner
hosts sharing one engine, runs in a network namespace of its own, where the job
bridges do not exist. With ``SLIPWAY_ENGINE_NETNS`` it installs, checks and removes the
job network's rules in the engine's namespace. Each test runs the runner's code in a
namespace of its own (:mod:`tests.topology`) against this machine's engine, and has a
real job try to reach a listener on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.polling import wait_for
from tests.test_job_network import host_addresses, host_listener, reaches
from tests.topology import ROOT, Network, engine_netns, unavailable

__all__ = ["host_listener"]  # a fixture the tests below use

pytestmark = [pytest.mark.docker, pytest.mark.topology]

#: Runs a job in this namespace with the real executor, says its gateway, then on each
#: line of standard input probes the port and addresses the line names.
RUNNER = """\
import sys, tempfile
from pathlib import Path
import docker
from tests.test_job_network import Job
with Job(docker.from_env(), Path(tempfile.mkdtemp())) as job:
    print("gateway", job.gateway(), flush=True)
    for line in sys.stdin:
        port, *addresses = line.split()
        print(job.probe(int(port), addresses), end="", flush=True)
        print("done", flush=True)
"""
REMOVE_RULES = "from runners import job_network; print('removed', job_network.remove_rules())"
INSTALL = "from runners import job_network; job_network.install('internet')"
READ_NETWORK = ("from runners import job_network as n; print(repr((n.attached_subnets(), "
                "sorted(n.bridges()), 'docker0' in n.interfaces())))")


@pytest.fixture
def namespaces():
    """Two runner hosts: network namespaces of their own on this machine."""
    why = unavailable()
    if why:
        pytest.skip(f"runner hosts as network namespaces: {why}")
    network = Network(["runner-a", "runner-b"])
    yield network
    network.close()


def runner_env(engine: bool) -> dict[str, str]:
    """A runner's environment, naming the engine's namespace when ``engine``."""
    env = {name: value for name, value in os.environ.items()
           if name != "SLIPWAY_ENGINE_NETNS"}
    env["PYTHONPATH"] = str(ROOT)
    if engine:
        env["SLIPWAY_ENGINE_NETNS"] = engine_netns()
    return env


def in_namespace(network: Network, host: str, code: str, engine: bool, **options):
    """Python ``code`` in ``host``'s namespace (a ``Popen`` when ``options`` ask for pipes)."""
    command = ["ip", "netns", "exec", network.hosts[host].netns, sys.executable, "-c", code]
    if options:
        return subprocess.Popen(command, cwd=ROOT, env=runner_env(engine), text=True,
                                **options)
    return subprocess.run(command, cwd=ROOT, env=runner_env(engine), capture_output=True,
                          text=True, check=False, timeout=120)


def iptables_rules(network: Network | None = None, host: str = "") -> str:
    prefix = ["ip", "netns", "exec", network.hosts[host].netns] if network else []
    return subprocess.run([*prefix, "iptables", "-w", "-S"], check=True, capture_output=True,
                          text=True).stdout


class Runner:
    """A job held open by a runner in a namespace: probe from it, then let it end."""

    def __init__(self, network: Network, host: str) -> None:
        self.process = in_namespace(network, host, RUNNER, engine=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        first = self.process.stdout.readline()
        if not first.startswith("gateway "):
            self.process.stdin.close()
            raise AssertionError(first + self.process.stdout.read())
        self.gateway = first.split()[1]

    def probe(self, port: int, addresses: list[str]) -> str:
        self.process.stdin.write(f"{port} {' '.join(addresses)}\n")
        self.process.stdin.flush()
        lines = []
        while (line := self.process.stdout.readline()) not in ("done\n", ""):
            lines.append(line)
        return "".join(lines)

    def close(self) -> None:
        """End the job (its containers and network go) and the runner."""
        self.process.stdin.close()
        rest = self.process.stdout.read()
        self.process.stdout.close()
        assert self.process.wait(timeout=60) == 0, rest


def test_without_the_engines_namespace_a_runner_in_its_own_refuses_to_start(namespaces):
    done = in_namespace(namespaces, "runner-a", INSTALL, engine=False)
    assert done.returncode != 0
    assert "the DOCKER-USER chain is missing in the runner's network namespace" in done.stderr
    assert "SLIPWAY_ENGINE_NETNS" in done.stderr


def test_a_runner_in_another_namespace_firewalls_its_jobs_in_the_engines(namespaces,
                                                                         host_listener):
    addresses = host_addresses()
    assert all(reaches(address, host_listener) for address in addresses)
    runner = Runner(namespaces, "runner-a")
    try:
        out = runner.probe(host_listener, [runner.gateway, *addresses])
        engine_rules, own_rules = iptables_rules(), iptables_rules(namespaces, "runner-a")
    finally:
        runner.close()
    for address in [runner.gateway, *addresses]:
        assert f"{address} blocked" in out, out
    assert "host-secret" not in out
    assert "-A DOCKER-USER -i slipway+ -j SLIPWAY-JOBS" in engine_rules
    assert "-A INPUT -i slipway+ -j SLIPWAY-JOBS-INPUT" in engine_rules
    assert "SLIPWAY" not in own_rules


def test_a_runner_stopping_keeps_the_rules_another_namespaces_job_needs(namespaces,
                                                                        host_listener):
    runner = Runner(namespaces, "runner-a")
    try:
        stopped = in_namespace(namespaces, "runner-b", REMOVE_RULES, engine=True)
        assert stopped.returncode == 0, stopped.stderr
        assert "removed False" in stopped.stdout
        assert "-A DOCKER-USER -i slipway+ -j SLIPWAY-JOBS" in iptables_rules()
        out = runner.probe(host_listener, [runner.gateway])
    finally:
        runner.close()
    assert f"{runner.gateway} blocked" in out, out


def test_a_runner_reads_the_subnets_and_bridges_of_the_engines_namespace(namespaces):
    from runners import job_network

    def here() -> str:
        return repr((job_network.attached_subnets(), sorted(job_network.bridges()),
                     "docker0" in job_network.interfaces()))

    def read_alike() -> bool:
        """The runner's reading matches this namespace's, taken before and after it: the
        jobs of another test session on this engine may add or remove a bridge between."""
        before = here()
        reading = in_namespace(namespaces, "runner-a", READ_NETWORK, engine=True)
        assert reading.returncode == 0, reading.stderr
        return reading.stdout.strip() == before == here()

    wait_for(read_alike, what="the runner reading the engine namespace's networks")
    # Its own namespace has only its veth's subnet, no bridge, no docker0.
    own = in_namespace(namespaces, "runner-a", READ_NETWORK, engine=False)
    assert own.stdout.strip() == repr(([str(namespaces.subnet)], [], False))
