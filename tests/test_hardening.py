"""Untrusted build code is contained: process and memory limits, timeouts, log caps,
and capabilities — each shown with a real container doing the bad thing."""

import re
import threading
from dataclasses import replace

import pytest
from sqlalchemy import select

from ci.logs import storage
from ci.pipeline.logformat import to_text
from ci.pipeline.spec import Limits
from ci.store.models import Build
from tests.conftest import IMAGE, job_containers, post_hook, push_payload

pytestmark = pytest.mark.docker

FORK_BOMB = """import os, signal, sys
n = 0
try:
    while True:
        if os.fork() == 0:
            signal.pause()  # children wait until the container is removed
            os._exit(0)
        n += 1
except OSError as exc:
    print("fork refused after", n, "processes:", exc.strerror)
    sys.exit(3)
"""
MEMORY_HOG = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"


@pytest.fixture
def confined(resources):
    resources.settings = replace(resources.settings,
                                 limits=Limits(memory="128m", cpus=1.0, pids=64),
                                 log_limit_bytes=1024 * 1024, job_timeout_seconds=60)
    return resources


def run_build(client, git_repo, run_queue, session, files) -> Build:
    sha = git_repo.commit(files)
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    return session.scalars(select(Build).order_by(Build.id.desc())).first()


def archived(resources, build) -> str:
    return to_text(storage.read_archive(resources.settings.log_dir, build.jobs[0].id))


def test_a_fork_bomb_hits_the_pids_limit_and_fails_cleanly(
        client, git_repo, registered, run_queue, session, confined, docker_client):
    build = run_build(client, git_repo, run_queue, session, {
        "bomb.py": FORK_BOMB,
        ".slipway.yml": f"image: {IMAGE}\nsteps:\n  - name: bomb\n    run: python3 bomb.py\n",
    })
    assert build.status == "failed"
    assert build.error == "step 'bomb' exited with code 3"
    text = archived(confined, build)
    assert "fork refused after" in text
    refused_after = int(text.split("fork refused after ")[1].split()[0])
    assert refused_after < 64
    job_id = build.jobs[0].id
    assert job_containers(docker_client, job_id) == []


def test_a_memory_hog_is_oom_killed_and_reported(
        client, git_repo, registered, run_queue, session, confined, docker_client):
    build = run_build(client, git_repo, run_queue, session, {
        "hog.py": MEMORY_HOG,
        ".slipway.yml": f"image: {IMAGE}\nsteps:\n  - name: hog\n    run: python3 hog.py\n",
    })
    assert build.status == "failed"
    assert build.error == ("step 'hog' exited with code 137 "
                           "(killed: out of memory (the job's limit is 128m))")
    assert build.jobs[0].steps[0].exit_code == 137


def test_sleep_3600_is_killed_by_the_timeout(
        client, git_repo, registered, run_queue, session, confined, docker_client):
    build = run_build(client, git_repo, run_queue, session, {
        ".slipway.yml": f"image: {IMAGE}\ntimeout: 3s\nsteps:\n  - run: sleep 3600\n",
    })
    assert build.status == "errored"
    assert build.error == "timed out after 3s"


def test_50_mb_of_output_is_cut_at_the_cap_and_the_server_stays_responsive(
        client, git_repo, registered, run_queue, session, confined, app, docker_client):
    answered = []

    def keep_asking() -> None:
        # Requests made while the step floods its output must still be answered.
        with app.test_client() as other:
            while not done.is_set():
                answered.append(other.get("/api/repos").status_code)

    done = threading.Event()
    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        build = run_build(client, git_repo, run_queue, session, {
            ".slipway.yml": f"image: {IMAGE}\nsteps:\n  - name: flood\n    run: "
                            "head -c 50000000 /dev/zero | tr '\\\\0' x | fold -w 100; echo done\n",
        })
    finally:
        done.set()
        asker.join()
    assert build.status == "passed", build.error
    text = archived(confined, build)
    assert "the log was cut at 1024 KiB; the rest of the output is not kept" in text
    # At its end, the log says how much it left out: the 50 MB less the 1 MiB it kept.
    left_out = re.search(r"\[slipway\] ([\d,]+) KiB of output past the limit were not kept",
                         text)
    assert left_out and 47_000 < int(left_out[1].replace(",", "")) < 49_500
    assert len(text.encode()) < 1024 * 1024 + 4096
    assert answered and set(answered) == {200}


def test_steps_run_without_raw_sockets_or_mknod(
        client, git_repo, registered, run_queue, session, confined, docker_client):
    build = run_build(client, git_repo, run_queue, session, {
        ".slipway.yml": f"image: {IMAGE}\nsteps:\n"
                        "  - run: mknod /tmp/dev c 1 3 && echo MKNOD-ALLOWED || echo mknod-denied\n",
    })
    assert build.status == "passed"
    text = archived(confined, build)
    assert "mknod-denied" in text
    assert "MKNOD-ALLOWED" not in text
