"""``POST /hooks/github`` with GitHub's recorded payloads, a real Redis and database."""

import json

from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import func, select

from ci.builds import dispatch as job_queue
from ci.pipeline import keys
from ci.store.models import Build, Job
from tests.conftest import GITHUB, SECRET, post_hook, push_payload

SHA = "a" * 40


def build_count(session) -> int:
    session.rollback()  # a new transaction sees what others committed
    return session.scalar(select(func.count()).select_from(Build))


def queued_rq_jobs(redis_client) -> int:
    return len(Queue(keys.JOBS_QUEUE, connection=redis_client))


def rq_status(redis_client, rq_job_id: str) -> str | None:
    state = redis_client.hget(RQJob.key_for(rq_job_id), "status")
    return state.decode() if state is not None else None


def fixture_body(name: str, repo: str = "octo/project") -> bytes:
    """A recorded payload with its repository renamed to the registered one."""
    payload = json.loads((GITHUB / f"{name}.json").read_bytes())
    payload["repository"]["full_name"] = repo
    if "pull_request" in payload:
        payload["pull_request"]["base"]["repo"]["full_name"] = repo
    return json.dumps(payload).encode()


def test_signed_push_records_a_build_and_enqueues_it(client, registered, session, redis_client):
    response = post_hook(client, push_payload("octo/project", SHA, message="Fix the thing\n\nMore"))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted"
    assert body["build"]["url"] == "http://ci.test/octo/project/builds/1"
    assert response.headers["Location"] == body["build"]["url"]
    build = session.scalar(select(Build))
    assert (build.number, build.event, build.branch, build.sha) == (1, "push", "main", SHA)
    assert build.status == "queued"
    assert build.message.startswith("Fix the thing")
    assert queued_rq_jobs(redis_client) == 1
    assert redis_client.get(keys.current_attempt(build.jobs[0].id)) == b"1"


def test_build_numbers_increase_per_repo(client, registered):
    numbers = [post_hook(client, push_payload("octo/project", SHA)).get_json()["build"]["number"]
               for _ in range(3)]
    assert numbers == [1, 2, 3]


def test_recorded_push_payload_verbatim(client, session, git_repo):
    from ci import store

    payload = json.loads((GITHUB / "push.branch.json").read_bytes())
    store.add_repo(session, payload["repository"]["full_name"], "github", str(git_repo.path),
                   SECRET)
    body = (GITHUB / "push.branch.json").read_bytes()
    headers = json.loads((GITHUB / "push.branch.headers.json").read_text())
    headers.pop("Content-Length")
    response = client.post("/hooks/github", data=body, headers=headers)
    assert response.status_code == 202
    build = session.scalar(select(Build))
    assert build.sha == payload["after"]
    assert build.branch == "master"
    assert build.author == payload["head_commit"]["author"]["username"]


def test_bad_signature_is_401_and_records_nothing(client, registered, session, redis_client):
    body = push_payload("octo/project", SHA)
    response = post_hook(client, body, secret="not the secret")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "signature_mismatch"
    missing = post_hook(client, body, signature="")
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "signature_missing"
    assert build_count(session) == 0
    assert queued_rq_jobs(redis_client) == 0


