"""Every attempt of a job is kept: a rerun or a runner-lost retry leaves the earlier
attempt's status, timing, steps and log readable (API, log text, page partial), and a
rerun build's duration is the rerun's."""

from __future__ import annotations

import pytest
from flask import render_template_string
from sqlalchemy import select

from ci import store
from ci.builds import service
from ci.builds.recorder import Recorder
from ci.logs import storage
from ci.pipeline import keys
from ci.pipeline.logformat import OUT, STEP, LogEntry
from ci.pipeline.spec import Event, EventType
from ci.store.models import Build, Job, JobAttempt
from tests.conftest import IMAGE, add_user, post_hook, push_payload, token_headers
from tests.polling import wait_for

JOB_API = "/api/repos/octo/project/builds/1/jobs/1"
JOB_PAGE = "/octo/project/builds/1/jobs/1"
#: When the first attempt starts (seconds since the epoch); later ones start after it.
T0 = 1_700_000_000.0


@pytest.fixture
def recorder(resources, redis_client) -> Recorder:
    return Recorder(resources.write_sessions, redis_client, resources.settings)


@pytest.fixture
def job(client, registered, session) -> Job:
    """The one job of build #1 of ``registered``, queued."""
    assert post_hook(client, push_payload("octo/project", "a" * 40)).status_code == 202
    return session.scalar(select(Job))


def publish(redis_client, job: Job, kind: EventType, at: float, **data) -> None:
    """What a runner sends for the job's current attempt."""
    event = Event(type=kind, job_id=job.id, attempt=job.attempt, at=at, data=data)
    redis_client.xadd(keys.EVENTS_STREAM, {"e": event.to_json()})


def start(redis_client, recorder, session, job: Job, at: float, output: str) -> None:
    """A runner starts the job's current attempt, begins its step and prints ``output``."""
    publish(redis_client, job, EventType.JOB_STARTED, at, runner=f"runner-{job.attempt}")
    publish(redis_client, job, EventType.STEPS_PLANNED, at, steps=["test"], image=IMAGE)
    publish(redis_client, job, EventType.STEP_STARTED, at, step=0)
    redis_client.xadd(keys.log_stream(job.id), LogEntry("", STEP, 0, "test").to_fields())
    redis_client.xadd(keys.log_stream(job.id), LogEntry("", OUT, 0, output).to_fields())
    recorder.drain()
    session.rollback()


def finish(redis_client, recorder, session, job: Job, at: float, exit_code: int) -> None:
    """The runner ends the step and the attempt with ``exit_code``; the recorder archives."""
    status = "passed" if exit_code == 0 else "failed"
    publish(redis_client, job, EventType.STEP_FINISHED, at, step=0, status=status,
            exit_code=exit_code)
    publish(redis_client, job, EventType.JOB_FINISHED, at, status=status, error=None)
    recorder.drain()
    session.rollback()


def run_attempt(redis_client, recorder, session, job: Job, at: float, exit_code: int) -> None:
    start(redis_client, recorder, session, job, at, f"output of attempt {job.attempt}\n")
    finish(redis_client, recorder, session, job, at + 0.94, exit_code)


def rerun(session, redis_client, resources) -> int:
    build = store.get_build(session, store.get_repo(session, "octo/project"), 1)
    count = service.rerun_failed(session, redis_client, resources.settings, build)
    session.rollback()
    return count


