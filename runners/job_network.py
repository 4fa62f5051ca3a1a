"""The host firewall around job networks: what a build's containers may reach.

Every job gets a bridge network of its own, whose interface is named
``slipway<hex>`` (:func:`bridge_name`); that prefix is what the rules match, so
they need no address plan. Docker's own rules keep user-defined bridges apart and
give an ``internal`` network no route out (``SLIPWAY_JOB_NETWORK=isolated``), but
let a container reach the runner host, the host's other networks and everything
private beyond them. Two chains of Slipway's own add what Docker leaves open:

- ``SLIPWAY-JOBS``, jumped to from ``DOCKER-USER`` for traffic leaving a job bridge
  that the host forwards: replies on established connections pass; traffic within
  one job's bridge (its services) passes; traffic to another job's bridge is
  refused; DNS to the host's resolvers passes (Docker's embedded resolver forwards
  from inside the container's namespace); the private ranges (where Redis, the
  database and the web servers live), the host's directly attached subnets and
  link-local ``169.254.0.0/16`` (cloud metadata) are refused. The rest (the
  internet) goes on to Docker's rules.
- ``SLIPWAY-JOBS-INPUT``, jumped to from ``INPUT`` (traffic to any of the host's
  own addresses, the bridge's gateway included, never passes ``DOCKER-USER``):
  replies pass, DNS to a resolver on the host passes, everything else is refused.

Refused means an ICMP "administratively prohibited" answer: a build's connection
fails at once ("No route to host") instead of hanging. The rules are the same for
every runner on a host; each runner checks them before it makes a job's network and
restores them if they are missing (:func:`rules_in_force`), and the last runner to
stop removes them (:func:`remove_rules`).

The rules belong in the Docker engine's network namespace, where the job bridges
are. A runner in a namespace of its own that reaches the engine through its socket
(a runner in a container with the socket mounted, or one of several runner "hosts"
sharing one engine) names the engine's namespace in ``SLIPWAY_ENGINE_NETNS`` (e.g.
``/proc/1/ns/net``): every ``iptables`` command then runs there through ``nsenter``,
and the subnets, bridges and interfaces the rules depend on are read there too, so
every runner of the engine computes the same rules and none removes them while
another's job bridge exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BRIDGE_PREFIX = "slipway"
FORWARD_CHAIN = "SLIPWAY-JOBS"
INPUT_CHAIN = "SLIPWAY-JOBS-INPUT"
#: Where Redis, the database and the web servers live when they are not on this host,
#: plus link-local (169.254.169.254 answers cloud metadata, credentials included).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                  "169.254.0.0/16")
REFUSE = "-j REJECT --reject-with icmp-admin-prohibited"
RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))
#: Held while rules are checked and a job network made, or rules removed, so that a
#: runner stopping never removes the rules under a job another runner is starting.
LOCK_FILE = Path("/run/slipway-job-network.lock")
#: The network namespace of the Docker engine, when the runner is not in it.
ENGINE_NETNS = "SLIPWAY_ENGINE_NETNS"
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_IPTABLES_SECONDS = 30


class JobNetworkError(RuntimeError):
    """The firewall rules cannot be installed here; the message says why and what to do."""


def bridge_name() -> str:
    """A fresh interface name for a job's bridge (at most 15 characters, as Linux allows)."""
    return BRIDGE_PREFIX + secrets.token_hex(4)


def unenforced(mode: str) -> str:
    """What a job could reach without the rules, for ``SLIPWAY_JOB_NETWORK=mode``."""
    if mode == "isolated":
        return ("a build could still reach the runner host's own services (Redis, the web "
                "server, the database) through its network's gateway")
    return ("a build could reach the runner host's own services (Redis, the web server, the "
            "database), other builds' containers, the private networks behind the host and "
            "cloud metadata at 169.254.169.254")


def check(mode: str) -> None:
    """Raise :class:`JobNetworkError` when this runner cannot install the rules.

    Args:
        mode: ``SLIPWAY_JOB_NETWORK``, to say what would go unenforced.
    """
    why = _why_not()
    if why:
        raise JobNetworkError(f"{why}; without the job network's firewall rules "
                              f"(SLIPWAY_JOB_NETWORK={mode}) {unenforced(mode)}")


