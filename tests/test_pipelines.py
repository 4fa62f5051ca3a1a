"""Pipelines people write: matrix, services, filters, per-step images, skips and the
default pipeline — run by real `slipway worker` processes against the real engine."""


import pytest
from rq import Queue
from sqlalchemy import select

from ci.pipeline import keys
from ci.store.models import Build
from runners.images import ensure_image
from tests.conftest import (IMAGE, job_containers, job_labels, log_of, post_hook, push_payload,
                            wait_for)

REDIS_IMAGE = "slipway/redis:7"

# Talks to the job's `redis` service: stores this cell's value, waits, reads it back.
REDIS_PROBE = """\
import os, select, socket

connection = socket.create_connection(("redis", 6379))


def command(*words):
    parts = [b"*%d\\r\\n" % len(words)]
    for word in words:
        parts.append(b"$%d\\r\\n%s\\r\\n" % (len(word), word.encode()))
    connection.sendall(b"".join(parts))
    return connection.recv(100)


print("set", command("SET", "cell", os.environ["N"]))
select.select([], [], [], 1)  # let the other cell write its value first
print("got", command("GET", "cell"))
"""


@pytest.fixture
def redis_image(docker_client, tmp_path_factory):
    ensure_image(docker_client, REDIS_IMAGE, tmp_path_factory.mktemp("images"))
    return REDIS_IMAGE


@pytest.mark.docker
def test_a_4_cell_matrix_runs_in_parallel_on_2_workers(build_with, workers, resources):
    build = build_with({".slipway.yml": f"""\
image: {IMAGE}
matrix:
  A: ["1", "2"]
  B: [x, y]
steps:
  - name: cell
    run: echo "cell $A-$B"; sleep 2
"""})
    assert build.status == "passed", build.error
    assert [job.name for job in build.jobs] == ["A=1 B=x", "A=1 B=y", "A=2 B=x", "A=2 B=y"]
    assert [job.status for job in build.jobs] == ["passed"] * 4
    for job in build.jobs:
        cell = job.name.replace("A=", "").replace(" B=", "-")
        assert f"cell {cell}" in log_of(resources, job)
    intervals = sorted((job.started_at, job.finished_at) for job in build.jobs)
    assert any(later_start < earlier_end for (_s, earlier_end), (later_start, _e)
               in zip(intervals, intervals[1:])), "no two cells ran at the same time"


@pytest.mark.docker
def test_allowed_failures_do_not_fail_the_build(build_with, workers):
    build = build_with({".slipway.yml": f"""\
image: {IMAGE}
matrix:
  B: [x, y]
  allow_failures: [{{B: y}}]
steps:
  - run: test "$B" != y
"""})
    assert [(job.name, job.status, job.allow_failure) for job in build.jobs] == [
        ("B=x", "passed", False), ("B=y", "failed", True)]
    assert build.status == "passed"


@pytest.mark.docker
def test_services_are_reachable_by_name_private_to_the_job_and_removed(
        build_with, workers, redis_image, docker_client, resources):
    build = build_with({
        "probe.py": REDIS_PROBE,
        ".slipway.yml": f"""\
image: {IMAGE}
matrix:
  N: ["one", "two"]
services:
  redis: {{image: {redis_image}, ready: "redis-cli ping"}}
steps:
  - run: python3 probe.py
"""})
    assert build.status == "passed", build.error
    for job, value in zip(build.jobs, ["one", "two"]):
        text = log_of(resources, job)
        # Each job reads back its own value: the two Redis servers are separate.
        assert f"got b'$3\\r\\n{value}\\r\\n'" in text
        assert "--- service redis ---" in text
        assert "Ready to accept connections" in text
        # The result is reported first; the runner removes the job's containers right after.
        wait_for(lambda: not job_containers(docker_client, job.id)
                 and not docker_client.networks.list(filters=job_labels(job.id)))