def test_a_rerun_keeps_the_failed_attempt_and_times_the_build_from_the_rerun(
        client, job, session, redis_client, resources, recorder):
    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    first = client.get(JOB_API).get_json()

    assert rerun(session, redis_client, resources) == 1
    queued = client.get(JOB_API).get_json()
    assert [(a["number"], a["status"], a["current"]) for a in queued["attempts"]] == [
        (1, "failed", False), (2, "queued", True)]
    assert client.get("/api/repos/octo/project/builds/1").get_json()["started_at"] is None
    run_attempt(redis_client, recorder, session, job, T0 + 322, exit_code=0)

    answer = client.get(JOB_API).get_json()
    earlier, current = answer["attempts"]
    assert (answer["attempt"], answer["status"]) == (2, "passed")
    assert earlier == {
        "number": 1, "current": False, "status": "failed", "image": IMAGE,
        "runner": "runner-1", "error": None, "started_at": first["started_at"],
        "finished_at": first["finished_at"], "duration_seconds": 0.94,
        "log_url": f"http://ci.test{JOB_PAGE}/attempts/1/log.txt",
        "steps": first["steps"]}
    assert earlier["steps"][0]["exit_code"] == 1
    assert (current["status"], current["runner"], current["steps"]) == (
        "passed", "runner-2", answer["steps"])
    assert (current["started_at"], current["finished_at"]) == (
        answer["started_at"], answer["finished_at"])
    assert answer["duration_seconds"] == current["duration_seconds"] == 0.94

    build = client.get("/api/repos/octo/project/builds/1").get_json()
    assert (build["status"], build["started_at"]) == ("passed", current["started_at"])
    assert build["duration_seconds"] == 0.94  # not 322.94: the rerun's own

    old_log = client.get(f"{JOB_PAGE}/attempts/1/log.txt")
    assert old_log.mimetype == "text/plain"
    assert "output of attempt 1" in old_log.get_data(as_text=True)
    assert "output of attempt 2" not in old_log.get_data(as_text=True)
    current_log = client.get(f"{JOB_PAGE}/log.txt").get_data(as_text=True)
    assert "output of attempt 2" in current_log and "output of attempt 1" not in current_log
    assert client.get(f"{JOB_PAGE}/attempts/2/log.txt").get_data(as_text=True) == current_log
    api_log = client.get(f"{JOB_API}/attempts/1/log")
    assert api_log.get_data() == old_log.get_data()


def test_a_runner_lost_retry_keeps_the_lost_attempt_and_its_log(
        client, job, session, redis_client, resources, recorder):
    start(redis_client, recorder, session, job, T0, "printed before the runner vanished\n")
    redis_client.set(keys.lease(job.id), 1, px=50)  # its runner held a lease, then vanished
    wait_for(lambda: not redis_client.exists(keys.lease(job.id)), what="the lease to expire")

    assert recorder.reconcile().retried == [job.id]
    session.rollback()
    assert (job.attempt, job.status, job.steps) == (2, "queued", [])
    [kept] = session.scalars(select(JobAttempt)).all()
    assert (kept.job_id, kept.number, kept.status, kept.runner) == (
        job.id, 1, "errored", "runner-1")
    assert kept.error == store.RUNNER_LOST_RETRIED
    assert [(step["name"], step["status"]) for step in kept.steps] == [("test", "errored")]

    answer = client.get(JOB_API).get_json()
    assert [(a["number"], a["status"]) for a in answer["attempts"]] == [
        (1, "errored"), (2, "queued")]
    lost_log = client.get(f"{JOB_PAGE}/attempts/1/log.txt").get_data(as_text=True)
    assert "printed before the runner vanished" in lost_log
    current_log = client.get(f"{JOB_PAGE}/log.txt").get_data(as_text=True)
    assert "the runner of the previous attempt stopped reporting" in current_log
    assert "printed before the runner vanished" not in current_log

    # Another reconciler that saw attempt 1 running changes nothing, keeps nothing twice.
    assert recorder.reconcile().retried == []
    session.rollback()
    assert session.scalars(select(JobAttempt.number)).all() == [1]

    run_attempt(redis_client, recorder, session, job, T0 + 60, exit_code=0)
    answer = client.get(JOB_API).get_json()
    assert [(a["number"], a["status"]) for a in answer["attempts"]] == [
        (1, "errored"), (2, "passed")]
    assert answer["attempts"][0]["started_at"] == "2023-11-14T22:13:20+00:00"
    assert "printed before the runner vanished" in client.get(
        f"{JOB_PAGE}/attempts/1/log.txt").get_data(as_text=True)