def _why_not() -> str | None:
    """Why the rules cannot be installed from here, or None when they can."""
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        return (f"DOCKER_HOST={docker_host} is another machine: a runner must run on its "
                "Docker engine's host to firewall the jobs' networks")
    if os.geteuid() != 0:
        return "the runner is not root, and only root may change the firewall (iptables)"
    if _program("iptables") is None or _program("iptables-restore") is None:
        return "iptables is not installed (Debian: apt-get install iptables)"
    netns = engine_netns()
    if netns is not None:
        if _program("nsenter") is None or _program("ip") is None:
            return (f"{ENGINE_NETNS} needs nsenter and ip (Debian: apt-get install "
                    "util-linux iproute2)")
        if not Path(netns).exists():
            return (f"{ENGINE_NETNS}={netns} does not exist: give the Docker engine's network "
                    "namespace, e.g. /proc/1/ns/net or /proc/$(pidof dockerd)/ns/net")
    return None


def engine_netns() -> str | None:
    """The Docker engine's network namespace (``SLIPWAY_ENGINE_NETNS``), or None when it is
    the runner's own."""
    return os.environ.get(ENGINE_NETNS) or None


@contextmanager
def rules_in_force() -> Iterator[None]:
    """Make sure the rules are installed, and keep them while the caller makes a job network.

    Raises:
        JobNetworkError: the rules cannot be installed.
    """
    why = _why_not()
    if why:
        raise JobNetworkError(why)
    with _host_lock():
        _ensure()
        yield


def install(mode: str) -> None:
    """Check and install the rules at a runner's start (the jobs re-check them)."""
    check(mode)
    with _host_lock():
        _ensure()


def remove_rules() -> bool:
    """Remove the rules unless some job bridge still needs them; returns whether removed."""
    if _why_not():
        return False
    with _host_lock():
        if any(name.startswith(BRIDGE_PREFIX) for name in interfaces()):
            return False
        for chain, jump in _jumps():
            while _iptables("-D", chain, *jump.split(), check=False) == 0:
                pass
        for chain in (FORWARD_CHAIN, INPUT_CHAIN):
            _iptables("-F", chain, check=False)
            _iptables("-X", chain, check=False)
    return True


def rules() -> dict[str, list[str]]:
    """The rules of each chain, as ``iptables -A CHAIN`` arguments."""
    dns = [f"-d {server}/32 -p {protocol} --dport 53 -j RETURN"
           for server in nameservers() for protocol in ("udp", "tcp")]
    refused = sorted(set(PRIVATE_RANGES) | set(attached_subnets()),
                     key=ipaddress.ip_network)
    forward = [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-o {BRIDGE_PREFIX}+ -m physdev --physdev-is-bridged -j RETURN",
        f"-o {BRIDGE_PREFIX}+ {REFUSE}",
        *dns,
        *[f"-d {network} {REFUSE}" for network in refused],
    ]
    host = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN", *dns, REFUSE]
    digest = hashlib.sha256(repr([forward, host]).encode()).hexdigest()[:12]
    # The first rule carries a digest of them all, so a check is one `iptables -S`.
    forward[0] = forward[0].replace(" -j", f" -m comment --comment slipway:{digest} -j", 1)
    return {FORWARD_CHAIN: forward, INPUT_CHAIN: host}


def nameservers() -> list[str]:
    """The host's IPv4 resolvers, which Docker's embedded resolver forwards to."""
    found: list[str] = []
    for path in RESOLV_CONFS:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    address = ipaddress.IPv4Address(parts[1])
                except ValueError:
                    continue
                if not address.is_loopback and str(address) not in found:
                    found.append(str(address))
    return found


def attached_subnets() -> list[str]:
    """The IPv4 subnets on the engine host's own links, bridges (Docker's, the jobs') aside."""
    subnets = []
    skipped = bridges()
    for line in _engine_file("/proc/net/route").splitlines()[1:]:
        iface, destination, gateway, _flags, *_, mask = line.split()[:8]
        if gateway != "00000000" or destination == "00000000":
            continue
        if iface in skipped:
            continue
        network = ipaddress.IPv4Network(
            (_little_endian(destination), _little_endian(mask)), strict=False)
        subnets.append(str(network))
    return subnets


