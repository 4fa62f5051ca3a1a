"""The build page's one live stream: every job's log and the build's state over one SSE
connection, resumed without gaps or repeats; and the page it continues, whose log is cut
into folded sections of numbered lines.

A runner here is the runners' own ``Publisher`` writing to the test Redis, and the real
recorder applies its events to the database and announces each change, so the stream
sees what it sees in production without Docker.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs

import pytest
import requests

from ci import store
from ci.builds import service
from ci.builds.recorder import Recorder
from ci.logs import multiplex
from ci.logs.render import job_log
from ci.pipeline import keys
from ci.pipeline.logformat import END, INFO, OUT, STEP, LogEntry
from ci.pipeline.spec import EventType, JobSpec
from ci.views import build_events, build_log
from runners.publisher import Publisher
from tests.browser import shot
from tests.conftest import add_user, post_hook, push_payload, sign_in, sse_events

SHA = "e" * 40
CELLS = [{"PYTHON": "3.11"}, {"PYTHON": "3.12"}]
LINES = re.compile(r"<ol[^>]*>(.*?)</ol>")
LINE = re.compile(r"<li[^>]*>(.*?)(?=<li|$)")


@pytest.fixture
def recorder(resources, redis_client) -> Recorder:
    return Recorder(resources.write_sessions, redis_client, resources.settings)


@pytest.fixture
def matrix_build(client, session, registered):
    """Build #1 of ``octo/project`` with two queued jobs."""
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202
    build = store.get_build(session, registered, 1)
    store.plan_build(session, build.jobs[0], CELLS, [False, False])
    session.commit()
    return build


def runner(redis_client, job, steps: list[str]) -> Publisher:
    """A runner that took ``job`` and is about to run ``steps``."""
    spec = JobSpec(job_id=job.id, attempt=job.attempt, build_id=job.build_id,
                   repo="octo/project", clone_url="unused", sha=SHA, ref="refs/heads/main",
                   event="push")
    publisher = Publisher(redis_client, spec)
    publisher.event(EventType.JOB_STARTED, runner="test-runner")
    publisher.info("checking out")
    publisher.event(EventType.STEPS_PLANNED, steps=steps, image="slipway/python:3.11")
    return publisher


def run_step(publisher: Publisher, index: int, name: str, output: str, code: int = 0) -> None:
    publisher.step_started(index, name)
    publisher.output(index, output)
    publisher.end_output(index)
    status = "passed" if code == 0 else "failed"
    publisher.event(EventType.STEP_FINISHED, step=index, status=status, exit_code=code)