@pytest.mark.docker
def test_a_service_that_never_becomes_ready_errors_the_job(build_with, workers, redis_image):
    build = build_with({".slipway.yml": f"""\
image: {IMAGE}
services:
  cache: {{image: {redis_image}, ready: "exit 1", ready_timeout: 2s}}
steps:
  - run: echo never
"""})
    assert build.status == "errored"
    assert build.error.startswith("service cache did not become ready within 2s (`exit 1`")


@pytest.mark.docker
def test_a_step_can_use_another_image_on_the_same_workspace(
        build_with, workers, redis_image, resources):
    build = build_with({".slipway.yml": f"""\
image: {IMAGE}
steps:
  - name: write
    run: echo shared > note.txt
  - name: read
    image: {redis_image}
    run: cat note.txt; redis-server --version
"""})
    assert build.status == "passed", build.error
    text = log_of(resources, build.jobs[0])
    assert "shared" in text
    assert "Redis server v=7" in text


@pytest.mark.docker
def test_when_filters_skip_pipelines_and_steps(build_with, workers, resources):
    skipped = build_with({".slipway.yml": f"""\
image: {IMAGE}
when: {{branch: ["release/*"]}}
steps:
  - run: echo hi
"""})
    assert skipped.status == "skipped"
    assert skipped.error == "skipped: the pipeline's `when` does not match event 'push' on branch 'main'"

    build = build_with({".slipway.yml": f"""\
image: {IMAGE}
steps:
  - name: test
    run: "false"
  - name: after
    run: echo after-success
  - name: report
    run: echo reporting-failure
    when: {{status: [failure]}}
  - name: deploy
    run: echo deploying
    when: {{branch: release/*, status: [success, failure]}}
"""})
    assert build.status == "failed"
    assert [(s.name, s.status) for s in build.jobs[0].steps] == [
        ("test", "failed"), ("after", "skipped"), ("report", "passed"), ("deploy", "skipped")]
    text = log_of(resources, build.jobs[0])
    assert "reporting-failure" in text and "after-success" not in text


def test_skip_ci_in_the_message_records_a_skipped_build(client, registered, session,
                                                       redis_client):
    response = post_hook(client, push_payload("octo/project", "a" * 40,
                                              message="Fix typo [skip ci]"))
    assert response.status_code == 200
    assert response.get_json()["status"] == "skipped"
    build = session.scalar(select(Build))
    assert build.status == "skipped"
    assert build.error == "skipped: the commit message says [skip ci]"
    assert len(Queue(keys.JOBS_QUEUE, connection=redis_client)) == 0


@pytest.mark.docker
def test_a_python_project_without_a_pipeline_gets_the_default(build_with, workers, resources):
    build = build_with({"requirements.txt": "", "test_it.py": "def test_it():\n    pass\n"})
    assert build.status == "passed", build.error
    assert [step.name for step in build.jobs[0].steps] == ["install", "test"]
    assert "1 passed" in log_of(resources, build.jobs[0])



@pytest.mark.docker
def test_a_repository_without_a_pipeline_or_python_project_errors(build_with, workers):
    build = build_with({"notes.md": "hi\n"})
    assert build.status == "errored"
    assert build.error.startswith(f"commit {build.sha[:12]}: there is no `.slipway.yml`")
    assert "steps:" in build.error


@pytest.mark.docker
def test_hostile_branch_names_are_data_not_commands(client, git_repo, registered, session,
                                                    run_queue, resources, docker_client):
    branch = "feat;$(touch${IFS}/tmp/pwned)`id`"
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\nsteps:\n"
                                           "  - run: printf 'branch=[%s]\\n' \"$SLIPWAY_BRANCH\"; "
                                           "test ! -e /tmp/pwned\n"})
    response = post_hook(client, push_payload("octo/project", sha, branch=branch))
    assert response.status_code == 202
    run_queue()
    session.rollback()
    build = session.scalar(select(Build))
    assert build.status == "passed", build.error
    assert build.branch == branch
    assert f"branch=[{branch}]" in log_of(resources, build.jobs[0])
