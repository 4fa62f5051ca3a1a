"""A runner's end and its Redis's hiccups: what a killed runner leaves is swept (with or
without Redis), a runner stopped on purpose ends its jobs first, and a build runs
through a short Redis restart to its real result. Real `slipway worker` processes, a
real Docker engine and a Redis server of this module's own, which the last test restarts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from docker.errors import APIError
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from ci.builds.recorder import Recorder
from ci.pipeline import keys
from ci.pipeline.logformat import OUT, LogEntry
from ci.pipeline.spec import Event, EventType, JobSpec
from ci.store.models import Job
from runners.publisher import Publisher
from runners.settings import RunnerSettings
from tests.conftest import IMAGE, SLIPWAY, free_port, log_of, post_hook, push_payload, wait_for

pytestmark = pytest.mark.docker

SLEEPER = f"image: {IMAGE}\nsteps:\n  - run: echo started; sleep 300\n"


class RedisServer:
    """A redis-server that keeps its data on disk, so that it can be restarted mid-build."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL)
        probe = Redis.from_url(self.url)
        try:
            wait_for(lambda: _answers(probe), timeout=10)
        finally:
            probe.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def restart(self, down_for: float) -> None:
        """Stop, stay away ``down_for`` seconds (the outage being simulated), start again."""
        self.stop()
        time.sleep(down_for)
        self.start()


