"""Hosts on one machine: network namespaces on a bridge of their own.

Each host is a network namespace with its own loopback and one address on a bridge
that the run creates, so the processes started in it (``ip netns exec``) bind, listen
and connect as on a machine of their own, while they share this machine's filesystem,
PID namespace and Docker engine. This machine reaches every host through the bridge's
own address; nothing is routed anywhere else.

Every name a run makes (namespaces, bridge, veth pairs, the iptables rule that lets
bridged traffic between the hosts pass Docker's ``FORWARD`` policy) starts with the
run's prefix, ``swt`` and four hex digits, and a note in :data:`NOTES`, written before
anything is made, names the process that made them. :func:`clean_leftovers` removes
what a run whose process is gone left behind, so a run that crashed is cleaned by the
next one. Used by ``tests/deployment.py`` (the test and ``make bench``).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, DockerException

from runners.owner import RunnerProcess
from tests.polling import poll

ROOT = Path(__file__).resolve().parent.parent
FAMILY = "swt"
#: Notes naming the process that made each run's namespaces, and what to clean after it.
NOTES = Path("/run/slipway-topology")
#: One /24 of it per run: the first no note and no route of this machine uses.
SUBNETS = ipaddress.IPv4Network("10.231.0.0/16")
STOP_SECONDS = 20.0


class TopologyError(RuntimeError):
    """A host could not be made or a command in it failed; the message says which."""


def unavailable() -> str | None:
    """Why this machine cannot make hosts as network namespaces, or None when it can."""
    if os.geteuid() != 0:
        return "making hosts as network namespaces needs root"
    for program in ("ip", "iptables"):
        if shutil.which(program) is None:
            return f"{program} is not installed"
    probe = f"{FAMILY}probe{secrets.token_hex(2)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True,
                          check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False)
    return None


def engine_netns() -> str:
    """The Docker engine's network namespace: dockerd's when it runs here, else ours (the
    engine this process reaches through its socket serves its own namespace)."""
    found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    pid = found.stdout.split()[0] if found.stdout.split() else str(os.getpid())
    return f"/proc/{pid}/ns/net"


def sh(*command: str | Path, stdin: str | None = None, check: bool = True) -> str:
    """Run a command on this machine; its output (raises :class:`TopologyError` quoting
    its error when it fails and ``check``)."""
    done = subprocess.run([str(part) for part in command], input=stdin, capture_output=True,
                          text=True, check=False)
    if check and done.returncode != 0:
        raise TopologyError(f"`{' '.join(map(str, command))}` exited {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


@dataclass
class Host:
    """One network namespace and the processes started in it, one per role."""

    name: str
    netns: str
    address: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, role: str, command: list[str | Path], env: dict[str, str],
              cwd: Path = ROOT) -> subprocess.Popen:
        """Start ``command`` in this host as ``role`` (its own session, its own log)."""
        with (self.logs / f"{self.name}.{role}.log").open("ab") as log:
            process = subprocess.Popen(["ip", "netns", "exec", self.netns,
                                        *[str(part) for part in command]],
                                       cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes[role] = process
        return process

    def run(self, *command: str | Path, env: dict[str, str]) -> str:
        """Run a command in this host to its end; its output."""
        done = subprocess.run(["ip", "netns", "exec", self.netns, *map(str, command)],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TopologyError(f"on {self.name}, `{' '.join(map(str, command))}` exited "
                                f"{done.returncode}: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def stop(self, role: str, timeout: float = STOP_SECONDS) -> None:
        """End one role: SIGTERM to its process, which stops its children as it does on a
        real host; SIGKILL to its whole session at the deadline."""
        process = self.processes.pop(role)
        _signal(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()

    def pids(self) -> list[int]:
        """Every process whose network namespace is this host's."""
        return pids_in(self.netns)

    def kill(self) -> list[int]:
        """SIGKILL every process of this host, as a machine losing power; returns their ids."""
        killed = _end_all(self.netns, signal.SIGKILL, timeout=10)
        for process in self.processes.values():
            process.wait()
        self.processes.clear()
        return killed

    def shut_down(self) -> None:
        """SIGTERM each role's process, as a host shutting down does (see :func:`stop_all`)."""
        for process in self.processes.values():
            _signal(process.pid, signal.SIGTERM)

    def alive(self, role: str) -> bool:
        """Whether the role's first process still runs."""
        process = self.processes.get(role)
        return process is not None and process.poll() is None

    def tail(self, role: str, size: int = 3000) -> str:
        """The end of a role's log, to say why something failed."""
        path = self.logs / f"{self.name}.{role}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""


