"""Cancel, restart, rerun failed jobs and auto-cancel, with a real runner process."""

import json
import os
import subprocess
import time

import pytest
from rq import Queue
from sqlalchemy import select

from ci.logs import storage
from ci.pipeline import keys
from ci.pipeline.logformat import INFO
from ci.store.models import Build
from tests.conftest import (GITHUB, IMAGE, SLIPWAY, add_user, job_containers, post_hook,
                            push_payload, token_headers, wait_for)


@pytest.fixture
def api(client, api_token):
    def post(path: str, headers: dict[str, str] = api_token):
        return client.post(f"/api/repos/octo/project/builds/{path}", headers=headers)

    return post


def build(session, number: int) -> Build:
    session.rollback()  # a new transaction sees what others committed,
    session.expire_all()  # and objects loaded before are read again
    return session.scalar(select(Build).where(Build.number == number))


def test_actions_need_a_token_of_a_user_with_write_access(client, registered, api, session):
    post_hook(client, push_payload("octo/project", "c" * 40))
    assert api("1/cancel", headers={}).status_code == 401
    wrong = api("1/cancel", headers={"Authorization": "Bearer slp_wrong"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["message"].startswith("this API token is unknown")
    reader = token_headers(session, add_user(session, "reader", grants={registered: "read"}))
    refused = api("1/cancel", headers=reader)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == {
        "code": "forbidden",
        "message": "reader may not change octo/project; an admin can allow it: "
                   "`slipway repo grant octo/project reader --permission write`"}
    assert build(session, 1).status == "queued"


def test_a_queued_job_never_starts(client, registered, api, session, redis_client, run_queue):
    post_hook(client, push_payload("octo/project", "c" * 40))
    response = api("1/cancel")
    assert response.status_code == 202
    assert response.get_json()["canceled_jobs"] == 1
    assert build(session, 1).status == "canceled"
    assert build(session, 1).jobs[0].error == "canceled by dev"
    assert len(Queue(keys.JOBS_QUEUE, connection=redis_client)) == 0
    run_queue()
    assert redis_client.xlen(keys.EVENTS_STREAM) == 0


@pytest.mark.docker
def test_cancel_stops_a_running_container_within_5_seconds(
        client, git_repo, registered, api, session, redis_client, resources, tmp_path,
        docker_client, run_queue):
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\nsteps:\n"
                                           "  - run: echo started; sleep 300\n"})
    post_hook(client, push_payload("octo/project", sha))
    job_id = build(session, 1).jobs[0].id
    env = {**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner")}
    worker = subprocess.Popen([SLIPWAY, "worker", "--burst"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any(b"started" in fields.get(b"d", b"")
                         for _id, fields in redis_client.xrange(keys.log_stream(job_id))))
    assert job_containers(docker_client, job_id, stopped=False)

    asked = time.monotonic()
    assert api("1/cancel").status_code == 202
    wait_for(lambda: not job_containers(docker_client, job_id), timeout=5)
    stopped_in = time.monotonic() - asked
    assert worker.wait(timeout=30) == 0
    run_queue()  # records the runner's events
    finished = build(session, 1)
    assert finished.status == "canceled"
    assert finished.jobs[0].error == "canceled by dev"
    assert stopped_in < 5
    log = client.get("/octo/project/builds/1/jobs/1/log.txt").get_data(as_text=True)
    assert "canceled by dev" in log
    # In the section of the step it stopped, not in the set-up lines at the top.
    canceled = [entry for entry in storage.read_all(redis_client, resources.settings.log_dir,
                                                    finished.jobs[0])
                if entry.kind == INFO and entry.data == "canceled by dev"]
    assert [entry.step for entry in canceled] == [0]


@pytest.mark.docker
def test_restart_and_rerun_failed(client, git_repo, registered, api, session, run_queue,
                                  docker_client):
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\nsteps:\n  - run: test -f ok\n"})
    post_hook(client, push_payload("octo/project", sha))
    assert api("1/restart").status_code == 409  # still queued
    run_queue()
    assert build(session, 1).status == "failed"

    restarted = api("1/restart")
    assert restarted.status_code == 201
    assert restarted.get_json()["number"] == 2
    assert restarted.get_json()["sha"] == sha
    run_queue()
    assert build(session, 2).status == "failed"

    rerun = api("1/rerun-failed")
    assert rerun.status_code == 202
    assert rerun.get_json()["rerun_jobs"] == 1
    assert build(session, 1).jobs[0].attempt == 2
    run_queue()
    again = build(session, 1)
    assert again.status == "failed"
    assert again.jobs[0].attempt == 2
    assert [step.status for step in again.jobs[0].steps] == ["failed"]
    log = client.get("/octo/project/builds/1/jobs/1/log.txt").get_data(as_text=True)
    assert log.count("--- job failed ---") == 1


def test_a_new_pull_request_push_cancels_the_older_build(client, registered, session):
    payload = json.loads((GITHUB / "pull_request.synchronize.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    post_hook(client, json.dumps(payload).encode(), event="pull_request")
    payload["pull_request"]["head"]["sha"] = "d" * 40
    post_hook(client, json.dumps(payload).encode(), event="pull_request")
    post_hook(client, push_payload("octo/project", "e" * 40))
    post_hook(client, push_payload("octo/project", "f" * 40))
    assert build(session, 1).status == "canceled"
    assert build(session, 1).jobs[0].error == "canceled by auto-cancel: superseded by build #2"
    assert build(session, 2).status == "queued"
    # Pushes are not auto-canceled unless SLIPWAY_AUTO_CANCEL_PUSH is set.
    assert (build(session, 3).status, build(session, 4).status) == ("queued", "queued")


def test_cells_planned_after_a_cancel_never_start(client, registered, session, redis_client,
                                                  resources):
    from ci import store
    from ci.builds import service as build_service
    from ci.builds.recorder import Recorder
    from ci.pipeline.spec import Event, EventType
    from ci.store.models import utcnow

    post_hook(client, push_payload("octo/project", "c" * 40))
    first = build(session, 1)
    store.start_job(session, first.jobs[0], utcnow(), "runner")
    session.commit()
    # Canceled while its first job was still reading the pipeline...
    build_service.cancel(session, redis_client, first, "dev")
    queued_before = len(Queue(keys.JOBS_QUEUE, connection=redis_client))
    # ...which then reports a matrix of three cells.
    planned = Event(type=EventType.BUILD_PLANNED, job_id=first.jobs[0].id, attempt=1,
                    at=time.time(), data={"cells": [{"N": "1"}, {"N": "2"}, {"N": "3"}],
                          "allow_failures": [False] * 3})
    redis_client.xadd(keys.EVENTS_STREAM, {"e": planned.to_json()})
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    after = build(session, 1)
    assert [job.name for job in after.jobs] == ["N=1", "N=2", "N=3"]
    assert [job.status for job in after.jobs[1:]] == ["canceled", "canceled"]
    assert len(Queue(keys.JOBS_QUEUE, connection=redis_client)) == queued_before