def interfaces() -> list[str]:
    """The names of the network interfaces in the Docker engine's namespace."""
    lines = _engine_file("/proc/net/dev").splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def bridges() -> set[str]:
    """The bridges in the Docker engine's namespace.

    ``/sys/class/net`` shows the namespace that mounted ``/sys``, not the caller's, so in
    the engine's namespace ``ip`` lists them instead.
    """
    if engine_netns() is None:
        return {path.name for path in Path("/sys/class/net").iterdir()
                if (path / "bridge").exists()}
    out = _run(_in_engine([_program("ip"), "-o", "link", "show", "type", "bridge"]))
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _engine_file(path: str) -> str:
    """A file of ``/proc/net`` as the Docker engine's namespace shows it (``/proc/net`` is
    the reading process's namespace, so ``cat`` reads it from inside)."""
    if engine_netns() is None:
        return Path(path).read_text()
    return _run(_in_engine(["cat", path]))


def _in_engine(command: list[str]) -> list[str]:
    """``command`` as run in the Docker engine's network namespace."""
    netns = engine_netns()
    if netns is None:
        return command
    return [_program("nsenter"), f"--net={netns}", "--", *command]


def _little_endian(hex_address: str) -> str:
    """An address as ``/proc/net/route`` writes it (hex, host byte order) in dotted form."""
    return str(ipaddress.IPv4Address(bytes.fromhex(hex_address)[::-1]))


def _jumps() -> list[tuple[str, str]]:
    """(chain, rule) of the jumps into Slipway's chains, for what leaves a job bridge."""
    return [("DOCKER-USER", f"-i {BRIDGE_PREFIX}+ -j {FORWARD_CHAIN}"),
            ("INPUT", f"-i {BRIDGE_PREFIX}+ -j {INPUT_CHAIN}")]


def _ensure() -> None:
    """Install the rules unless the host has them already (one ``iptables -S`` when it has)."""
    wanted = rules()
    current = _run(_in_engine([_program("iptables"), "-w", "-S"])).splitlines()
    marker = re.search(r"slipway:[0-9a-f]+", wanted[FORWARD_CHAIN][0]).group()
    if any(marker in line for line in current) and all(
            f"-A {chain} {jump}" in current for chain, jump in _jumps()):
        return
    if "-N DOCKER-USER" not in current:
        where = f"in {engine_netns()}" if engine_netns() else "in the runner's network namespace"
        raise JobNetworkError(
            f"the DOCKER-USER chain is missing {where}: start the Docker engine (with its "
            f"iptables rules, the default) before the runner; a runner outside the engine's "
            f"network namespace (in a container, or in a namespace of its own) must name it "
            f"in {ENGINE_NETNS}, e.g. /proc/1/ns/net")
    # Declaring a chain in iptables-restore (even with --noflush) replaces its rules at once.
    table = ["*filter", *[f":{chain} - [0:0]" for chain in wanted]]
    table += [f"-A {chain} {rule}" for chain, chain_rules in wanted.items()
              for rule in chain_rules]
    _run(_in_engine([_program("iptables-restore"), "-w", "--noflush"]),
         stdin="\n".join([*table, "COMMIT", ""]))
    for chain, jump in _jumps():
        if _iptables("-C", chain, *jump.split(), check=False) != 0:
            _iptables("-I", chain, "1", *jump.split())


@contextmanager
def _host_lock() -> Iterator[None]:
    """One runner process at a time on this host checks, installs or removes the rules."""
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _program(name: str) -> str | None:
    """``name`` on PATH or in the sbin folders a non-login root shell may lack."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    return shutil.which(name, path=path)


def _iptables(*args: str, check: bool = True) -> int:
    """Run ``iptables -w ARGS``; returns its exit code (raises on failure when ``check``)."""
    command = _in_engine([_program("iptables"), "-w", *args])
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            timeout=_IPTABLES_SECONDS)
    if check and result.returncode != 0:
        raise JobNetworkError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result.returncode


def _run(command: list[str], stdin: str | None = None) -> str:
    """The output of ``command``; raises :class:`JobNetworkError` quoting it when it fails."""
    result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                            check=False, timeout=_IPTABLES_SECONDS)
    if result.returncode != 0:
        raise JobNetworkError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result.stdout