def stop_all(hosts: list[Host], timeout: float = STOP_SECONDS) -> None:
    """Shut ``hosts`` down together; SIGKILL every process of theirs left at the deadline."""
    for host in hosts:
        host.shut_down()
    poll(lambda: not any(host.pids() for host in hosts), timeout)
    for host in hosts:
        host.kill()


def pids_in(netns: str) -> list[int]:
    """The processes in network namespace ``netns``."""
    return [int(pid) for pid in sh("ip", "netns", "pids", netns, check=False).split()]


def _end_all(netns: str, sig: signal.Signals, timeout: float) -> list[int]:
    """Send ``sig`` to every process of ``netns``, again while any is left (a worker pool
    forks new ones), until none is or the deadline passes; returns the ids signalled."""
    signalled: set[int] = set()

    def none_left() -> bool:
        pids = pids_in(netns)
        for pid in pids:
            _signal(pid, sig)
        signalled.update(pids)
        return not pids

    poll(none_left, timeout)
    return sorted(signalled)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


class Network:
    """A bridge and one network namespace per host name, addressed in a private /24.

    ``close`` ends every process of the hosts and removes all the run made; it never
    raises, so that a failing test still leaves the machine as it found it.
    """

    def __init__(self, names: list[str], docker_labels: list[str] | None = None) -> None:
        clean_leftovers()
        NOTES.mkdir(parents=True, exist_ok=True)
        self.prefix = FAMILY + secrets.token_hex(2)
        self.bridge = f"{self.prefix}-br"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        # PostgreSQL runs as its own user inside: it must be able to pass through.
        self.workdir.chmod(0o711)
        self.logs = self.workdir / "logs"
        self.logs.mkdir()
        self.hosts: dict[str, Host] = {}
        self._note = NOTES / f"{self.prefix}.json"
        self.docker_labels = docker_labels or []
        try:
            with _lock():
                self.subnet = _free_subnet()
                self._write_note()
                self._make_bridge()
            for index, name in enumerate(names):
                self._make_host(index, name)
        except BaseException:
            self.close()
            raise

    @property
    def gateway(self) -> str:
        """This machine's address on the bridge."""
        return str(self.subnet[1])

    @property
    def forward_rule(self) -> list[str]:
        """Lets traffic bridged between the hosts pass (Docker's FORWARD policy is DROP,
        and with ``br_netfilter`` bridged frames pass FORWARD)."""
        return ["FORWARD", "-i", self.bridge, "-o", self.bridge,
                "-m", "comment", "--comment", self.prefix, "-j", "ACCEPT"]

    def _write_note(self) -> None:
        note = {"owner": RunnerProcess.current().label(), "prefix": self.prefix,
                "subnet": str(self.subnet), "workdir": str(self.workdir),
                "docker_labels": self.docker_labels}
        self._note.write_text(json.dumps(note))

    def _make_bridge(self) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        sh("iptables", "-w", "-I", *self.forward_rule[:1], "1", *self.forward_rule[1:])

    def _make_host(self, index: int, name: str) -> None:
        netns, veth = f"{self.prefix}-{name}", f"{self.prefix}-v{index}"
        address = str(self.subnet[index + 2])
        sh("ip", "netns", "add", netns)
        self.hosts[name] = Host(name, netns, address, self.logs)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")

    def set_docker_labels(self, labels: list[str]) -> None:
        """Docker objects (``label=value``) that ``close`` and a later run's cleaning remove."""
        self.docker_labels = labels
        self._write_note()

    def close(self, stages: list[tuple[list[str], float]] | None = None) -> None:
        """Shut the hosts down a stage at a time (``stages``: host names and the seconds
        they have before SIGKILL; then the rest), and remove all the run made."""
        staged = [name for names, _seconds in stages or [] for name in names]
        rest = [name for name in self.hosts if name not in staged]
        for names, seconds in [*(stages or []), (rest, STOP_SECONDS)]:
            hosts = [self.hosts[name] for name in names if name in self.hosts]
            _quietly(lambda hosts=hosts, seconds=seconds: stop_all(hosts, seconds))
        _quietly(lambda: remove_docker_objects(self.docker_labels))
        _remove_run(self.prefix, Path(self.workdir))
        self._note.unlink(missing_ok=True)


