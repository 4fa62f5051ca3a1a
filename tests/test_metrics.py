"""``GET /metrics``: the exposition parsed as Prometheus would, its values checked against
what was done to the database and Redis; the webhook histogram summed over gunicorn's
workers; the token; and an answer (200) when Redis or the database is down."""

from __future__ import annotations

import http.client
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, SimpleWorker
from sqlalchemy import select

from ci import create_app, store
from ci.builds.recorder import Recorder
from ci.pipeline import keys
from ci.pipeline.spec import Event, EventType
from ci.pipeline.status import Status
from ci.store.models import Job, utcnow
from tests.conftest import SECRET, free_port, post_hook, procfile_web, push_payload, sign
from tests.polling import wait_for

#: Prometheus's text format, as the client library names it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: When the job of the duration test starts (seconds since the epoch).
T0 = 1_700_000_000.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == CONTENT_TYPE
    return parse(response.get_data(as_text=True))


@pytest.fixture
def make_app(tmp_path, redis_url, database_url):
    """An app like the ``app`` fixture's, with settings changed."""
    made = []

    def make(**overrides):
        config = {"data_dir": tmp_path / "data", "database_url": database_url,
                  "redis_url": redis_url, "base_url": "http://ci.test", "secret_key": "test",
                  **overrides}
        application = create_app(config)
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions["slipway"].engine.dispose()


def test_builds_and_jobs_by_status_come_from_sql(client, registered, session):
    for index in range(3):
        body = push_payload("octo/project", f"{index + 1:040x}")
        assert post_hook(client, body).status_code == 202
    job = session.scalars(select(Job).order_by(Job.id)).first()
    store.finish_job(session, job, Status.PASSED, utcnow(), None)
    session.commit()

    samples = scrape(client)

    assert value(samples, "slipway_up", component="database") == 1
    assert value(samples, "slipway_builds", status="queued") == 2
    assert value(samples, "slipway_builds", status="passed") == 1
    assert value(samples, "slipway_builds", status="failed") == 0
    assert value(samples, "slipway_jobs", status="queued") == 2
    assert value(samples, "slipway_jobs", status="passed") == 1


def test_queue_depth_oldest_wait_and_failed_reports(client, registered, session, redis_client):
    for index in range(2):
        body = push_payload("octo/project", f"{index + 1:040x}")
        assert post_hook(client, body).status_code == 202
    first = session.scalars(select(Job).order_by(Job.id)).first()
    first.enqueued_at = utcnow() - timedelta(hours=1)
    session.commit()
    statuses = Queue(keys.STATUS_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)
    statuses.enqueue("builtins.int", "not a number")  # fails when worked
    SimpleWorker([statuses], connection=redis_client,
                 serializer=keys.RQ_SERIALIZER).work(burst=True)
    for _ in range(3):
        statuses.enqueue("builtins.len", "waits")

    samples = scrape(client)

    assert value(samples, "slipway_queue_length", queue=keys.JOBS_QUEUE) == 2
    assert value(samples, "slipway_queue_length", queue=keys.STATUS_QUEUE) == 3
    assert value(samples, "slipway_queue_failed_jobs", queue=keys.STATUS_QUEUE) == 1
    assert value(samples, "slipway_queue_failed_jobs", queue=keys.JOBS_QUEUE) == 0
    waited = value(samples, "slipway_queue_oldest_wait_seconds", queue=keys.JOBS_QUEUE)
    assert 3600 <= waited < 7200
    assert value(samples, "slipway_queue_oldest_wait_seconds", queue=keys.STATUS_QUEUE) >= 0
    assert value(samples, "slipway_runners_live") == 0


