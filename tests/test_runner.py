"""The runner's guarantees: what it may import, how its containers are confined, and
what happens when a runner is killed in the middle of a job."""

import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import select

from ci.builds.recorder import Recorder
from ci.pipeline import keys
from ci.pipeline.spec import Limits
from ci.store.models import Build, Job
from tests.conftest import (IMAGE, SLIPWAY, job_containers, log_of, post_hook, push_payload,
                            wait_for)


def test_runner_imports_only_the_pure_core():
    code = (
        "import sys, runners.worker, runners.service, runners.images\n"
        "server = [m for m in sys.modules if m.startswith('ci.') and not m.startswith('ci.pipeline')]\n"
        "heavy = [m for m in ('flask', 'sqlalchemy', 'alembic') if m in sys.modules]\n"
        "print(server + heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.docker
def test_build_containers_are_confined(client, git_repo, registered, run_queue, session,
                                        resources, docker_client):
    from dataclasses import replace

    resources.settings = replace(resources.settings,
                                 limits=Limits(memory="256m", cpus=1.0, pids=200))
    script = ("test ! -e /var/run/docker.sock && echo no-docker-socket; "
              "grep NoNewPrivs /proc/self/status; "
              "echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); "
              "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
              "|| cat /sys/fs/cgroup/memory.max); "
              "grep CapEff /proc/self/status")
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\nsteps:\n  - run: \"{script}\"\n"})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    build = session.scalar(select(Build))
    assert build.status == "passed", build.error
    from ci.logs import storage
    from ci.pipeline.logformat import to_text

    text = to_text(storage.read_archive(resources.settings.log_dir, build.jobs[0].id))
    assert "no-docker-socket" in text
    assert "NoNewPrivs:\t1" in text
    assert "pids=200" in text
    assert f"mem={256 * 1024 * 1024}" in text
    # Not privileged: the effective capabilities are Docker's default set, not all of them.
    assert "CapEff:\t000001ffffffffff" not in text


@pytest.mark.docker
def test_a_killed_runners_job_is_retried_by_another_which_sweeps_its_container(
        client, git_repo, registered, session, redis_client, resources, tmp_path, docker_client):
    # The first attempt hangs; the retry passes.
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\nsteps:\n"
                                           "  - run: echo started $SLIPWAY_ATTEMPT; "
                                           "if [ $SLIPWAY_ATTEMPT = 1 ]; then sleep 300; fi\n"})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    job = session.scalar(select(Job))
    env = {**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner")}
    worker = subprocess.Popen([SLIPWAY, "worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(b"started 1" in fields.get(b"d", b"")
                             for _id, fields in redis_client.xrange(keys.log_stream(job.id))))
        [left] = job_containers(docker_client, job.id, stopped=False)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    def runner_lost() -> bool:
        recorder.drain()
        return bool(recorder.reconcile().retried)

    # The lease expires LEASE_TTL_SECONDS after the runner's last renewal.
    wait_for(runner_lost, timeout=keys.LEASE_TTL_SECONDS + 30, interval=0.5)
    session.rollback()
    job = session.get(Job, job.id)
    assert (job.status, job.attempt) == ("queued", 2)
    assert job.build.status == "running"

    # The next runner removes the container the dead one left running (unless a runner of
    # another test session sharing the engine swept it first), and runs the retry.
    subprocess.run([SLIPWAY, "worker", "--burst"], env=env, check=True, capture_output=True,
                   timeout=120)
    assert left.id not in {container.id for container in docker_client.containers.list(
        all=True, ignore_removed=True)}
    assert job_containers(docker_client, job.id) == []
    recorder.drain()
    session.rollback()
    assert (job.status, job.attempt, job.build.status) == ("passed", 2, "passed")
    text = log_of(resources, job)
    assert "the runner of the previous attempt stopped reporting" in text
    assert "started 2" in text and "started 1" not in text


@pytest.mark.docker
def test_a_repository_can_have_its_own_limits(client, git_repo, registered, run_queue, session,
                                              resources, docker_client):
    from ci.accounts import job_limits

    job_limits.set_limits(session, resources.settings, registered, memory="300m", pids=77)
    script = ("echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); "
              "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
              "|| cat /sys/fs/cgroup/memory.max)")
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\nsteps:\n  - run: \"{script}\"\n"})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    build = session.scalar(select(Build))
    from ci.logs import storage
    from ci.pipeline.logformat import to_text

    text = to_text(storage.read_archive(resources.settings.log_dir, build.jobs[0].id))
    assert "pids=77" in text
    assert f"mem={300 * 1024 * 1024}" in text
