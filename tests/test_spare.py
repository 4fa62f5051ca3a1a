"""The container started ahead for a runner process's next job (:mod:`runners.spare`): the
next job of the repository runs in it with its own environment and the same confinement,
it holds nothing of any job before, it serves one repository's job and no other, and it
never outlives its runner. A real Docker engine, real git repositories, real runners.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select

from ci.pipeline.spec import Limits
from ci.store.models import Job
from runners import spare
from runners.docker_executor import LABEL_INSTANCE, sweep_orphans
from runners.executor import JobEnvironment
from runners.owner import LABEL_RUNNER, RunnerProcess
from runners.settings import load_runner_settings
from tests.conftest import IMAGE, installation, log_of, post_hook, push_payload, wait_for

STARTED_AHEAD = "the job runs in a container started ahead for it"
PIPELINE = f"""\
image: {IMAGE}
env:
  GREETING: hello
steps:
  - run: |
      echo "build=$SLIPWAY_BUILD_NUMBER greeting=$GREETING"
      echo "commit=$(git log -1 --format=%H)"
      cat marker.txt
      grep NoNewPrivs /proc/self/status
      grep CapEff /proc/self/status
      echo "pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
"""


def spares(docker_client, instance: str) -> dict[str, list[str]]:
    """The spares' containers and networks of this installation, and their folders."""
    label = {"label": [spare.LABEL_SPARE, f"{LABEL_INSTANCE}={instance}"]}
    return {"containers": [container.name for container in docker_client.containers.list(
                all=True, filters=label, ignore_removed=True)],
            "networks": [network.name for network in docker_client.networks.list(filters=label)]}


@pytest.fixture
def instance(redis_url) -> str:
    """This session's installation label, which its Redis names."""
    return installation()