def test_recorder_lag_counts_events_no_recorder_applied(client, redis_client):
    minute_ago = int(redis_client.time()[0] * 1000) - 60_000
    for index in range(3):
        redis_client.xadd(keys.EVENTS_STREAM, {"e": "{}"}, id=f"{minute_ago + index}-0")

    samples = scrape(client)  # no recorder ever started: no consumer group yet

    assert value(samples, "slipway_recorder_lag_events") == 3
    assert value(samples, "slipway_recorder_pending_events") == 0
    assert value(samples, "slipway_recorder_oldest_event_age_seconds") >= 60

    redis_client.xgroup_create(keys.EVENTS_STREAM, keys.RECORDER_GROUP, id="0")
    redis_client.xreadgroup(keys.RECORDER_GROUP, "gone", {keys.EVENTS_STREAM: ">"}, count=1)
    samples = scrape(client)  # one read by a recorder that died before acknowledging it

    assert value(samples, "slipway_recorder_lag_events") == 2
    assert value(samples, "slipway_recorder_pending_events") == 1
    assert value(samples, "slipway_recorder_oldest_event_age_seconds") >= 60


def test_job_and_step_durations_are_counted_once_as_the_recorder_applies_them(
        client, registered, session, resources, redis_client):
    assert post_hook(client, push_payload("octo/project", "a" * 40)).status_code == 202
    job = session.scalar(select(Job))
    events = [(EventType.JOB_STARTED, T0, {"runner": "r1"}),
              (EventType.STEPS_PLANNED, T0, {"steps": ["test"], "image": "i"}),
              (EventType.STEP_STARTED, T0 + 2, {"step": 0}),
              (EventType.STEP_FINISHED, T0 + 9.5, {"step": 0, "status": "failed",
                                                   "exit_code": 1}),
              (EventType.JOB_FINISHED, T0 + 42, {"status": "failed", "error": None})]
    for seq, (kind, at, data) in enumerate(events, start=1):
        event = Event(type=kind, job_id=job.id, attempt=job.attempt, at=at, data=data, seq=seq)
        redis_client.xadd(keys.EVENTS_STREAM, {"e": event.to_json()})
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    recorder.drain()
    redis_client.xadd(keys.EVENTS_STREAM, {"e": event.to_json()})  # a runner sent it twice
    recorder.drain()

    samples = scrape(client)

    job_seconds = "slipway_job_duration_seconds"
    assert value(samples, f"{job_seconds}_count", status="failed") == 1
    assert value(samples, f"{job_seconds}_sum", status="failed") == 42
    assert value(samples, f"{job_seconds}_bucket", status="failed", le="30.0") == 0
    assert value(samples, f"{job_seconds}_bucket", status="failed", le="60.0") == 1
    step_seconds = "slipway_step_duration_seconds"
    assert value(samples, f"{step_seconds}_count", status="failed") == 1
    assert value(samples, f"{step_seconds}_sum", status="failed") == 7.5
    assert value(samples, f"{step_seconds}_bucket", status="failed", le="5.0") == 0
    assert value(samples, f"{step_seconds}_bucket", status="failed", le="10.0") == 1
    assert value(samples, "slipway_recorder_pending_events") == 0


def test_a_scraper_asking_for_openmetrics_gets_it(client):
    response = client.get("/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text;")
    families = {family.name: family for family in
                openmetrics_families(response.get_data(as_text=True))}
    assert families["slipway_webhook_duration_seconds"].type == "histogram"


def test_a_token_is_required_once_one_is_set(make_app):
    client = make_app(metrics_token="s3cret-metrics").test_client()

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic s3cret-metrics"}
                      ).status_code == 401
    samples = scrape(client, Authorization="Bearer s3cret-metrics")
    assert value(samples, "slipway_up", component="redis") == 1


def test_redis_down_still_answers_what_sql_knows(make_app, registered, client):
    assert post_hook(client, push_payload("octo/project", "a" * 40)).status_code == 202
    down = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0").test_client()

    samples = scrape(down)

    assert value(samples, "slipway_up", component="redis") == 0
    assert value(samples, "slipway_up", component="database") == 1
    assert value(samples, "slipway_builds", status="queued") == 1
    assert value(samples, "slipway_queue_oldest_wait_seconds", queue=keys.JOBS_QUEUE) >= 0
    assert not any(name.startswith(("slipway_queue_length", "slipway_recorder"))
                   for name, _ in samples)


