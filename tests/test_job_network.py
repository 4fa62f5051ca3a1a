"""What a job's network may reach: its own containers and the internet, never another
job's containers nor the runner host itself. Each test runs real jobs through the
Docker executor and has them try to connect to a listener that is really there."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from runners.docker_executor import LABEL, LABEL_ATTEMPT, LABEL_INSTANCE, DockerExecutor
from runners.executor import JobEnvironment
from tests.conftest import IMAGE, SLIPWAY, wait_for

pytestmark = pytest.mark.docker

#: Tries each address on the port, printing "ADDRESS reached: WHAT IT SAID" or
#: "ADDRESS blocked: WHY"; a refused or unanswered connection is "blocked".
PROBE = """\
import socket, sys
port = int(sys.argv[1])
for address in sys.argv[2:]:
    try:
        with socket.create_connection((address, port), timeout=3) as connection:
            print(address, "reached:", connection.recv(100).decode())
    except OSError as exc:
        print(address, "blocked:", exc)
"""
#: Answers every connection on port 8000 with a secret, in the background.
LISTENER = """\
nohup python3 -c '
import socket
server = socket.create_server(("0.0.0.0", 8000))
while True:
    connection, _ = server.accept()
    connection.sendall(b"secret-of-job-a")
    connection.close()
' >/dev/null 2>&1 &
"""


class Job:
    """One job's containers, made by the real executor, and what its steps printed."""

    def __init__(self, docker_client, tmp_path: Path, internet: bool | None = None) -> None:
        self.instance = f"tests-{secrets.token_hex(4)}"
        workspace = tmp_path / self.instance
        workspace.mkdir()
        (workspace / "probe.py").write_text(PROBE)
        extra = {} if internet is None else {"internet": internet}
        self.environment = JobEnvironment(
            name=f"slipway-job-test-{self.instance}", image=IMAGE, env={}, workspace=workspace,
            labels={LABEL: "0", LABEL_ATTEMPT: "0", LABEL_INSTANCE: self.instance},
            lifetime_seconds=120, **extra)
        self.docker = docker_client
        self.executor = DockerExecutor(docker_client)

    def __enter__(self) -> Job:
        self.executor.setup(self.environment, lambda _text: None)
        return self

    def __exit__(self, *_exc) -> None:
        self.executor.destroy()

    def run(self, script: str) -> str:
        chunks: list[str] = []
        code = self.executor.run_step(script, chunks.append)
        assert code == 0, "".join(chunks)
        return "".join(chunks)

    def probe(self, port: int, addresses: list[str]) -> str:
        return self.run(f"python3 probe.py {port} {' '.join(addresses)}")

    def _endpoint(self) -> tuple[str, dict]:
        """The name of the network the job's container is on, and its endpoint there."""
        container, = self.docker.containers.list(
            filters={"label": f"{LABEL_INSTANCE}={self.instance}"})
        (name, endpoint), = container.attrs["NetworkSettings"]["Networks"].items()
        return name, endpoint

    def network(self) -> dict:
        """The Docker network the job's container is attached to (its inspect data)."""
        return self.docker.networks.get(self._endpoint()[0]).attrs

    def gateway(self) -> str:
        """The host's address on the job's network."""
        return self._endpoint()[1]["Gateway"]