def _quietly(action) -> None:
    """Run a cleaning step; a failure must not keep the next ones from running."""
    try:
        action()
    except (TopologyError, OSError, DockerException, subprocess.SubprocessError) as exc:
        print(f"topology cleanup: {exc}")


def remove_docker_objects(labels: list[str]) -> None:
    """Remove the containers, then the networks, carrying all of ``labels``."""
    if not labels:
        return
    client = docker.from_env()
    try:
        filters = {"label": labels}
        for container in client.containers.list(all=True, filters=filters,
                                                ignore_removed=True):
            try:
                container.remove(force=True)
            except APIError:
                pass
        for network in client.networks.list(filters=filters):
            try:
                network.remove()
            except APIError:
                pass
    finally:
        client.close()


def _remove_run(prefix: str, workdir: Path) -> None:
    """Remove a run's namespaces (their processes first), bridge, rule and folder."""
    for netns in sh("ip", "netns", "list", check=False).split("\n"):
        name = netns.split(" ")[0]
        if name.startswith(f"{prefix}-"):
            _quietly(lambda name=name: _end_all(name, signal.SIGKILL, timeout=10))
            sh("ip", "netns", "delete", name, check=False)
    for line in sh("ip", "-o", "link", "show", check=False).splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link.startswith(prefix):
            sh("ip", "link", "delete", link, check=False)
    for rule in sh("iptables", "-w", "-S", "FORWARD", check=False).splitlines():
        if f"--comment {prefix} " in rule + " ":
            sh("iptables", "-w", *rule.replace("-A ", "-D ", 1).split(), check=False)
    shutil.rmtree(workdir, ignore_errors=True)


def clean_leftovers() -> list[str]:
    """Remove what runs whose process is gone left behind; returns their prefixes."""
    cleaned = []
    for path in sorted(NOTES.glob(f"{FAMILY}*.json")) if NOTES.is_dir() else []:
        try:
            note = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        owner = RunnerProcess.parse(note.get("owner", ""))
        if owner is None or not owner.is_gone():
            continue
        _quietly(lambda note=note: remove_docker_objects(note.get("docker_labels", [])))
        _remove_run(note["prefix"], Path(note["workdir"]))
        path.unlink(missing_ok=True)
        cleaned.append(note["prefix"])
    return cleaned


@contextmanager
def _lock() -> Iterator[None]:
    """One run at a time picks its subnet and makes its bridge."""
    NOTES.mkdir(parents=True, exist_ok=True)
    with (NOTES / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /24 of :data:`SUBNETS` that no other run's note and no route here uses."""
    taken = set()
    for path in NOTES.glob(f"{FAMILY}*.json"):
        try:
            taken.add(ipaddress.IPv4Network(json.loads(path.read_text())["subnet"]))
        except (OSError, ValueError, KeyError):
            continue
    routes = sh("ip", "-4", "route", "show", "table", "all", check=False)
    addresses = sh("ip", "-4", "-o", "addr", "show", check=False)
    for subnet in SUBNETS.subnets(new_prefix=24):
        if subnet in taken:
            continue
        stem = str(subnet.network_address).rsplit(".", 1)[0] + "."
        if stem not in routes and stem not in addresses:
            return subnet
    raise TopologyError(f"no free /24 left in {SUBNETS}")