def test_database_down_still_answers_what_redis_knows(tmp_path, redis_url, redis_client):
    redis_client.xadd(keys.EVENTS_STREAM, {"e": "{}"})
    app = create_app({"data_dir": tmp_path / "data", "redis_url": redis_url,
                      "base_url": "http://ci.test", "secret_key": "test",
                      "database_url": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x"})

    samples = scrape(app.test_client())

    assert value(samples, "slipway_up", component="database") == 0
    assert value(samples, "slipway_up", component="redis") == 1
    assert value(samples, "slipway_recorder_lag_events") == 1
    assert not any(name.startswith(("slipway_builds", "slipway_jobs")) for name, _ in samples)


def _request(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _webhook(port: int) -> int:
    body = push_payload("octo/project", uuid.uuid4().hex[:40].rjust(40, "1"))
    return _request(port, "POST", "/hooks/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(body, SECRET)})[0]


def _workers(access_log: Path, request_line: str) -> set[str]:
    """The gunicorn workers (process ids) that answered ``request_line``, by the access log."""
    return {match.group(1) for match in re.finditer(rf"^<(\d+)> {re.escape(request_line)} ",
                                                    access_log.read_text(), re.MULTILINE)}


def test_webhook_times_from_every_worker_add_up_in_every_workers_answer(
        app, registered, redis_url, tmp_path):
    access_log = tmp_path / "access.log"
    access_log.touch()
    env = {"SLIPWAY_REDIS_URL": redis_url, "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
           "SLIPWAY_BASE_URL": "http://ci.test", "SLIPWAY_ACCESS_LOG": str(access_log),
           "GUNICORN_CMD_ARGS": "--access-logformat '%(p)s %(r)s %(s)s'"}
    with procfile_web(tmp_path, env) as port:
        sent = 0

        def both_workers_took_webhooks() -> bool:
            nonlocal sent
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: _webhook(port), range(16)))
            assert answers == [202] * len(answers)
            sent += len(answers)
            return len(_workers(access_log, "POST /hooks/github HTTP/1.1")) == 2

        wait_for(both_workers_took_webhooks, what="webhooks answered by both workers")

        def scraped_count() -> float:
            status, text = _request(port, "GET", "/metrics")
            assert status == 200
            return value(parse(text), "slipway_webhook_duration_seconds_count")

        wait_for(lambda: scraped_count() == sent, what=f"{sent} webhooks counted")

        def both_workers_scraped() -> bool:
            with ThreadPoolExecutor(4) as pool:
                counts = list(pool.map(lambda _: scraped_count(), range(8)))
            assert counts == [sent] * len(counts)
            return len(_workers(access_log, "GET /metrics HTTP/1.1")) == 2

        wait_for(both_workers_scraped, what="scrapes answered by both workers")


@pytest.mark.docker
def test_a_build_through_the_whole_stack_shows_in_the_metrics(stack, git_repo):
    sha = git_repo.commit({".slipway.yml": "steps:\n  - name: hello\n    run: echo hello\n"})
    stack.add_repo("octo/project", git_repo.path)
    number = stack.push("octo/project", sha)
    assert stack.wait_finished("octo/project", number)["status"] == "passed"
    port = int(stack.url.rpartition(":")[2])

    def job_counted() -> Samples | None:
        status, text = _request(port, "GET", "/metrics")
        assert status == 200
        samples = parse(text)
        passed = ("slipway_job_duration_seconds_count", frozenset({("status", "passed")}))
        return samples if samples.get(passed) == 1 else None

    samples = wait_for(job_counted, what="the job's duration counted")
    assert value(samples, "slipway_step_duration_seconds_count", status="passed") == 1
    assert value(samples, "slipway_builds", status="passed") == 1
    assert value(samples, "slipway_runners_live") == 1
    assert value(samples, "slipway_webhook_duration_seconds_count") == 1
    assert value(samples, "slipway_queue_length", queue=keys.JOBS_QUEUE) == 0