def test_duplicate_delivery_makes_one_build(client, registered, session, redis_client):
    body = push_payload("octo/project", SHA)
    first = post_hook(client, body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    second = post_hook(client, body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.get_json()["status"] == "duplicate"
    assert second.get_json()["build"]["number"] == first.get_json()["build"]["number"]
    assert build_count(session) == 1
    assert queued_rq_jobs(redis_client) == 1


def test_branch_deletion_builds_nothing(client, registered, session):
    response = post_hook(client, fixture_body("push.branch-deleted"))
    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored",
                                   "reason": "refs/heads/feature-branch was deleted; nothing to build"}
    assert build_count(session) == 0


def test_tag_push_builds_the_tag(client, registered, session):
    body = fixture_body("push.tag")
    assert post_hook(client, body).status_code == 202
    build = session.scalar(select(Build))
    assert (build.event, build.tag, build.branch) == ("tag", "v0.0.1", None)
    assert build.sha == json.loads(body)["after"]


def test_pull_request_synchronize_builds_the_head_sha(client, registered, session):
    body = fixture_body("pull_request.synchronize")
    payload = json.loads(body)
    assert post_hook(client, body, event="pull_request").status_code == 202
    build = session.scalar(select(Build))
    assert build.event == "pull_request"
    assert build.sha == payload["pull_request"]["head"]["sha"]
    assert build.pr_number == payload["number"]
    assert build.ref == f"refs/pull/{payload['number']}/head"


def test_pull_request_opened_and_reopened_build(client, registered, session):
    for name in ("pull_request.opened", "pull_request.reopened"):
        assert post_hook(client, fixture_body(name), event="pull_request").status_code == 202
    assert build_count(session) == 2


def test_closed_pull_request_and_other_events_are_ignored(client, registered, session):
    closed = post_hook(client, fixture_body("pull_request.closed"), event="pull_request")
    assert closed.status_code == 200
    assert "closed" in closed.get_json()["reason"]
    other = post_hook(client, fixture_body("push.branch"), event="issues")
    assert other.get_json() == {"status": "ignored",
                                "reason": "event 'issues' does not trigger builds"}
    assert build_count(session) == 0


def test_ping_answers_200(client, registered):
    response = post_hook(client, fixture_body("ping"), event="ping")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"


def test_unknown_repository_is_404(client, registered):
    response = post_hook(client, push_payload("someone/else", SHA))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_repo"


def test_malformed_json_and_missing_fields_are_400(client, registered, session):
    assert post_hook(client, b"{not json").status_code == 400
    assert post_hook(client, b"[1, 2]").status_code == 400
    no_ref = json.dumps({"repository": {"full_name": "octo/project"}, "after": SHA}).encode()
    response = post_hook(client, no_ref)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "payload has no 'ref'"
    bad_sha = push_payload("octo/project", "$(reboot)")
    assert post_hook(client, bad_sha).status_code == 400
    assert build_count(session) == 0


def test_body_over_5_mb_is_413(client, registered, session):
    body = b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    response = post_hook(client, body)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert build_count(session) == 0


def test_redis_down_still_answers_202_and_the_reconciler_enqueues(
        app, client, registered, session, redis_client, resources):
    from redis import Redis

    from ci.store.models import utcnow

    resources.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    response = post_hook(client, push_payload("octo/project", SHA))
    assert response.status_code == 202
    assert response.get_json()["queued"] is False
    assert queued_rq_jobs(redis_client) == 0

    job = session.scalar(select(Job))
    job.enqueued_at = utcnow() - job_queue.REQUEUE_GRACE * 2
    session.commit()
    result = job_queue.reconcile(session, redis_client, resources.settings)
    assert result.requeued == [job.id]
    assert queued_rq_jobs(redis_client) == 1
    # Once it is in Redis, a second pass leaves it alone.
    assert job_queue.reconcile(session, redis_client, resources.settings).requeued == []


def test_the_reconciler_leaves_a_held_backlog_alone_and_requeues_what_rq_dropped(
        client, registered, session, redis_client, resources):

    from ci.store.models import utcnow

    for index in range(30):
        post_hook(client, push_payload("octo/project", SHA, message=f"change {index}"))
    jobs = list(session.scalars(select(Job).order_by(Job.id)))
    for job in jobs:
        job.enqueued_at = utcnow() - job_queue.REQUEUE_GRACE * 2
    session.commit()
    assert job_queue.reconcile(session, redis_client, resources.settings).requeued == []

    # RQ says one started (its runner died before taking the lease); one is gone.
    started, gone = jobs[3], jobs[7]
    redis_client.hset(RQJob.key_for(keys.rq_job_id(started.id, 1)), "status", "started")
    redis_client.delete(RQJob.key_for(keys.rq_job_id(gone.id, 1)))
    result = job_queue.reconcile(session, redis_client, resources.settings)
    assert result.requeued == [started.id, gone.id]
    assert {job.attempt for job in (started, gone)} == {2}


def test_a_running_job_without_a_lease_is_retried_once_then_errored(
        session, registered, client, redis_client, resources):
    from ci import store
    from ci.store.models import utcnow

    post_hook(client, push_payload("octo/project", SHA))
    job = session.scalar(select(Job))
    store.start_job(session, job, utcnow(), "gone-runner")
    store.plan_steps(session, job, ["test"], None)
    session.commit()
    redis_client.set(keys.lease(job.id), 1, ex=60)
    assert job_queue.reconcile(session, redis_client, resources.settings).retried == []
    redis_client.delete(keys.lease(job.id))

    # The runner is gone: the job goes back to the queue as attempt 2, for another runner.
    result = job_queue.reconcile(session, redis_client, resources.settings)
    assert (result.retried, result.lost) == ([job.id], [])
    session.rollback()  # a new transaction sees what others committed
    assert (job.status, job.attempt, job.runner, job.steps) == ("queued", 2, None, [])
    assert rq_status(redis_client, keys.rq_job_id(job.id, 2)) == "queued"
    assert redis_client.get(keys.current_attempt(job.id)) == b"2"
    # Another reconciler that saw attempt 1 running finds nothing left to do.
    assert job_queue.reconcile(session, redis_client, resources.settings).retried == []

    # The runner of attempt 2 is lost too: now the job is errored.
    store.start_job(session, job, utcnow(), "another-gone-runner")
    session.commit()
    result = job_queue.reconcile(session, redis_client, resources.settings)
    assert (result.retried, result.lost) == ([], [job.id])
    session.rollback()
    assert job.status == "errored"
    assert job.error == job_queue.RUNNER_LOST
    assert job.build.status == "errored"


def test_a_log_left_by_an_earlier_database_is_not_shown_for_a_new_job_of_that_id(
        client, registered, session, redis_client, resources):
    from ci.logs import storage
    from ci.pipeline.logformat import END, INFO, LogEntry

    # A database restored from a backup hands out job ids the data folder has seen.
    stale = storage.archive_path(resources.settings.log_dir, 1)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(json.dumps(LogEntry("1-0", INFO, -1, "an old job's checkout").__dict__)
                     + "\n" + json.dumps(LogEntry("1-1", END, -1, "errored").__dict__) + "\n")
    redis_client.xadd(keys.log_stream(1), LogEntry("", INFO, -1, "an old live line").to_fields())

    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202

    assert redis_client.exists(keys.log_stream(1)) == 0
    assert client.get("/octo/project/builds/1/jobs/1/log.txt").text == ""
    page = client.get("/octo/project/builds/1").text
    assert "an old" not in page
    api = client.get("/api/repos/octo/project/builds/1/jobs/1/log")
    assert api.status_code == 200 and "an old" not in api.text