def host_addresses() -> list[str]:
    """The runner host's IPv4 addresses other than loopback, as ``ip -4 addr`` lists them."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], check=True, capture_output=True,
                         text=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [address for address in addresses if not address.startswith("127.")]


@pytest.fixture
def host_listener():
    """A server on the host's 0.0.0.0 that answers "host-secret"; yields its port."""
    server = socket.create_server(("0.0.0.0", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(b"host-secret")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def reaches(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as connection:
            return connection.recv(100) != b""
    except OSError:
        return False


def test_a_job_cannot_connect_to_another_jobs_container(docker_client, tmp_path):
    with Job(docker_client, tmp_path) as a, Job(docker_client, tmp_path) as b:
        a.run(LISTENER)
        address_of_a = a.run("hostname -i").split()[0]
        # A listens for real: the runner host reaches it.
        wait_for(lambda: reaches(address_of_a, 8000), timeout=20)
        out = b.probe(8000, [address_of_a])
        assert f"{address_of_a} blocked" in out, out
        assert "secret-of-job-a" not in out
        assert a.network()["Name"] != b.network()["Name"]


def test_a_job_cannot_connect_to_the_runner_host(docker_client, tmp_path, host_listener):
    addresses = host_addresses()
    # The host's server answers on each of its addresses.
    assert all(reaches(address, host_listener) for address in addresses)
    with Job(docker_client, tmp_path) as job:
        targets = [job.gateway(), *addresses]
        out = job.probe(host_listener, targets)
    for address in targets:
        assert f"{address} blocked" in out, out
    assert "host-secret" not in out


def test_internet_mode_has_a_route_out_and_isolated_mode_none(docker_client, tmp_path):
    with Job(docker_client, tmp_path, internet=True) as job:
        assert job.network()["Internal"] is False
        assert job.network()["Driver"] == "bridge"
    with Job(docker_client, tmp_path, internet=False) as job:
        assert job.network()["Internal"] is True


def test_an_isolated_job_cannot_connect_to_the_runner_host_either(docker_client, tmp_path,
                                                                  host_listener):
    with Job(docker_client, tmp_path, internet=False) as job:
        targets = [job.gateway(), *host_addresses()]
        out = job.probe(host_listener, targets)
    for address in targets:
        assert f"{address} blocked" in out, out
    assert "host-secret" not in out



def test_a_job_installs_the_rules_hooked_into_docker_user_and_input(docker_client, tmp_path):
    from runners import job_network

    # A runner stopping removes them, unless a job's bridge is still there (another
    # test's, when tests run side by side: read while no bridge came or went meanwhile).
    def job_bridges() -> list[str]:
        return sorted(path.name for path in Path("/sys/class/net").iterdir()
                      if path.name.startswith("slipway"))

    def stop_while_bridges_stay() -> tuple[bool, list[str], str] | None:
        before = job_bridges()
        removed, rules = job_network.remove_rules(), iptables_rules()
        return (removed, before, rules) if job_bridges() == before else None

    removed, bridges, rules = wait_for(stop_while_bridges_stay,
                                       what="a look while no job bridge came or went")
    assert removed == (not bridges)
    assert ("SLIPWAY-JOBS" in rules) == bool(bridges)

    with Job(docker_client, tmp_path):
        rules = iptables_rules().splitlines()
    assert "-A DOCKER-USER -i slipway+ -j SLIPWAY-JOBS" in rules
    assert "-A INPUT -i slipway+ -j SLIPWAY-JOBS-INPUT" in rules
    for refused in ("-o slipway+", "-d 169.254.0.0/16", "-d 10.0.0.0/8", "-d 192.168.0.0/16"):
        assert (f"-A SLIPWAY-JOBS {refused} -j REJECT --reject-with icmp-admin-prohibited"
                in rules)
    assert "-A SLIPWAY-JOBS-INPUT -j REJECT --reject-with icmp-admin-prohibited" in rules


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-S"], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("mode, unenforced", [
    ("internet", "other builds' containers, the private networks behind the host and cloud "
                 "metadata at 169.254.169.254"),
    ("isolated", "the runner host's own services (Redis, the web server, the database)"),
])
def test_a_runner_that_cannot_firewall_its_jobs_refuses_to_start_and_says_why(
        mode, unenforced, redis_url, tmp_path):
    env = {**os.environ, "SLIPWAY_REDIS_URL": redis_url, "SLIPWAY_JOB_NETWORK": mode,
           "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner"), "DOCKER_HOST": "tcp://127.0.0.1:1"}
    result = subprocess.run([SLIPWAY, "worker", "--burst"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "DOCKER_HOST=tcp://127.0.0.1:1 is another machine" in message, message
    assert unenforced in message, message
    assert "Traceback" not in result.stderr