def test_rerunning_twice_gives_three_attempts_each_with_its_own_log(
        client, job, session, redis_client, resources, recorder):
    for number in (1, 2, 3):
        if number > 1:
            assert rerun(session, redis_client, resources) == 1
        run_attempt(redis_client, recorder, session, job, T0 + 100 * number, exit_code=1)

    attempts = client.get(JOB_API).get_json()["attempts"]
    assert [(a["number"], a["current"]) for a in attempts] == [(1, False), (2, False),
                                                                (3, True)]
    assert [a["started_at"][:19] for a in attempts] == [
        "2023-11-14T22:15:00", "2023-11-14T22:16:40", "2023-11-14T22:18:20"]
    for attempt in attempts:
        log = client.get(attempt["log_url"].removeprefix("http://ci.test")).get_data(True)
        assert [n for n in (1, 2, 3) if f"output of attempt {n}" in log] == [attempt["number"]]


def test_an_attempt_log_the_job_never_had_is_404(client, job, session, redis_client,
                                                 resources, recorder):
    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    rerun(session, redis_client, resources)
    for attempt in (0, 3, 2**31):
        assert client.get(f"{JOB_PAGE}/attempts/{attempt}/log.txt").status_code == 404
    missing = client.get(f"{JOB_API}/attempts/3/log")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["message"] == (
        "job 1 of build #1 of octo/project has no attempt 3")
    assert client.get("/api/repos/octo/project/builds/1/jobs/2/attempts/1/log").status_code \
        == 404


def test_an_earlier_attempt_whose_log_file_is_gone_is_404_not_an_empty_log(
        client, job, session, redis_client, resources, recorder):
    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    rerun(session, redis_client, resources)
    storage.attempt_path(resources.settings.log_dir, job.id, 1).unlink()
    gone = client.get(f"{JOB_API}/attempts/1/log")
    assert gone.status_code == 404
    assert "no longer kept" in gone.get_json()["error"]["message"]


def test_a_private_repositorys_attempt_log_is_404_to_strangers(
        client, job, session, redis_client, resources, recorder, registered):
    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    rerun(session, redis_client, resources)
    store.update_repo(session, registered, private=True)
    reader = token_headers(session, add_user(session, "reader", grants={registered: "read"}))
    stranger = token_headers(session, add_user(session, "stranger"))

    for headers in ({}, stranger):
        assert client.get(f"{JOB_PAGE}/attempts/1/log.txt", headers=headers).status_code == 404
        assert client.get(f"{JOB_API}/attempts/1/log", headers=headers).status_code == 404
    allowed = client.get(f"{JOB_API}/attempts/1/log", headers=reader)
    assert "output of attempt 1" in allowed.get_data(as_text=True)


def test_a_canceled_queued_job_rerun_keeps_an_attempt_with_an_empty_log(
        client, job, session, redis_client, resources, api_token):
    assert client.post("/api/repos/octo/project/builds/1/cancel",
                       headers=api_token).status_code == 202
    assert client.post("/api/repos/octo/project/builds/1/rerun-failed",
                       headers=api_token).status_code == 202

    attempts = client.get(JOB_API).get_json()["attempts"]
    assert [(a["number"], a["status"], a["error"]) for a in attempts] == [
        (1, "canceled", "canceled by dev"), (2, "queued", None)]
    old_log = client.get(f"{JOB_PAGE}/attempts/1/log.txt")
    assert (old_log.status_code, old_log.get_data(as_text=True)) == (200, "")


SELECTOR = ('{% from "_attempts.html" import attempts_selector with context %}'
            '{{ attempts_selector(repo, build, job, attempts, shown) }}')


def test_the_page_partial_links_every_attempt_without_javascript(
        app, job, session, redis_client, resources, recorder, registered):
    build = store.get_build(session, registered, 1)
    with app.test_request_context("/octo/project/builds/1"):
        single = render_template_string(SELECTOR, repo=registered, build=build, job=job,
                                        attempts=store.list_attempts(job), shown=None)
    assert single.strip() == ""

    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    rerun(session, redis_client, resources)
    build = store.get_build(session, registered, 1)
    job = build.jobs[0]
    attempts = store.list_attempts(job)
    with app.test_request_context("/octo/project/builds/1"):
        current = render_template_string(SELECTOR, repo=registered, build=build, job=job,
                                         attempts=attempts, shown=None)
        earlier = render_template_string(SELECTOR, repo=registered, build=build, job=job,
                                         attempts=attempts, shown=1)
    assert "attempt 2 of 2" in current
    assert '<a href="/octo/project/builds/1?job=1&amp;attempt=1#job-1">attempt 1</a>' in current
    assert '<strong aria-current="true">attempt 2</strong>' in current
    assert f'href="{JOB_PAGE}/attempts/1/log.txt"' in current
    assert f'href="{JOB_PAGE}/attempts/2/log.txt"' in current
    assert "attempt 1 of 2" in earlier
    assert '<a href="/octo/project/builds/1#job-1">attempt 2</a>' in earlier
    assert '<strong aria-current="true">attempt 1</strong>' in earlier