def _answers(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except RedisError:
        return False


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("lifecycle-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_url(redis_server) -> str:
    """This module's tests use their own Redis (it overrides the session's)."""
    return redis_server.url


@pytest.fixture
def instance(redis_url) -> str:
    """The instance label of the runners of this module: no other test's containers have it."""
    return RunnerSettings(redis_url=redis_url, work_dir=Path("."), ca_bundle=None,
                          name="").instance


@pytest.fixture
def runners(tmp_path, app, docker_client, instance):
    """Starts `slipway worker` processes on this test's runner folder; ends them all after,
    then removes whatever containers of this module are left."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        env = {**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner")}
        log = (tmp_path / f"runner-{len(started)}.log").open("wb")
        process = subprocess.Popen([SLIPWAY, "worker", *args], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    label = {"label": f"slipway.instance={instance}"}
    for container in docker_client.containers.list(all=True, filters=label, ignore_removed=True):
        with contextlib.suppress(APIError):  # a killed runner may have been removing it
            container.remove(force=True)
    for network in docker_client.networks.list(filters=label):
        with contextlib.suppress(APIError):
            network.remove()


def push_build(client, git_repo, session, files: dict[str, str]) -> Job:
    sha = git_repo.commit(files)
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    return session.scalar(select(Job))


def logged(redis_client: Redis, job: Job, text: str) -> bool:
    return any(text.encode() in fields.get(b"d", b"")
               for _id, fields in redis_client.xrange(keys.log_stream(job.id)))


def leftovers(docker_client, tmp_path: Path, job: Job, instance: str) -> dict[str, list[str]]:
    """The job's containers, networks and workspace folders that still exist."""
    label = {"label": [f"slipway.job={job.id}", f"slipway.instance={instance}"]}
    return {
        "containers": [c.name for c in docker_client.containers.list(
            all=True, filters=label, ignore_removed=True)],
        "networks": [n.name for n in docker_client.networks.list(filters=label)],
        "workspaces": [p.name for p in (tmp_path / "runner" / "workspaces").glob(f"{job.id}-*")],
    }


NOTHING = {"containers": [], "networks": [], "workspaces": []}


def run_until_killed(runners, client, git_repo, session, redis_client, docker_client, tmp_path,
                     instance) -> Job:
    """A runner starts a long build and is SIGKILLed in the middle of it."""
    job = push_build(client, git_repo, session, {".slipway.yml": SLEEPER})
    runner = runners()
    wait_for(lambda: logged(redis_client, job, "started"))
    left = leftovers(docker_client, tmp_path, job, instance)
    assert left["containers"] and left["workspaces"], left
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    return job


def test_what_a_killed_runner_left_is_removed_when_another_runner_starts(
        client, git_repo, registered, session, redis_client, docker_client, tmp_path, instance,
        runners):
    job = run_until_killed(runners, client, git_repo, session, redis_client, docker_client,
                           tmp_path, instance)
    assert leftovers(docker_client, tmp_path, job, instance) != NOTHING

    runners()
    # Its lease has not even expired yet: the new runner sees the old one's process is gone.
    wait_for(lambda: leftovers(docker_client, tmp_path, job, instance) == NOTHING, timeout=15)


def test_the_periodic_sweep_removes_a_dead_runners_job_while_redis_is_away(
        client, git_repo, registered, session, redis_client, docker_client, tmp_path, instance,
        runners, redis_url):
    from runners.service import Sweeper

    job = run_until_killed(runners, client, git_repo, session, redis_client, docker_client,
                           tmp_path, instance)
    nowhere = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    settings = RunnerSettings(redis_url=redis_url, work_dir=tmp_path / "runner", ca_bundle=None,
                              name="sweeper")
    sweeper = Sweeper(nowhere, settings, interval_seconds=0.5)
    sweeper.start()
    try:
        wait_for(lambda: leftovers(docker_client, tmp_path, job, instance) == NOTHING,
                 timeout=15)
    finally:
        sweeper.stop()
        nowhere.close()


@pytest.mark.parametrize("how", ["SIGTERM to a runner", "Ctrl-C on two runners"])
def test_a_runner_stopped_on_purpose_ends_its_job_as_errored_and_removes_it(
        how, client, git_repo, registered, session, redis_client, docker_client, tmp_path,
        instance, runners, resources):
    job = push_build(client, git_repo, session, {".slipway.yml": SLEEPER})
    if how == "SIGTERM to a runner":
        runner = runners()
        wait_for(lambda: logged(redis_client, job, "started"))
        runner.send_signal(signal.SIGTERM)
    else:
        runner = runners("--count", "2")
        wait_for(lambda: logged(redis_client, job, "started"))
        os.killpg(runner.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert runner.wait(timeout=30) == 0

    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    session.rollback()
    job = session.get(Job, job.id)
    assert (job.status, job.error) == ("errored", "runner stopped")
    assert leftovers(docker_client, tmp_path, job, instance) == NOTHING


def test_a_build_runs_through_a_redis_restart_to_its_real_result(
        client, git_repo, registered, session, redis_client, tmp_path, runners, resources,
        redis_server):
    job = push_build(client, git_repo, session, {".slipway.yml": (
        f"image: {IMAGE}\nsteps:\n"
        "  - run: echo before; sleep 2; echo during; sleep 6; echo after\n")})
    runners()
    wait_for(lambda: logged(redis_client, job, "before"))
    redis_server.restart(down_for=3)

    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    def finished() -> Job | None:
        try:
            recorder.drain()
        except RedisError:
            return None  # this client's connections were cut by the restart: try again
        session.rollback()
        found = session.get(Job, job.id)
        return found if found.status not in ("queued", "running") else None

    job = wait_for(finished, timeout=60, interval=0.2)
    assert (job.status, job.error) == ("passed", None)
    text = log_of(resources, job)
    assert "before" in text and "during" in text and "after" in text


def test_log_lines_held_through_an_outage_stay_out_of_a_newer_attempts_log(
        redis_server, redis_client):
    spec = JobSpec(job_id=9, attempt=1, build_id=1, repo="octo/project", clone_url="x",
                   sha="0" * 40, ref="refs/heads/main", event="push")
    runner_redis = Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=1)
    publisher = Publisher(runner_redis, spec)
    publisher.log(OUT, 0, "attempt 1, before the outage\n")
    # The runner's host is cut off: what it prints waits in its outbox.
    redis_server.stop()
    publisher.log(OUT, 0, "attempt 1, held\n")
    publisher.event(EventType.STEP_FINISHED, step=0, status="passed", exit_code=0)
    # Meanwhile the server gave the job to another runner, as attempt 2.
    redis_server.start()
    redis_client.connection_pool.disconnect()
    redis_client.delete(keys.log_stream(9))
    redis_client.set(keys.current_attempt(9), 2)
    redis_client.xadd(keys.log_stream(9), LogEntry("", OUT, 0, "attempt 2\n").to_fields())

    assert publisher.wait_sent(timeout=30)
    publisher.log(OUT, 0, "attempt 1, after the outage\n")
    publisher.wait_sent(timeout=30)
    runner_redis.close()
    lines = [fields[b"d"] for _id, fields in redis_client.xrange(keys.log_stream(9))]
    assert lines == [b"attempt 2\n"]
    # Its event still goes: the recorder ignores an old attempt's events by itself.
    [(_id, fields)] = redis_client.xrange(keys.EVENTS_STREAM)
    assert Event.from_json(fields[b"e"]).attempt == 1
