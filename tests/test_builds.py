"""Builds end to end: signed webhook → RQ → real runner in Docker → recorder → SQL and logs."""

import pytest
from sqlalchemy import select

from ci.logs import storage
from ci.store.models import Build
from tests.conftest import IMAGE, job_containers, post_hook, push_payload, wait_for

pytestmark = pytest.mark.docker

PASSING_TEST = "def test_adds():\n    assert 1 + 1 == 2\n"
FAILING_TEST = "def test_adds():\n    assert 1 + 1 == 3\n"


def pipeline(*steps: tuple[str, str], extra: str = "") -> str:
    body = "".join(f"  - name: {name}\n    run: {run}\n" for name, run in steps)
    return f"image: {IMAGE}\n{extra}steps:\n{body}"


def push_and_run(client, git_repo, run_queue, session, files, message="change") -> Build:
    sha = git_repo.commit(files, message)
    response = post_hook(client, push_payload("octo/project", sha, message=message))
    assert response.status_code == 202
    run_queue()
    session.rollback()  # a new transaction sees what others committed
    return session.scalar(select(Build).where(Build.number == response.get_json()["build"]["number"]))


def job_log(resources, build) -> str:
    from ci.pipeline.logformat import to_text

    return to_text(storage.read_archive(resources.settings.log_dir, build.jobs[0].id))


def test_signed_push_passes_and_archives_the_test_output(
        client, git_repo, registered, run_queue, session, resources, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": pipeline(("test", "python3 -m pytest -q"), extra="env: {GREETING: hello}\n"),
        "test_math.py": PASSING_TEST,
    })
    assert build.status == "passed", build.error
    job = build.jobs[0]
    assert job.log_archived
    assert [(s.name, s.status, s.exit_code) for s in job.steps] == [("test", "passed", 0)]
    assert job.steps[0].started_at <= job.steps[0].finished_at
    assert build.started_at <= build.finished_at
    text = job_log(resources, build)
    assert "1 passed" in text
    assert "--- job passed ---" in text
    raw = client.get("/octo/project/builds/1/jobs/1/log.txt")
    assert raw.status_code == 200
    assert "1 passed" in raw.get_data(as_text=True)


def test_failing_test_fails_the_build_and_skips_later_steps(
        client, git_repo, registered, run_queue, session, resources, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": pipeline(("test", "python3 -m pytest -q"), ("after", "echo never-printed")),
        "test_math.py": FAILING_TEST,
    })
    assert build.status == "failed"
    steps = build.jobs[0].steps
    assert [(s.name, s.status) for s in steps] == [("test", "failed"), ("after", "skipped")]
    assert steps[0].exit_code == 1
    assert steps[1].exit_code is None
    assert build.error == "step 'test' exited with code 1"
    text = job_log(resources, build)
    assert "1 failed" in text
    assert "never-printed" not in text


def test_steps_share_the_workspace_and_stop_at_the_first_failing_command(
        client, git_repo, registered, run_queue, session, resources, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": pipeline(("write", "echo data > made.txt"),
                                 ("read", "cat made.txt; false; echo after-false")),
    })
    assert build.status == "failed"
    text = job_log(resources, build)
    assert "data" in text
    assert "after-false" not in text


def test_timeout_errors_the_job_and_removes_the_container(
        client, git_repo, registered, run_queue, session, resources, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": pipeline(("hang", "echo started; sleep 3600"), extra="timeout: 2s\n"),
    })
    assert build.status == "errored"
    job = build.jobs[0]
    assert job.error == "timed out after 2s"
    assert job.steps[0].status == "errored"
    assert "started" in job_log(resources, build)
    assert job_containers(docker_client, job.id) == []


def test_invalid_config_errors_with_the_message(
        client, git_repo, registered, run_queue, session, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": f"image: {IMAGE}\nstep:\n  - run: echo hi\n",
    })
    assert build.status == "errored"
    assert "`step` is not a key; did you mean `steps`?" in build.error
    assert "line 2" in build.error


def test_missing_config_errors(client, git_repo, registered, run_queue, session, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {"README.md": "hello\n"})
    assert build.status == "errored"
    assert build.error.startswith(f"commit {build.sha[:12]}: there is no `.slipway.yml`")


def test_missing_image_errors_with_the_pull_failure(
        client, git_repo, registered, run_queue, session, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": "image: slipway/does-not-exist:1\nsteps:\n  - run: echo hi\n",
    })
    assert build.status == "errored"
    assert build.error.startswith("image slipway/does-not-exist:1 not found locally and could "
                                  "not be pulled: ")


def test_script_in_the_log_is_escaped_on_the_page(
        client, git_repo, registered, run_queue, session, docker_client):
    build = push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": pipeline(("evil", "printf '<script>alert(1)</script>\\n'")),
    })
    assert build.status == "passed"
    page = client.get(f"/octo/project/builds/{build.number}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page


def badge_saying(client, text: str, headers: dict[str, str] | None = None):
    """The badge's answer when it says ``text``, else None."""
    answer = client.get("/octo/project/badge.svg", headers=headers or {})
    return answer if text in answer.get_data(as_text=True) else None


def test_badge_follows_the_default_branch(
        client, git_repo, registered, run_queue, session, docker_client):
    unknown = client.get("/octo/project/badge.svg")
    assert "build: unknown" in unknown.get_data(as_text=True)

    push_and_run(client, git_repo, run_queue, session, {
        ".slipway.yml": pipeline(("test", "python3 -m pytest -q")), "test_math.py": PASSING_TEST})
    # A badge is kept for a second (ci.views.response_cache): it may say the old state.
    passing = wait_for(lambda: badge_saying(client, "build: passing"), timeout=10,
                       what="the badge saying passing")
    assert passing.status_code == 200
    assert passing.mimetype == "image/svg+xml"
    assert passing.headers["Cache-Control"] == "no-cache"
    assert "build: passing" in passing.get_data(as_text=True)
    etag = passing.headers["ETag"]
    assert client.get("/octo/project/badge.svg", headers={"If-None-Match": etag}).status_code == 304

    push_and_run(client, git_repo, run_queue, session, {"test_math.py": FAILING_TEST})
    failing = wait_for(lambda: badge_saying(client, "build: failing", {"If-None-Match": etag}),
                       timeout=10, what="the badge saying failing")
    assert failing.status_code == 200
    assert "build: failing" in failing.get_data(as_text=True)
    other_branch = client.get("/octo/project/badge.svg?branch=feature")
    assert "build: unknown" in other_branch.get_data(as_text=True)
    assert "build: unknown" in client.get("/nobody/nothing/badge.svg").get_data(as_text=True)


def test_second_build_reuses_the_mirror(
        client, git_repo, registered, run_queue, session, resources, tmp_path, docker_client):
    files = {".slipway.yml": pipeline(("test", "git log --oneline | wc -l"))}
    first = push_and_run(client, git_repo, run_queue, session, files)
    second = push_and_run(client, git_repo, run_queue, session, {"more.txt": "x\n"})
    assert (first.status, second.status) == ("passed", "passed")
    mirrors = list((tmp_path / "runner" / "mirrors").glob("*.git"))
    assert len(mirrors) == 1
    # git inside the container sees the history (objects come from the mirror).
    assert "\n2\n" in job_log(resources, second)
    assert not list((tmp_path / "runner" / "workspaces").iterdir())