def test_removing_a_repository_removes_its_jobs_attempts(
        job, session, redis_client, resources, recorder, registered):
    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    rerun(session, redis_client, resources)
    assert session.scalars(select(JobAttempt)).all() != []
    assert store.remove_repo(session, "octo/project")
    assert session.scalars(select(JobAttempt)).all() == []
    assert session.scalars(select(Build)).all() == []


STEPPED = f"""image: {IMAGE}
steps:
  - name: check
    run: 'echo "this is attempt $SLIPWAY_ATTEMPT"; test "$SLIPWAY_ATTEMPT" = 2'
"""


@pytest.mark.docker
def test_a_real_job_fails_is_rerun_and_passes(client, git_repo, registered, session, api_token,
                                              run_queue, docker_client):
    sha = git_repo.commit({".slipway.yml": STEPPED})
    post_hook(client, push_payload("octo/project", sha))
    run_queue()
    first = client.get(JOB_API).get_json()
    assert first["status"] == "failed"

    rerun_answer = client.post("/api/repos/octo/project/builds/1/rerun-failed",
                               headers=api_token)
    assert rerun_answer.status_code == 202
    run_queue()

    answer = client.get(JOB_API).get_json()
    earlier, current = answer["attempts"]
    assert (answer["status"], answer["attempt"]) == ("passed", 2)
    assert (earlier["number"], earlier["status"]) == (1, "failed")
    assert (earlier["started_at"], earlier["finished_at"]) == (
        first["started_at"], first["finished_at"])
    assert [(s["name"], s["status"], s["exit_code"]) for s in earlier["steps"]] == [
        ("check", "failed", 1)]
    assert (current["number"], current["status"], current["started_at"]) == (
        2, "passed", answer["started_at"])
    build = client.get("/api/repos/octo/project/builds/1").get_json()
    assert build["status"] == "passed"
    assert build["started_at"] == answer["started_at"]
    assert build["started_at"] >= earlier["finished_at"]

    old_log = client.get(f"{JOB_PAGE}/attempts/1/log.txt").get_data(as_text=True)
    assert "this is attempt 1" in old_log and "--- job failed ---" in old_log
    new_log = client.get(f"{JOB_PAGE}/log.txt").get_data(as_text=True)
    assert "this is attempt 2" in new_log and "--- job passed ---" in new_log
    assert "this is attempt 1" not in new_log


def test_the_build_page_shows_the_attempts_and_an_earlier_ones_log_on_request(
        client, job, session, redis_client, resources, recorder):
    run_attempt(redis_client, recorder, session, job, T0, exit_code=1)
    assert rerun(session, redis_client, resources) == 1
    run_attempt(redis_client, recorder, session, job, T0 + 100, exit_code=0)

    current = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert "attempt 2 of 2" in current
    assert "output of attempt 2" in current and "output of attempt 1" not in current
    assert "/octo/project/builds/1?job=1&amp;attempt=1#job-1" in current

    earlier = client.get("/octo/project/builds/1?job=1&attempt=1").get_data(as_text=True)
    assert "attempt 1 of 2" in earlier
    assert "output of attempt 1" in earlier and "output of attempt 2" not in earlier
    assert "/jobs/1/attempts/1/log.txt" in earlier
    assert 'class="status status-failed" data-field="j1.status"' in earlier

    for unknown in ("?job=1&attempt=9", "?job=7&attempt=1", "?job=x&attempt=1"):
        page = client.get("/octo/project/builds/1" + unknown)
        assert page.status_code == 200
        assert "output of attempt 2" in page.get_data(as_text=True)
