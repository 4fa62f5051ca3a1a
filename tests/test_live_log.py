"""The live log: lines reach an SSE client while the job is still running."""

import os
import subprocess

import pytest
import requests
from sqlalchemy import select

from ci.pipeline import keys
from ci.store.models import Job
from tests.conftest import IMAGE, SLIPWAY, post_hook, push_payload, sse_events, wait_for

pytestmark = pytest.mark.docker

# The step prints a line, then waits until the test has seen that line over SSE
# (the test creates a file in the job's workspace), then prints a second line.
WAITING_STEP = (
    "echo first-line-$((6*7)); "
    "for i in $(seq 600); do [ -f /workspace/go ] && break; sleep 0.1; done; "
    "echo second-line"
)


def test_lines_arrive_before_the_job_finishes_and_resume_works(
        server, client, git_repo, registered, session, redis_client, tmp_path, docker_client):
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\ntimeout: 2m\nsteps:\n"
                                           f"  - name: wait\n    run: \"{WAITING_STEP}\"\n"})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    job = session.scalar(select(Job))

    # The runner as deployed: a `slipway worker` process of its own.
    worker = subprocess.Popen([SLIPWAY, "worker", "--burst"],
                              env={**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    url = f"{server}/octo/project/builds/1/jobs/1/events"
    seen_ids = []
    with requests.get(url, stream=True, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(response)
        for event_id, kind, data in events:
            seen_ids.append(event_id)
            if kind == "out" and "first-line-42" in data["html"]:
                break
        # The job is still running: nothing has ended the log yet.
        entries = redis_client.xrange(keys.log_stream(job.id))
        assert not any(fields[b"t"] == b"end" for _id, fields in entries)
        workspace = wait_for(lambda: next((tmp_path / "runner" / "workspaces").glob("*"), None))
        (workspace / "go").touch()
        rest = [(kind, data) for _id, kind, data in events]
    assert worker.wait(timeout=60) == 0
    assert ("end", "passed") in [(kind, data.get("status")) for kind, data in rest]
    assert any("second-line" in data["html"] for kind, data in rest if kind == "out")

    # Resuming with Last-Event-ID sends only what came after that id.
    resume_from = seen_ids[-1]
    with requests.get(url, headers={"Last-Event-ID": resume_from}, stream=True,
                      timeout=30) as response:
        resumed = list(sse_events(response))
    assert all(event_id > resume_from for event_id, _kind, _data in resumed)
    assert not any("first-line-42" in data["html"] for _id, _kind, data in resumed)
    assert any("second-line" in data["html"] for _id, _kind, data in resumed)


def test_the_build_stream_shows_a_running_job_live_and_ends_with_it(
        server, client, git_repo, registered, session, redis_client, tmp_path, docker_client):
    sha = git_repo.commit({".slipway.yml": f"image: {IMAGE}\ntimeout: 2m\nsteps:\n"
                                           f"  - name: wait\n    run: \"{WAITING_STEP}\"\n"})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    # The runner and the recorder as deployed, each a process of its own.
    env = {**os.environ, "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner")}
    worker = subprocess.Popen([SLIPWAY, "worker", "--burst"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorder = subprocess.Popen([SLIPWAY, "recorder"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with requests.get(f"{server}/octo/project/builds/1/events", stream=True,
                          timeout=60) as response:
            events = sse_events(response)
            seen = {"line": False, "running": False}
            for _id, kind, data in events:
                if kind == "log":
                    seen["line"] |= any("first-line-42" in entry["html"]
                                        for entry in data["entries"])
                if kind == "state" and data["jobs"][0]["steps"]:
                    seen["running"] |= data["jobs"][0]["steps"][0]["status"] == "running"
                if all(seen.values()):
                    break
            job = session.scalar(select(Job))
            entries = redis_client.xrange(keys.log_stream(job.id))
            assert not any(fields[b"t"] == b"end" for _id, fields in entries)
            workspace = wait_for(lambda: next((tmp_path / "runner" / "workspaces").glob("*"),
                                              None))
            (workspace / "go").touch()
            rest = list(events)
        assert worker.wait(timeout=60) == 0
    finally:
        recorder.terminate()
        recorder.wait(timeout=30)
    assert rest[-1][1] == "end"
    final = [data for _id, kind, data in rest if kind == "state"][-1]
    assert (final["status"], final["jobs"][0]["steps"][0]["exit_code"]) == ("passed", 0)
    assert any("second-line" in entry["html"]
               for _id, kind, data in rest if kind == "log" for entry in data["entries"])
