"""Slipway over several hosts: what holds when hosts come and go.

One deployment (:mod:`tests.deployment`) for the whole module: a db host (Redis with a
password and an append-only file, PostgreSQL), two web hosts (web, recorder, reporter
each) and three runner hosts (``slipway worker --count 2`` each, sharing this machine's
Docker engine), each host a network namespace of this machine. The tests send real
signed webhooks to the web hosts and kill real processes; a test that kills something
starts it again at its end, so each may also run alone. Run with ``-s`` to see which
host ran which build and what each kill did.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import docker
import pytest
import requests

from runners.docker_executor import LABEL_INSTANCE
from runners.owner import LABEL_RUNNER, RunnerProcess
from tests.conftest import IMAGE
from tests.deployment import Deployment, pipeline, wait_for
from tests.topology import Host, unavailable

pytestmark = [pytest.mark.topology, pytest.mark.docker]

#: A runner's lease outlives it by up to 20 s; its job then runs again elsewhere.
RETRY_SECONDS = 90
#: Every runner sweeps what dead runners left once a minute.
SWEEP_SECONDS = 90


@pytest.fixture(scope="module")
def deployment(docker_client) -> Iterator[Deployment]:
    why = unavailable()
    if why:
        pytest.skip(f"the topology tests make hosts as network namespaces: {why}")
    with Deployment(IMAGE, web=2, runners=3, slots=2) as made:
        yield made


@contextmanager
def explained(deployment: Deployment) -> Iterator[None]:
    """On a failed assertion, print the end of every process's log with it."""
    try:
        yield
    except AssertionError:
        print(deployment.logs())
        raise


def show(title: str, builds: dict[int, dict], web_of: dict[int, str] | None = None) -> None:
    """Print which web host took and which runner host ran each build."""
    print(f"\n{title}")
    for number, build in sorted(builds.items()):
        jobs = ", ".join(f"{job['runner']} (attempt {job['attempt']}, {job['status']}"
                         f"{', ' + job['error'] if job['error'] else ''})"
                         for job in build["jobs"])
        via = f" via {web_of[number]}" if web_of else ""
        print(f"  build #{number}{via}: {build['status']} on {jobs}")


def push_all(deployment: Deployment, sha: str, hosts: list[Host]) -> dict[int, str]:
    """One webhook of ``sha`` per host in ``hosts``, sent at once; web host by build."""
    def send(host: Host) -> tuple[int, str]:
        response = deployment.push(host, sha)
        assert response.status_code == 202, response.text
        return response.json()["build"]["number"], host.name

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(send, hosts))


def nothing_left_running(deployment: Deployment) -> None:
    for status in ("running", "queued"):
        listed = deployment.api(f"/builds?status={status}&per_page=1")
        assert listed["total"] == 0, f"{listed['total']} builds still {status}"


def test_webhooks_sent_to_both_web_hosts_are_all_recorded(deployment):
    sha = deployment.repository.commit(pipeline("true", IMAGE))
    web_of = push_all(deployment, sha, deployment.webs * 10)
    with explained(deployment):
        assert len(web_of) == 20
        assert Counter(web_of.values()) == {"web-1": 10, "web-2": 10}
        # Each web host sees every build, whichever host took its webhook.
        for host in deployment.webs:
            seen = deployment.builds(host)
            assert all(seen[number]["sha"] == sha for number in web_of), host.name
        builds = deployment.wait_finished(list(web_of), timeout=120)
        show("20 webhooks, 10 to each web host:", builds, web_of)
        assert {build["status"] for build in builds.values()} == {"passed"}


def test_builds_spread_over_all_runner_hosts(deployment):
    sha = deployment.repository.commit(pipeline("sleep 2", IMAGE))
    web_of = push_all(deployment, sha, deployment.webs * 15)
    with explained(deployment):
        builds = deployment.wait_finished(list(web_of), timeout=150)
        show("30 builds whose step sleeps 2 s:", builds, web_of)
        ran = Counter(job["runner"] for build in builds.values() for job in build["jobs"])
        print(f"  builds per runner host: {dict(sorted(ran.items()))}")
        assert {build["status"] for build in builds.values()} == {"passed"}
        assert set(ran) == {host.name for host in deployment.runners}


def test_every_build_ends_with_its_real_result_when_redis_restarts_mid_build(deployment):
    passing = deployment.repository.commit(pipeline("sleep 6", IMAGE))
    failing = deployment.repository.commit(pipeline("sleep 6; exit 3", IMAGE))
    expected = {number: "passed" for number in push_all(deployment, passing,
                                                        deployment.webs[:1] * 3)}
    expected.update({number: "failed" for number in push_all(deployment, failing,
                                                             deployment.webs[1:] * 3)})
    with explained(deployment):
        wait_for(lambda: len(running_steps(deployment)) == 6, 60, what="6 steps running")
        deployment.restart_redis()
        print("\nRedis restarted (SIGTERM, append-only file kept) while 6 steps ran")
        builds = deployment.wait_finished(list(expected), timeout=RETRY_SECONDS)
        show("builds across the restart:", builds)
        assert {number: build["status"] for number, build in builds.items()} == expected
        for number, build in builds.items():
            codes = [step["exit_code"] for step in build["jobs"][0]["steps"]]
            assert codes == ([0] if expected[number] == "passed" else [3]), (number, codes)
        nothing_left_running(deployment)


