"""Answers are compressed for clients that accept it — pages, JSON, text, stylesheets and
scripts — but not tiny ones (a webhook's answer) and never a stream (the live log), and
ETags still answer 304 Not Modified."""

import gzip
import json
import uuid

import requests
from sqlalchemy import select

from ci.pipeline import keys
from ci.pipeline.logformat import END, OUT, LogEntry
from ci.store.models import Job
from ci.views.compression import MIN_SIZE
from tests.conftest import post_hook, push_payload, sign, sse_events
from tests.reported_jobs import report_job

GZIP = {"Accept-Encoding": "gzip"}
BUILD_PAGE = "/octo/project/builds/1"


def lines(count: int) -> str:
    return "".join(f"\x1b[32mPASSED\x1b[0m tests/test_{n}.py::test_case_{n}\n"
                   for n in range(count))


def assert_varies(response) -> None:
    assert "accept-encoding" in response.headers.get("Vary", "").lower()


def test_a_long_build_page_is_sent_gzipped_and_still_answers_304(
        client, session, resources, redis_client, registered):
    report_job(client, session, resources, redis_client, {"test": lines(5000)})
    plain = client.get(BUILD_PAGE)
    packed = client.get(BUILD_PAGE, headers=GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert_varies(plain)
    assert_varies(packed)
    assert gzip.decompress(packed.data) == plain.data
    assert len(packed.data) * 10 < len(plain.data)
    assert int(packed.headers["Content-Length"]) == len(packed.data)

    for etag, headers in ((packed.headers["ETag"], GZIP), (plain.headers["ETag"], {})):
        again = client.get(BUILD_PAGE, headers={**headers, "If-None-Match": etag})
        assert (again.status_code, again.data) == (304, b"")
        assert_varies(again)
    assert client.get(BUILD_PAGE, headers={**GZIP, "If-None-Match": '"other"'}).status_code \
        == 200


def test_json_and_text_are_compressed_and_a_webhooks_small_answer_is_not(
        client, session, resources, redis_client, registered):
    report_job(client, session, resources, redis_client, {"test": lines(200)})
    for path, mimetype in (("/api/openapi.json", "application/json"),
                           ("/octo/project/builds/1/jobs/1/log.txt", "text/plain")):
        packed = client.get(path, headers=GZIP)
        assert (packed.status_code, packed.mimetype) == (200, mimetype)
        assert packed.headers["Content-Encoding"] == "gzip", path
        assert gzip.decompress(packed.data) == client.get(path).data

    body = push_payload("octo/project", "b" * 40)
    answer = client.post("/hooks/github", data=body, headers={
        **GZIP, "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(body)})
    assert answer.status_code == 202
    assert len(answer.data) < MIN_SIZE
    assert "Content-Encoding" not in answer.headers
    assert answer.get_json()["status"] == "accepted"


def test_stylesheets_and_scripts_are_compressed_and_revalidated(client):
    page = client.get("/login").get_data(as_text=True)
    stylesheet = page.split('<link rel="stylesheet" href="', 1)[1].split('"', 1)[0]
    for path in (stylesheet, "/static/live.js", "/static/ansi.css"):
        with client.get(path) as plain, client.get(path, headers=GZIP) as packed:
            assert packed.headers["Content-Encoding"] == "gzip", path
            assert gzip.decompress(packed.data) == plain.data
            assert_varies(packed)
            etag = packed.headers["ETag"]
        with client.get(path, headers={**GZIP, "If-None-Match": etag}) as again:
            assert again.status_code == 304


def test_a_badge_answers_304_to_a_client_that_accepts_gzip(client, registered):
    first = client.get("/octo/project/badge.svg", headers=GZIP)
    assert first.mimetype == "image/svg+xml"
    assert_varies(first)
    again = client.get("/octo/project/badge.svg",
                       headers={**GZIP, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_the_live_log_is_neither_compressed_nor_held_back(
        server, client, session, registered, redis_client):
    assert post_hook(client, push_payload("octo/project", "c" * 40)).status_code == 202
    job = session.scalar(select(Job))
    events_url = client.get("/api/repos/octo/project/builds/1").get_json()["jobs"][0][
        "events_url"].replace("http://ci.test", server)
    stream = keys.log_stream(job.id)

    def write(kind: str, data: str) -> None:
        redis_client.xadd(stream, LogEntry("", kind, 0, data).to_fields())

    write(OUT, "first line\n")
    with requests.get(events_url, stream=True, timeout=30,
                      headers={"Accept-Encoding": "gzip, deflate"}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Encoding" not in response.headers
        events = sse_events(response)
        _id, kind, data = next(events)
        assert kind == "out" and "first line" in json.dumps(data)
        # Only now is the next line written: it comes while the answer is still open.
        write(OUT, "second line\n")
        _id, kind, data = next(events)
        assert kind == "out" and "second line" in json.dumps(data)
        write(END, "passed")
        assert [kind for _id, kind, _data in events] == ["end"]