class Stream:
    """One connection to a build's stream, read event by event."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.response = requests.get(url, headers=headers, stream=True, timeout=30)
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.events = sse_events(self.response)
        self.seen: list[tuple[str | None, str, dict]] = []

    def until(self, wanted) -> tuple[str | None, str, dict]:
        """Read up to and including the first event for which ``wanted(kind, data)``."""
        for event in self.events:
            self.seen.append(event)
            if wanted(event[1], event[2]):
                return event
        raise AssertionError(f"the stream ended before the event awaited: {self.seen[-3:]}")

    def rest(self) -> list[tuple[str | None, str, dict]]:
        """Every event until the stream ends (it must end)."""
        self.seen.extend(self.events)
        assert self.seen[-1][1] == "end"
        return self.seen

    def close(self) -> None:
        self.response.close()


def entries_of(events, job: int) -> list[dict]:
    return [entry for _id, kind, data in events if kind == "log" and data["job"] == job
            for entry in data["entries"]]


def text_of(entries: list[dict]) -> str:
    return unescape("".join(entry["html"] for entry in entries))


def last_state(events) -> dict:
    return [data for _id, kind, data in events if kind == "state"][-1]


def test_one_stream_carries_every_jobs_log_and_the_build_state_to_its_end(
        server, matrix_build, redis_client, recorder):
    stream = Stream(f"{server}/octo/project/builds/1/events")
    try:
        _id, _kind, first = stream.until(lambda kind, _data: kind == "state")
        assert first["status"] == "queued"
        assert [job["status"] for job in first["jobs"]] == ["queued", "queued"]

        one = runner(redis_client, matrix_build.jobs[0], ["test"])
        two = runner(redis_client, matrix_build.jobs[1], ["test"])
        one.step_started(0, "test")
        one.output(0, "one-first\n")
        two.step_started(0, "test")
        two.output(0, "two-first\n")
        stream.until(lambda kind, data: kind == "log" and "two-first" in text_of(data["entries"]))
        assert "one-first" in text_of(entries_of(stream.seen, 1))

        recorder.drain()
        _id, _kind, running = stream.until(
            lambda kind, data: kind == "state" and data["jobs"][1]["status"] == "running")
        assert running["status"] == "running" and running["started_at"]

        one.output(0, "one-last\n")
        one.event(EventType.STEP_FINISHED, step=0, status="passed", exit_code=0)
        one.finished("passed", None)
        two.output(0, "two-last\n")
        two.event(EventType.STEP_FINISHED, step=0, status="failed", exit_code=3)
        two.finished("failed", "step test exited with 3")
        recorder.drain()
        events = stream.rest()
    finally:
        stream.close()

    final = last_state(events)
    assert final["status"] == "failed"
    job_two = final["jobs"][1]
    assert (job_two["status"], job_two["attempt"], job_two["error"]) == \
        ("failed", 1, "step test exited with 3")
    assert job_two["steps"] == [{
        "number": 1, "name": "test", "status": "failed", "exit_code": 3,
        "started_at": job_two["steps"][0]["started_at"],
        "finished_at": job_two["steps"][0]["finished_at"]}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", final["finished_at"])
    for job, first_line, last_line, status in ((1, "one-first", "one-last", "passed"),
                                              (2, "two-first", "two-last", "failed")):
        entries = entries_of(events, job)
        text = text_of(entries)
        assert text.index("checking out") < text.index(first_line) < text.index(last_line)
        ids = [entry["id"] for entry in entries]
        assert len(ids) == len(set(ids)) and ids == sorted(ids, key=_stream_order)
        assert entries[-1]["kind"] == END and entries[-1]["status"] == status


def _stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def test_a_reconnect_with_last_event_id_resumes_every_job_without_gaps_or_repeats(
        server, matrix_build, redis_client, recorder):
    publishers = [runner(redis_client, job, ["test"]) for job in matrix_build.jobs]
    for number in range(1, 4):
        for name, publisher in zip(("one", "two"), publishers):
            publisher.output(0, f"{name}-{number}\n")
    first = Stream(f"{server}/octo/project/builds/1/events")
    try:
        cut_id, _kind, _data = first.until(
            lambda kind, data: kind == "log" and data["job"] == 1)
        before = list(first.seen)
    finally:
        first.close()
    assert multiplex.parse_cursor(cut_id)[1].after == entries_of(before, 1)[-1]["id"]

    for publisher, status in zip(publishers, ("passed", "errored")):
        publisher.output(0, "after the cut\n")
        publisher.finished(status, None)
    recorder.drain()
    resumed = Stream(f"{server}/octo/project/builds/1/events", {"Last-Event-ID": cut_id})
    try:
        after = resumed.rest()
    finally:
        resumed.close()

    full = Stream(f"{server}/octo/project/builds/1/events")
    try:
        everything = full.rest()
    finally:
        full.close()
    for job in (1, 2):
        joined = [entry["id"] for entry in entries_of(before, job) + entries_of(after, job)]
        assert joined == [entry["id"] for entry in entries_of(everything, job)]
        assert text_of(entries_of(everything, job)).count("after the cut") == 1


def test_the_page_and_its_stream_together_hold_each_line_once(
        client, server, matrix_build, redis_client, recorder):
    publisher = runner(redis_client, matrix_build.jobs[0], ["build", "test"])
    run_step(publisher, 0, "build", "compiling\nlinking\n")
    publisher.step_started(1, "test")
    publisher.output(1, "collected 3 items\npartial line ")
    recorder.drain()
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    url = unescape(re.search(r'data-events="([^"]+)"', page)[1])
    path, query = url.split("?")
    assert path == "/octo/project/builds/1/events"
    assert list(multiplex.parse_cursor(parse_qs(query)["after"][0])) == [1]

    publisher.output(1, "goes on\nlast line\n")
    publisher.finished("passed", None)
    other = runner(redis_client, matrix_build.jobs[1], [])
    other.finished("passed", None)
    recorder.drain()
    stream = Stream(f"{server}{url}")
    try:
        events = stream.rest()
    finally:
        stream.close()
    shown = [unescape(line) for log in LINES.findall(page) for line in LINE.findall(log)]
    assert shown == ["checking out", "compiling", "linking", "collected 3 items",
                     "partial line "]
    later = text_of(entries_of(events, 1))
    assert "compiling" not in later and later.startswith("goes on\nlast line\n")
    assert 'data-partial' in page  # the page's last line goes on in the stream's first entry
    assert page.count("data-events=") == 1  # one stream for the build's two jobs


def test_the_stream_of_a_private_repository_is_404_to_strangers_and_open_to_readers(
        app, client, session, git_repo, registered):
    repo = store.add_repo(session, "octo/hidden", "github", str(git_repo.path),
                          "It's a Secret to Everybody")
    store.update_repo(session, repo, private=True)
    assert post_hook(client, push_payload("octo/hidden", SHA)).status_code == 202
    assert client.get("/octo/hidden/builds/1/events").status_code == 404
    add_user(session, "stranger")
    sign_in(client, "stranger")
    assert client.get("/octo/hidden/builds/1/events").status_code == 404
    reader = app.test_client()
    add_user(session, "reader", grants={repo: "read"})
    sign_in(reader, "reader")
    with reader.get("/octo/hidden/builds/1/events", buffered=False) as answer:
        assert answer.status_code == 200
        assert next(answer.iter_encoded()).startswith(b"retry: 2000")


def test_an_idle_stream_sends_keepalive_comments(server, matrix_build, monkeypatch):
    monkeypatch.setattr(build_events, "KEEPALIVE_MS", 100)
    with requests.get(f"{server}/octo/project/builds/1/events", stream=True,
                      timeout=30) as response:
        lines = response.iter_lines(decode_unicode=True)
        comments = (line for line in lines if line.startswith(":"))
        assert [next(comments), next(comments)] == [": keepalive", ": keepalive"]


@pytest.mark.parametrize("cursor", ["1:123-0", "x", "1.1:12-0,", "1.1:12-0;2.1:1-1"])
def test_a_malformed_cursor_is_refused_with_what_one_looks_like(client, matrix_build, cursor):
    answer = client.get("/octo/project/builds/1/events", query_string={"after": cursor})
    assert answer.status_code == 400
    assert "like 1.1:1700000000000-0" in answer.get_data(as_text=True)
    from_header = client.get("/octo/project/builds/1/events", headers={"Last-Event-ID": cursor})
    assert from_header.status_code == 400


def test_a_rerun_tells_a_resuming_page_to_drop_the_earlier_attempts_lines(
        server, client, session, registered, redis_client, resources, recorder):
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202
    build = store.get_build(session, registered, 1)
    first = runner(redis_client, build.jobs[0], ["test"])
    run_step(first, 0, "test", "first attempt\n", code=1)
    first.finished("failed", None)
    recorder.drain()
    stream = Stream(f"{server}/octo/project/builds/1/events")
    try:
        cut_id, _kind, _data = stream.until(lambda kind, _data: kind == "log")
    finally:
        stream.close()

    with resources.write_sessions() as writes:
        again = store.get_build(writes, registered, 1)
        assert service.rerun_failed(writes, redis_client, resources.settings, again) == 1
    session.rollback()  # a new transaction: it sees the rerun
    second = runner(redis_client, store.get_build(session, registered, 1).jobs[0], ["test"])
    run_step(second, 0, "test", "second attempt\n")
    second.finished("passed", None)
    recorder.drain()
    resumed = Stream(f"{server}/octo/project/builds/1/events", {"Last-Event-ID": cut_id})
    try:
        events = resumed.rest()
    finally:
        resumed.close()
    logs = [data for _id, kind, data in events if kind == "log"]
    assert logs[0]["reset"] is True and logs[0]["attempt"] == 2
    text = text_of(entries_of(events, 1))
    assert "second attempt" in text and "first attempt" not in text
    assert last_state(events)["jobs"][0]["attempt"] == 2


def test_a_finished_page_folds_passed_steps_and_points_at_the_failure(
        client, matrix_build, redis_client, recorder):
    for job, code in zip(matrix_build.jobs, (0, 1)):
        publisher = runner(redis_client, job, ["build", "test"])
        run_step(publisher, 0, "build", "built\n")
        run_step(publisher, 1, "test", "1 failed\n" if code else "ok\n", code)
        publisher.finished("failed" if code else "passed", None)
    recorder.drain()
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert "data-events=" not in page  # finished: nothing to follow
    assert 'data-focus="job-2-step-1"' in page
    opened = re.findall(r'<details id="([^"]+)" data-step="[^"]+"( open)?>', page)
    assert opened == [("job-1-step-setup", ""), ("job-1-step-0", ""), ("job-1-step-1", ""),
                      ("job-2-step-setup", ""), ("job-2-step-0", ""), ("job-2-step-1", " open")]
    assert "<title>#1 failed · octo/project · Slipway</title>" in page
    assert re.search(r'<link rel="icon" [^>]*href="/static/favicon-failed\.svg\?v=', page)


def test_a_5000_line_log_costs_a_few_bytes_of_markup_per_line(client, matrix_build,
                                                                redis_client):
    job = matrix_build.jobs[0]
    text = [f"tests/test_module.py::test_case_{number} PASSED\n" for number in range(5000)]
    with redis_client.pipeline() as pipe:
        pipe.xadd(keys.log_stream(job.id), LogEntry("", STEP, 0, "test").to_fields())
        for line in text:
            pipe.xadd(keys.log_stream(job.id), LogEntry("", OUT, 0, line).to_fields())
        pipe.execute()
    page = client.get("/octo/project/builds/1").get_data()
    markup = len(page) - sum(len(line) for line in text)
    assert page.count(b"<li>tests/test_module.py::test_case_4999 PASSED</ol>") == 1
    assert markup < 5000 * 6 + 20_000, markup


def test_a_runaway_log_shows_its_last_lines_and_says_how_many_are_left_out(
        client, matrix_build, redis_client, monkeypatch):
    monkeypatch.setattr(build_log, "MAX_SHOWN_LINES", 100)
    job = matrix_build.jobs[0]
    with redis_client.pipeline() as pipe:
        for step, lines in ((0, 80), (1, 70)):
            pipe.xadd(keys.log_stream(job.id), LogEntry("", STEP, step, f"step {step}").to_fields())
            pipe.xadd(keys.log_stream(job.id), LogEntry("", OUT, step, "".join(
                f"line {step}.{number}\n" for number in range(lines))).to_fields())
        pipe.execute()
    page = unescape(client.get("/octo/project/builds/1").get_data(as_text=True))
    first = page[page.index('id="job-1-step-0"'):page.index('id="job-1-step-1"')]
    second = page[page.index('id="job-1-step-1"'):page.index('id="job-2"')]
    assert "50 earlier lines of this section are not shown here" in " ".join(first.split())
    assert first.count("<li") == 30 and '<ol start="51" data-hidden="50">' in first
    assert "<li>line 0.50" in first and "line 0.49\n" not in first
    assert "not shown here" not in second and second.count("<li") == 70
    assert '<ol start="81">' in second  # the job's numbering goes on


@pytest.mark.postgresql_only
def test_a_live_page_keeps_only_a_runaway_jobs_last_lines(
        server, page, screenshots, matrix_build, redis_client, monkeypatch):
    monkeypatch.setattr(build_log, "MAX_SHOWN_LINES", 50)
    publisher = runner(redis_client, matrix_build.jobs[0], ["early", "late"])
    run_step(publisher, 0, "early", "".join(f"early {n}\n" for n in range(30)))
    page.goto(f"{server}/octo/project/builds/1")
    page.locator("#job-1-step-0 li").nth(29).wait_for(state="attached")
    run_step(publisher, 1, "late", "".join(f"late {n}\n" for n in range(40)))
    page.locator("#job-1-step-1 li", has_text="late 39").wait_for(state="attached")

    assert page.locator("#job-1-log li").count() == 50  # "checking out", 9 early, 40 late
    assert page.locator("#job-1-step-setup li").count() == 1
    early = page.locator("#job-1-step-0")
    assert early.locator("li").first.text_content() == "early 21"
    assert early.locator("ol").get_attribute("data-hidden") == "21"
    assert early.locator(".log-hidden").text_content() == (
        "21 earlier lines of this section are not shown here: the raw log has them all.")
    assert early.locator(".log-hidden a").get_attribute("href") == (
        "/octo/project/builds/1/jobs/1/log.txt")
    numbers = page.evaluate("[...document.querySelectorAll('#job-1-log ol')].map(o => o.start)")
    assert numbers == [1, 23, 32]  # the job's numbering counts the lines left out
    early.locator("summary").click()
    shot(page, screenshots, "build-runaway-log")


# The page's log: sections and lines ------------------------------------------------------

def entry(number: int, kind: str, step: int, data: str) -> LogEntry:
    return LogEntry(f"{1_700_000_000_000 + number * 10}-0", kind, step, data)


def test_job_level_lines_open_and_close_the_log_and_a_step_named_setup_is_its_own():
    log = job_log([
        entry(1, INFO, -1, "checking out"),
        entry(2, STEP, 0, "setup"),
        entry(3, OUT, 0, "\x1b[32mready\x1b[0m\n"),
        entry(4, INFO, 0, "exit code 0"),
        entry(5, STEP, -2, "service db"),
        entry(6, OUT, -2, "db up\n"),
        entry(7, INFO, -1, "job passed"),
    ], planned=["setup", "test"])
    assert [(section.key, section.name) for section in log.sections] == [
        ("setup", "Set up job"), ("0", "setup"), ("1", "test"), ("-2", "service db"),
        ("complete", "Complete job")]
    assert [section.first_line for section in log.sections] == [1, 2, 4, 4, 5]
    ready, exit_line = log.sections[1].lines
    assert ready.html == '<span class="ansi-fg-green">ready</span>' and not ready.info
    assert exit_line.info and exit_line.html == "exit code 0"
    assert log.begun


def test_a_line_cut_between_chunks_is_one_line_and_info_lines_stand_alone():
    log = job_log([
        entry(1, STEP, 0, "test"),
        entry(2, OUT, 0, "pro"),
        entry(3, OUT, 0, "gress <b>\nnext"),
        entry(4, INFO, 0, "the log was cut\n"),
        entry(5, OUT, 0, " line\n\n"),
    ])
    lines = log.sections[0].lines
    assert [(line.html, line.info) for line in lines] == [
        ("progress &lt;b&gt;", False), ("next", False), ("the log was cut", True),
        (" line", False), ("", False)]
    assert not log.sections[0].partial
    assert [line.time for line in lines] == [1_700_000_000, None, None, None, None]
    assert log.sections[0].html.startswith('<li data-t="1700000000">progress &lt;b&gt;<li>next')