def running_steps(deployment: Deployment) -> list[tuple[int, str]]:
    """(build number, runner host) of each job whose step runs now."""
    return [(number, job["runner"]) for number, job in deployment.running_jobs()
            if any(step["status"] == "running" for step in job["steps"])]


def test_every_accepted_webhook_has_its_build_when_a_web_host_is_killed_mid_ingest(
        deployment):
    sha = deployment.repository.commit(pipeline("true", IMAGE))
    victim = deployment.webs[0]
    answers: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                response = deployment.push(victim, sha)
            except requests.RequestException:
                answers.append((0, None))
                continue
            number = response.json()["build"]["number"] if response.status_code == 202 else None
            answers.append((response.status_code, number))

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    try:
        wait_for(lambda: sum(status == 202 for status, _ in answers) >= 20, 60,
                 what="20 accepted")
        killed = victim.kill()
        wait_for(lambda: sum(status == 0 for status, _ in answers) >= 4, 30,
                 what="webhooks to the killed host failing")
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    accepted = [number for status, number in answers if status == 202]
    print(f"\n{victim.name} SIGKILLed mid-ingest ({len(killed)} processes: web, recorder, "
          f"reporter): {len(accepted)} webhooks answered 202, "
          f"{sum(status == 0 for status, _ in answers)} got no answer, "
          f"{sum(status not in (0, 202) for status, _ in answers)} another status")
    try:
        with explained(deployment):
            survivor = deployment.webs[1]
            recorded = deployment.builds(survivor)
            assert [n for n in accepted if recorded.get(n, {}).get("sha") != sha] == []
            assert sorted(set(accepted)) == sorted(accepted)
            builds = deployment.wait_finished(accepted, timeout=RETRY_SECONDS, host=survivor)
            print(f"  all {len(builds)} accepted builds recorded; statuses: "
                  f"{dict(Counter(build['status'] for build in builds.values()))}")
            assert {build["status"] for build in builds.values()} == {"passed"}
    finally:
        deployment.start_web(victim)


def test_jobs_of_a_runner_host_killed_mid_build_run_again_elsewhere_and_pass(deployment):
    sha = deployment.repository.commit(pipeline("sleep 8", IMAGE))
    victim = deployment.runners[0]
    numbers = list(push_all(deployment, sha, deployment.webs * 3))
    try:
        with explained(deployment):
            lost = wait_for(lambda: [number for number, runner in running_steps(deployment)
                                     if runner == victim.name], 60,
                            what=f"a step running on {victim.name}")
            orphans = containers_of(deployment, victim.pids())
            assert orphans
            killed = victim.kill()
            print(f"\n{victim.name} SIGKILLed mid-build: {len(killed)} processes, "
                  f"its builds {lost}, its job containers left behind {orphans}")
            builds = deployment.wait_finished(numbers, timeout=RETRY_SECONDS)
            show("builds across the kill:", builds)
            assert {build["status"] for build in builds.values()} == {"passed"}
            for number in lost:
                job = builds[number]["jobs"][0]
                assert job["attempt"] > 1 and job["runner"] != victim.name, (number, job)
            nothing_left_running(deployment)
            # A live runner sweeps the dead one's containers (while the live ones' jobs,
            # which /proc says are owned, pass). The victim stays dead meanwhile, and any
            # runner on this engine may be the one: another test run's sweeps too.
            wait_for(lambda: not set(orphans) & set(containers_of(deployment, killed)),
                     SWEEP_SECONDS, what=f"{victim.name}'s job containers removed")
            sweepers = {name: [host.name for host in deployment.runners
                               if f"removed what a dead runner left: {name}" in
                               host.tail("worker", 10 ** 7)] or ["another installation"]
                        for name in orphans}
            print(f"  {victim.name}'s job containers removed by a sweep of: {sweepers}")
    finally:
        deployment.start_runner(victim)


def containers_of(deployment: Deployment, pids: list[int]) -> list[str]:
    """This deployment's job containers whose runner process is one of ``pids``."""
    client = docker.from_env()
    try:
        found = client.containers.list(
            all=True, filters={"label": f"{LABEL_INSTANCE}={deployment.instance}"},
            ignore_removed=True)
    finally:
        client.close()
    return [container.name for container in found
            if (owner := RunnerProcess.parse(container.labels.get(LABEL_RUNNER, "")))
            and owner.pid in pids]
