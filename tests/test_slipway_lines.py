"""Slipway's own lines in a job's log go into the section of the step they concern — the
exit code, a cancel, the job's error, the cut of a long log — on a line of their own, and
lines before the first step stay in the setup section."""

import pytest
from sqlalchemy import select

from ci.logs import storage
from ci.pipeline import keys
from ci.pipeline.logformat import INFO, LogEntry, to_text
from ci.pipeline.spec import JobSpec
from ci.store.models import Build
from runners.publisher import Publisher
from tests.conftest import IMAGE, post_hook, push_payload

JOB_ID = 7


def publisher_for(redis_client, log_limit_bytes: int = 1024 * 1024) -> Publisher:
    spec = JobSpec(job_id=JOB_ID, attempt=1, build_id=1, repo="octo/project", clone_url="x",
                   sha="0" * 40, ref="refs/heads/main", event="push",
                   log_limit_bytes=log_limit_bytes)
    return Publisher(redis_client, spec)


def sent(redis_client) -> list[LogEntry]:
    return [LogEntry.from_fields(entry_id, fields)
            for entry_id, fields in redis_client.xrange(keys.log_stream(JOB_ID))]


def own_lines(entries: list[LogEntry]) -> list[tuple[int, str]]:
    return [(entry.step, entry.data) for entry in entries if entry.kind == INFO]


def run_steps(publisher: Publisher, outputs: list[list[str]]) -> None:
    for index, chunks in enumerate(outputs):
        publisher.step_started(index, f"step{index}")
        for chunk in chunks:
            publisher.output(index, chunk)
        publisher.end_output(index)


def test_the_jobs_error_goes_into_its_steps_section_on_a_line_of_its_own(redis_client):
    publisher = publisher_for(redis_client)
    publisher.info("checking out 000000000000 (refs/heads/main)")
    run_steps(publisher, [["built\n"], ["3 failed"], ["notified\n"]])
    publisher.finished("failed", "step 'step1' exited with code 1", 1)
    entries = sent(redis_client)
    assert own_lines(entries) == [(-1, "checking out 000000000000 (refs/heads/main)"),
                                  (1, "step 'step1' exited with code 1")]
    assert to_text(entries) == (
        "[slipway] checking out 000000000000 (refs/heads/main)\n\n"
        "--- step 1: step0 ---\nbuilt\n\n"
        "--- step 2: step1 ---\n3 failed\n\n"
        "--- step 3: step2 ---\nnotified\n"
        "[slipway] step 'step1' exited with code 1\n\n"
        "--- job failed ---\n")


def test_a_line_after_output_that_did_not_end_its_line_starts_a_new_one(redis_client):
    publisher = publisher_for(redis_client)
    run_steps(publisher, [["compiling"], ["waiting"]])
    publisher.finished("canceled", "canceled by dev", 1)
    text = to_text(sent(redis_client))
    assert "--- step 1: step0 ---\ncompiling\n\n" in text
    assert text.endswith("--- step 2: step1 ---\nwaiting\n[slipway] canceled by dev\n\n"
                         "--- job canceled ---\n")


def test_a_cut_log_says_at_the_cut_and_at_its_end_how_much_was_left_out(redis_client):
    publisher = publisher_for(redis_client, log_limit_bytes=4096)
    run_steps(publisher, [["a" * 3000 + "\n"], ["b" * 1000] * 5, ["c" * 100_000, "d" * 100_000]])
    publisher.finished("passed", None)
    entries = sent(redis_client)
    cut = "the log was cut at 4 KiB; the rest of the output is not kept"
    left_out = 5000 - 1095 + 200_000  # what the second step printed past the limit, and after
    summary = f"{left_out // 1024:,} KiB of output past the limit were not kept"
    assert summary == "199 KiB of output past the limit were not kept"
    assert own_lines(entries) == [(1, cut), (1, summary)]
    text = to_text(entries)
    assert f"--- step 2: step1 ---\n{'b' * 1095}\n[slipway] {cut}\n\n--- step 3: step2 ---\n" \
        in text
    assert text.endswith(f"[slipway] {summary}\n\n--- job passed ---\n")
    assert "c" * 10 not in text and "d" * 10 not in text


def test_a_log_cut_by_a_few_bytes_counts_them_in_bytes(redis_client):
    publisher = publisher_for(redis_client, log_limit_bytes=4096)
    run_steps(publisher, [["x" * 4000 + "\n", "y" * 100 + "\n"]])
    publisher.finished("passed", None)
    assert own_lines(sent(redis_client))[-1] == (
        0, "6 bytes of output past the limit were not kept")


def test_a_runners_line_quoting_a_url_shows_no_credentials(redis_client):
    publisher = publisher_for(redis_client)
    said = "fatal: unable to access 'https://bot:hunter22@git.example/o/r.git/': 403"
    publisher.info(f"cache not restored: {said}")
    publisher.finished("errored", said)
    lines = [text for _step, text in own_lines(sent(redis_client))]
    assert lines == [
        "cache not restored: fatal: unable to access 'https://***@git.example/o/r.git/': 403",
        "fatal: unable to access 'https://***@git.example/o/r.git/': 403"]


@pytest.mark.docker
def test_the_exit_code_of_a_failing_step_is_in_that_steps_section(
        client, git_repo, registered, run_queue, session, resources, docker_client):
    sha = git_repo.commit({".slipway.yml": (
        f"image: {IMAGE}\nsteps:\n"
        "  - name: build\n    run: echo built\n"
        "  - name: test\n    run: printf '3 failed'; exit 3\n"
        "  - name: notify\n    run: echo notified\n    when:\n      status: [failure]\n")})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    job = session.scalars(select(Build)).one().jobs[0]
    assert job.status == "failed"
    entries = storage.read_all(resources.redis, resources.settings.log_dir, job)
    lines = own_lines(entries)
    assert lines[0][0] == -1 and lines[0][1].startswith("checking out ")
    assert (1, "step 'test' exited with code 3") in lines
    assert not [text for step, text in lines if step == -1 and "exited" in text]
    text = client.get("/octo/project/builds/1/jobs/1/log.txt").get_data(as_text=True)
    assert "--- step 2: test ---\n3 failed\n\n--- step 3: notify ---\nnotified\n" in text
    assert text.endswith("[slipway] step 'test' exited with code 3\n\n--- job failed ---\n")