@pytest.mark.docker
@pytest.mark.parametrize("setting", ["1", "0"])
def test_the_next_job_of_a_repository_runs_in_the_spare_with_its_own_environment(
        setting, client, git_repo, registered, session, run_queue, resources, docker_client,
        instance, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIPWAY_SPARE_CONTAINERS", setting)
    shas = []
    for marker in ("first", "second"):
        shas.append(git_repo.commit({".slipway.yml": PIPELINE, "marker.txt": f"{marker}\n"}))
        assert post_hook(client, push_payload("octo/project", shas[-1])).status_code == 202
    run_queue()  # one process takes both jobs, one after the other

    session.rollback()
    jobs = session.scalars(select(Job).order_by(Job.id)).all()
    assert [job.status for job in jobs] == ["passed", "passed"], [job.error for job in jobs]
    for number, (job, sha, marker) in enumerate(zip(jobs, shas, ("first", "second")), 1):
        text = log_of(resources, job)
        assert f"build={number} greeting=hello" in text
        assert f"commit={sha}" in text  # the mirror it borrows objects from is mounted
        assert f"\n{marker}\n" in text.replace("\r", "")
        assert "NoNewPrivs:\t1" in text
        assert "CapEff:\t000001ffffffffff" not in text
        assert "pids=" in text and "pids=max" not in text
    assert STARTED_AHEAD not in log_of(resources, jobs[0])
    assert (STARTED_AHEAD in log_of(resources, jobs[1])) == (setting == "1")
    # The burst is over: its runner removed the spare it made after the second job.
    assert spares(docker_client, instance) == {"containers": [], "networks": []}
    workspaces = tmp_path / "runner" / "workspaces"
    assert not list(workspaces.glob("slipway-spare-*")), list(workspaces.iterdir())


@pytest.fixture
def environment(tmp_path) -> JobEnvironment:
    """A job's environment, with a secret in it, as a runner would set up the job."""
    mirror = tmp_path / "mirrors" / "abc.git"
    mirror.mkdir(parents=True)
    (tmp_path / "workspaces").mkdir()
    return JobEnvironment(name="slipway-job-7-1-abcdef", image=IMAGE,
                          env={"TOKEN": "s3cret-value"}, workspace=tmp_path / "workspaces" / "7-1",
                          read_only_mounts={str(mirror): str(mirror)},
                          labels={"slipway.job": "7", "slipway.attempt": "1"},
                          limits=Limits(memory="256m", cpus=1.0, pids=100))


@pytest.fixture
def spare_labels(instance) -> dict[str, str]:
    yield {LABEL_INSTANCE: instance, LABEL_RUNNER: RunnerProcess.current().label()}
    spare.discard()


@pytest.mark.docker
def test_a_spare_holds_nothing_of_the_job_it_was_made_after(environment, spare_labels,
                                                             docker_client, instance):
    spare.prepare(environment, spare_labels)
    taken = spare.take(environment.read_only_mounts, environment.internet)
    assert taken is not None
    taken.wait()
    attrs = docker_client.containers.get(taken.container.id).attrs
    assert attrs["State"]["Running"]
    assert not any("s3cret" in variable for variable in attrs["Config"]["Env"])
    assert "slipway.job" not in attrs["Config"]["Labels"]
    assert attrs["Config"]["Labels"][spare.LABEL_SPARE] == taken.name
    assert list(taken.workspace.iterdir()) == []
    mounts = {mount["Destination"]: (mount["Source"], mount["RW"]) for mount in attrs["Mounts"]}
    mirror = next(iter(environment.read_only_mounts))
    assert mounts == {"/workspace": (str(taken.workspace), True), mirror: (mirror, False)}
    host = attrs["HostConfig"]
    assert (host["Privileged"], host["CapDrop"], host["SecurityOpt"]) == (
        False, ["ALL"], ["no-new-privileges"])
    assert (host["Memory"], host["PidsLimit"]) == (256 * 1024 * 1024, 100)
    assert attrs["NetworkSettings"]["Networks"].keys() == {taken.name}

    taken.remove()
    assert spares(docker_client, instance) == {"containers": [], "networks": []}
    assert not taken.workspace.exists()


@pytest.mark.docker
def test_a_spare_serves_only_a_job_with_the_same_mounts_image_and_limits(
        environment, spare_labels, docker_client, instance, tmp_path):
    spare.prepare(environment, spare_labels)
    other_repository = {str(tmp_path / "mirrors" / "other.git"): "/x"}
    assert spare.take(other_repository, environment.internet) is None
    # The one made for another repository is removed, in the background.
    wait_for(lambda: spares(docker_client, instance) == {"containers": [], "networks": []})
    assert spare.take(environment.read_only_mounts, environment.internet) is None  # no other

    spare.prepare(environment, spare_labels)
    taken = spare.take(environment.read_only_mounts, environment.internet)
    taken.wait()
    at_home = dataclasses.replace(environment, workspace=taken.workspace)
    assert taken.fits(at_home)
    assert not taken.fits(dataclasses.replace(at_home, image="other:latest"))
    assert not taken.fits(dataclasses.replace(at_home, limits=Limits(memory="1g")))
    assert not taken.fits(dataclasses.replace(at_home, internet=not environment.internet))
    assert not taken.fits(dataclasses.replace(at_home, lifetime_seconds=10 ** 7))
    assert not taken.fits(environment)  # another workspace folder
    taken.remove()


@pytest.mark.docker
def test_the_sweep_removes_the_spare_of_a_dead_runner_and_keeps_a_live_ones(
        environment, spare_labels, docker_client, instance):
    spare.prepare(environment, spare_labels)
    live = spare.take(environment.read_only_mounts, environment.internet)
    dead_owner = dataclasses.replace(RunnerProcess.current(), started=1).label()
    spare.prepare(environment, {**spare_labels, LABEL_RUNNER: dead_owner})
    dead = spare.take(environment.read_only_mounts, environment.internet)
    live.wait()
    dead.wait()

    removed = sweep_orphans(docker_client, instance, lambda _job, _attempt: True)
    assert sorted(removed) == [dead.name, dead.name]  # its container and its network
    assert spares(docker_client, instance) == {"containers": [live.name],
                                               "networks": [live.name]}
    live.remove()
    dead.remove()


def test_spares_are_on_unless_turned_off_and_a_wrong_value_says_so(tmp_path: Path):
    base = {"SLIPWAY_DATA_DIR": str(tmp_path)}
    assert load_runner_settings(base).spare_containers is True
    assert load_runner_settings({**base, "SLIPWAY_SPARE_CONTAINERS": "0"}).spare_containers \
        is False
    with pytest.raises(ValueError, match=r"SLIPWAY_SPARE_CONTAINERS='yes' is neither 1"):
        load_runner_settings({**base, "SLIPWAY_SPARE_CONTAINERS": "yes"})


@pytest.mark.docker
def test_a_job_whose_spare_died_meanwhile_starts_its_own_container(
        environment, spare_labels, docker_client, instance):
    from runners.docker_executor import DockerExecutor

    spare.prepare(environment, spare_labels)
    label = {"label": [spare.LABEL_SPARE, f"{LABEL_INSTANCE}={instance}"]}

    def running_spare():
        found = docker_client.containers.list(filters={**label, "status": "running"})
        return found[0] if found else None

    wait_for(running_spare).kill()  # as an engine restart or an OOM kill would leave it
    executor = DockerExecutor()
    said = []
    try:
        folder = executor.begin(environment.name, {LABEL_INSTANCE: instance}, True,
                                environment.read_only_mounts)
        assert folder is not None and folder.name.startswith("slipway-spare-")
        (folder / "marker.txt").write_text("checked out\n")
        executor.setup(dataclasses.replace(environment, workspace=folder), said.append)
        output = []
        assert executor.run_step('cat marker.txt; echo "token=$TOKEN"', output.append) == 0
        assert "checked out\ntoken=s3cret-value\n" == "".join(output)
        assert "the job runs in a container started ahead for it" not in said
        assert docker_client.containers.get(environment.name).status == "running"
    finally:
        executor.destroy()
    wait_for(lambda: spares(docker_client, instance) == {"containers": [], "networks": []})


@pytest.mark.docker
def test_a_taken_spare_of_a_runner_in_another_pid_namespace_goes_by_its_jobs_lease(
        environment, spare_labels, docker_client, instance):
    from runners.docker_executor import job_resource_name

    elsewhere = dataclasses.replace(RunnerProcess.current(), namespace="1").label()
    spare.prepare(environment, {**spare_labels, LABEL_RUNNER: elsewhere})
    taken = spare.take(environment.read_only_mounts, environment.internet)
    taken.wait()
    name = job_resource_name(41, 2)
    taken.container.rename(name)
    leases = {}

    def sweep() -> list[str]:
        return sweep_orphans(docker_client, instance, lambda job, attempt: leases[(job, attempt)])

    try:
        leases[(41, 2)] = True
        assert sweep() == []  # its job runs: its runner cannot be seen from here
        leases[(41, 2)] = False
        assert sorted(sweep()) == sorted([name, taken.name])  # its container and network
        assert spares(docker_client, instance) == {"containers": [], "networks": []}
    finally:
        taken.remove()
