"""Artifacts: kept by the runner, carried through Redis, stored by the recorder, served by the
web, removed by retention.

Most tests drive the runner's own job loop with :class:`HostWorkspace`, an executor whose
steps are set per test and whose workspace is archived as Docker archives it (links as
links); the two Docker tests check the same against the real engine.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ci import store
from ci.cli.main import main
from ci.artifacts import ArtifactError, LocalArtifactStore, remove_job_artifacts
from ci.builds.recorder import Recorder
from ci.pipeline import keys
from ci.pipeline.artifacts import ALWAYS, ON_SUCCESS, Artifacts
from ci.pipeline.spec import Event, EventType, JobSpec
from ci.store.models import Build, Job
from runners import artifacts as kept
from runners.publisher import Publisher
from runners.settings import RunnerSettings
from runners.worker import JobRun
from tests.browser import horizontal_overflow, shot
from tests.conftest import IMAGE, add_user, log_of, post_hook, push_payload, token_headers

Step = tuple[int, Callable[[Path], None]]
WHEEL = b"PK\x03\x04 not really a wheel\n" * 100
REPORT = b'<testsuite tests="1"><testcase name="ok"/></testsuite>\n'


class HostWorkspace:
    """The executor contract over the job's host folder: each step is an exit code and what
    it does to the workspace; archives are made as Docker makes them (names relative to the
    parent of the path asked for, links stored as links, never followed)."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.root: Path | None = None
        self.archived: list[str] = []

    def begin(self, name: str, labels: dict[str, str], internet: bool,
              read_only_mounts: dict[str, str] | None = None) -> None:
        """Nothing to prepare, and no folder to check out into."""

    def setup(self, environment, say) -> None:
        self.root = environment.workspace

    def start_ahead(self) -> None:
        """Nothing runs ahead."""

    def run_step(self, script, on_output, image=None, env=None) -> int | None:
        code, effect = self.steps.pop(0)
        effect(self.root)
        on_output(f"ran {script}\n")
        return code

    def diagnose(self, exit_code: int) -> str | None:
        return None

    def stream_archive(self, path: str) -> Iterator[bytes] | None:
        self.archived.append(path)
        inside = PurePosixPath(path).relative_to("/workspace")
        target = self.root.joinpath(*inside.parts)
        if not os.path.lexists(target):
            return None
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(target, arcname=PurePosixPath(path).name)
        data = buffer.getvalue()
        return iter([data[start:start + 5000] for start in range(0, len(data), 5000)])

    def service_logs(self) -> dict[str, str]:
        return {}

    def kill(self) -> None:
        """Nothing runs in the background."""

    def destroy(self) -> None:
        """Nothing to remove: the job loop removes the workspace."""


def files(contents: dict[str, bytes] | None = None) -> Callable[[Path], None]:
    """A step's effect: write these files into the workspace."""
    def write(root: Path) -> None:
        for name, data in (contents or {}).items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return write


def hostile(root: Path) -> None:
    """What a build that tries to take host files with it leaves in its workspace."""
    files({"dist/app.whl": WHEEL, "reports/unit/a.xml": REPORT, "zbig.bin": b"x" * 3000})(root)
    (root / "dist" / "link").symlink_to("/etc/hostname")
    (root / "leak").symlink_to("/etc/passwd")
    (root / "dist" / "etc").symlink_to("/etc", target_is_directory=True)
    os.mkfifo(root / "dist" / "pipe")
    (root / "zz").mkdir()
    os.link(root / "dist" / "app.whl", root / "zz" / "hard")  # archived as a hard link
    (root / "dist" / "esc\x1b[2J.whl").write_bytes(b"x")


HOSTILE_PATTERNS = ("dist/*", "reports/**/*.xml", "le*", "*.bin", "zz/*", "nothing/*.txt")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The runner: what it keeps -------------------------------------------------------------


def test_only_matching_regular_files_are_kept_and_the_log_says_why(tmp_path):
    workspace = HostWorkspace([])
    workspace.root = tmp_path / "workspace"
    workspace.root.mkdir()
    hostile(workspace.root)
    out = tmp_path / "out"
    found = kept.collect(workspace, Artifacts(HOSTILE_PATTERNS), 4096,
                         kept.FolderDestination(out))
    assert [(file.path, file.size, file.sha256) for file in found.kept] == [
        ("dist/app.whl", len(WHEEL), sha(WHEEL)),
        ("reports/unit/a.xml", len(REPORT), sha(REPORT))]
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()) == [
        "dist/app.whl", "reports/unit/a.xml"]
    assert not any(path.is_symlink() for path in out.rglob("*"))
    assert workspace.archived == ["/workspace"]
    lines = kept.report(found, 4096)
    assert lines[0] == ("artifacts: kept 2 files (2.4 KiB): dist/app.whl (2.3 KiB), "
                        "reports/unit/a.xml (55 bytes)")
    assert ("artifacts: kept 2 files (2.4 KiB); zbig.bin (2.9 KiB) is over the job's artifact "
            "limit of 4 KiB and was not kept") in lines
    for refused in ("dist/etc", "dist/link", "dist/pipe", "leak", "zz/hard"):
        assert f"artifacts: `{refused}` is a link or a special file; only regular files are " \
               "kept" in lines
    assert ("artifacts: `dist/esc\\x1b[2J.whl` has characters that are not printable; it was "
            "not kept") in lines
    assert lines[-1] == "artifacts: `nothing/*.txt` matched no file"
    assert not any("\x1b" in line for line in lines)


def test_only_the_narrowest_directory_is_read_and_a_linked_one_is_not_followed(tmp_path):
    workspace = HostWorkspace([])
    workspace.root = tmp_path
    files({"dist/a.whl": b"a", "src/main.py": b"print()"})(tmp_path)
    found = kept.collect(workspace, Artifacts(("dist/*.whl", "dist/b")), 1024,
                         kept.FolderDestination(tmp_path / "out"))
    assert [file.path for file in found.kept] == ["dist/a.whl"]
    assert found.unmatched == ["dist/b"]
    assert workspace.archived == ["/workspace/dist"]

    (tmp_path / "reports").symlink_to("/etc", target_is_directory=True)
    found = kept.collect(workspace, Artifacts(("reports/*",)), 1024,
                         kept.FolderDestination(tmp_path / "out"))
    assert (found.kept, found.unmatched) == ([], ["reports/*"])
    assert not (tmp_path / "out" / "reports").exists()


def test_a_local_folder_is_never_written_through_a_link(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "dist").symlink_to(elsewhere, target_is_directory=True)
    (out / "a.txt").symlink_to(elsewhere / "a.txt")
    with pytest.raises(OSError, match="leads out of"):
        kept.FolderDestination(out).add("dist/sub/app.whl", 1, io.BytesIO(b"x"))
    with pytest.raises(OSError):  # the link itself is refused, not followed
        kept.FolderDestination(out).add("a.txt", 1, io.BytesIO(b"x"))
    assert list(elsewhere.iterdir()) == []


def test_reading_stops_at_what_a_job_may_make_the_runner_read(tmp_path, monkeypatch):
    monkeypatch.setattr(kept, "MIN_SCANNED_BYTES", 64 * 1024)

    class Endless(HostWorkspace):
        """A workspace holding a small file, then a sparse file of a terabyte."""

        def stream_archive(self, path: str) -> Iterator[bytes]:
            small, huge = tarfile.TarInfo("workspace/a.txt"), tarfile.TarInfo("workspace/d.img")
            small.size, huge.size = 3, 1024 ** 4
            yield small.tobuf() + b"abc".ljust(512, b"\0") + huge.tobuf()
            while True:  # the terabyte of zeros of the sparse file
                yield bytes(64 * 1024)

    found = kept.collect(Endless([]), Artifacts(("*.txt", "b.txt")), 1024,
                         kept.FolderDestination(tmp_path))
    assert [file.path for file in found.kept] == ["a.txt"]
    assert found.cut_at is not None and found.cut_at < 4 * 1024 ** 2
    assert kept.report(found, 1024)[-1].startswith("artifacts: stopped reading the workspace "
                                                   "after ")


def spec_for(job_id: int, attempt: int, git_repo, sha: str) -> JobSpec:
    return JobSpec(job_id=job_id, attempt=attempt, build_id=1, repo="octo/project",
                   clone_url=str(git_repo.path), sha=sha, ref="refs/heads/main", event="push",
                   default_image=IMAGE)


def run_with(redis_client, redis_url, tmp_path, git_repo, spec: JobSpec,
             steps: list[Step], canceled_by: str | None = None) -> str:
    """Run one job with the runner's own loop and :class:`HostWorkspace`; its status.
    A step whose exit code is None was killed, by ``canceled_by`` when given."""
    settings = RunnerSettings(redis_url=redis_url, work_dir=tmp_path / "runner",
                              ca_bundle=None, name="test-runner")
    publisher = Publisher(redis_client, spec)
    destination = kept.RedisDestination(redis_client, spec.job_id, spec.attempt)
    run = JobRun(spec, settings, publisher, HostWorkspace(steps), kept_files=destination)
    run.canceled_by = canceled_by
    status = run.run()
    assert publisher.wait_sent()
    return status


def events_of(redis_client, job_id: int) -> list[Event]:
    return [event for event in (Event.from_json(fields[b"e"]) for _id, fields in
                                redis_client.xrange(keys.EVENTS_STREAM))
            if event.job_id == job_id]


def pipeline(when: str, exit_code: str) -> str:
    return (f"artifacts: {{paths: [out/], when: {when}}}\n"
            f"steps:\n  - run: make report\n  - run: exit {exit_code}\n")


@pytest.mark.parametrize(("when", "code", "canceled_by", "status", "expected"), [
    (ON_SUCCESS, 0, None, "passed", True),
    (ON_SUCCESS, 1, None, "failed", False),
    (ALWAYS, 1, None, "failed", True),
    (ALWAYS, None, None, "errored", True),  # its container stopped, and is still there
    (ALWAYS, None, "alice", "canceled", False),
])
def test_a_failing_job_keeps_its_files_only_when_asked_always(
        redis_client, redis_url, tmp_path, git_repo, when, code, canceled_by, status, expected):
    sha = git_repo.commit({".slipway.yml": pipeline(when, str(code))})
    spec = spec_for(41, 1, git_repo, sha)
    steps = [(0, files({"out/report.txt": b"report"})), (code, files())]
    assert run_with(redis_client, redis_url, tmp_path, git_repo, spec, steps,
                    canceled_by) == status
    types = [event.type for event in events_of(redis_client, 41)]
    assert types[-1] == EventType.JOB_FINISHED
    assert (EventType.JOB_ARTIFACTS in types) is expected
    if expected:
        assert types[-2] == EventType.JOB_ARTIFACTS  # before the job's end, in order
        assert redis_client.llen(keys.artifact_chunks(41, 1)) == 1
    else:
        assert not redis_client.exists(keys.artifact_chunks(41, 1))


# From the runner to the store, and out through the web ---------------------------------


def runner_job(client, session, redis_client, redis_url, tmp_path, git_repo, steps,
               yaml: str = "artifacts: [dist/*, reports/]\nsteps: [make]\n") -> Job:
    """A pushed build's job, run by the runner's loop; the events are left for a recorder."""
    sha = git_repo.commit({".slipway.yml": yaml})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    job = session.scalars(select(Job).order_by(Job.id.desc())).first()
    run_with(redis_client, redis_url, tmp_path, git_repo,
             spec_for(job.id, job.attempt, git_repo, sha), steps)
    return job


def fetched(client, url: str, headers: dict[str, str] | None = None):
    """The answer to ``GET url``, read whole and closed (as a server closes what it sent)."""
    with client.get(url, headers=headers or {}) as answer:
        answer.get_data()
        return answer


def api(job: Job, rest: str = "") -> str:
    return f"/api/repos/octo/project/builds/1/jobs/{job.number}/artifacts{rest}"


def test_the_recorder_stores_what_the_runner_kept_and_the_api_serves_it(
        client, session, resources, redis_client, redis_url, tmp_path, git_repo, registered):
    job = runner_job(client, session, redis_client, redis_url, tmp_path, git_repo,
                     [(0, files({"dist/app.whl": WHEEL, "reports/a.xml": REPORT}))])
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    recorder.drain()
    session.rollback()
    assert session.get(Job, job.id).status == "passed"
    rows = store.job_artifacts(session, job.id, 1)
    assert [(row.path, row.size, row.sha256) for row in rows] == [
        ("dist/app.whl", len(WHEEL), sha(WHEEL)), ("reports/a.xml", len(REPORT), sha(REPORT))]
    assert not redis_client.exists(keys.artifact_chunks(job.id, 1))  # the chunks went
    assert "artifacts: kept 2 files" in log_of(resources, job)

    listed_at = client.get("/api/repos/octo/project/builds/1").get_json()["jobs"][0][
        "artifacts_url"]
    assert listed_at == f"http://ci.test{api(job)}"
    listing = client.get(api(job)).get_json()
    assert listing["total_size"] == len(WHEEL) + len(REPORT)
    assert listing["artifacts"][0] == {
        "path": "dist/app.whl", "size": len(WHEEL), "sha256": sha(WHEEL),
        "url": "http://ci.test/api/repos/octo/project/builds/1/jobs/1/artifacts/dist/app.whl"}
    wheel = fetched(client, api(job, "/dist/app.whl"))
    assert (wheel.status_code, wheel.data) == (200, WHEEL)
    assert wheel.mimetype == "application/octet-stream"
    assert wheel.headers["Content-Disposition"] == "attachment; filename=app.whl"
    assert wheel.headers["X-Content-Type-Options"] == "nosniff"
    assert wheel.headers["ETag"] == f'"{sha(WHEEL)}"'
    assert fetched(client, api(job, "/dist/app.whl"),
                   {"If-None-Match": f'"{sha(WHEEL)}"'}).status_code == 304
    part = fetched(client, api(job, "/dist/app.whl"), {"Range": "bytes=4-9"})
    assert (part.status_code, part.data) == (206, WHEEL[4:10])
    page = fetched(client, "/octo/project/builds/1/jobs/1/artifacts/reports/a.xml")
    assert (page.status_code, page.data) == (200, REPORT)

    zipped = fetched(client, api(job, ".zip"))
    assert zipped.headers["Content-Disposition"] == (
        "attachment; filename=octo-project-1-1-artifacts.zip")
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == {
            "dist/app.whl": WHEEL, "reports/a.xml": REPORT}

    build_page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert 'href="/octo/project/builds/1/jobs/1/artifacts/dist/app.whl"' in build_page
    assert "Download all (zip)" in build_page

    # The same event again (its recorder died before acknowledging it): nothing doubles.
    (artifacts_event,) = [(entry, fields) for entry, fields in
                          redis_client.xrange(keys.EVENTS_STREAM)
                          if Event.from_json(fields[b"e"]).type == EventType.JOB_ARTIFACTS]
    redis_client.xadd(keys.EVENTS_STREAM, artifacts_event[1])
    assert recorder.drain() == 1
    session.rollback()
    assert [row.id for row in store.job_artifacts(session, job.id, 1)] == [row.id for row in rows]

    listed = CliRunner().invoke(main, ["artifacts", "octo/project", "1"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        f"job 1\t{len(WHEEL)}\t{sha(WHEEL)}\tdist/app.whl",
        f"job 1\t{len(REPORT)}\t{sha(REPORT)}\treports/a.xml"]
    copied = CliRunner().invoke(main, ["artifacts", "octo/project", "1", "--into",
                                       str(tmp_path / "out")])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "out" / "1" / "dist" / "app.whl").read_bytes() == WHEEL
    missing = CliRunner().invoke(main, ["artifacts", "octo/project", "1", "--job", "2"])
    assert missing.exit_code == 1
    assert "build #1 of octo/project has no job 2; it has 1" in missing.output


def test_a_private_repository_keeps_its_files_from_strangers(
        client, session, resources, redis_client, redis_url, tmp_path, git_repo, registered):
    job = runner_job(client, session, redis_client, redis_url, tmp_path, git_repo,
                     [(0, files({"dist/app.whl": WHEEL}))])
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    session.rollback()
    store.update_repo(session, registered, private=True)
    reader = token_headers(session, add_user(session, "reader", grants={registered: "read"}))
    for url in (api(job), api(job, "/dist/app.whl"), api(job, ".zip"),
                "/octo/project/builds/1/jobs/1/artifacts/dist/app.whl",
                "/octo/project/builds/1/jobs/1/artifacts.zip"):
        assert client.get(url).status_code == 404, url
        assert fetched(client, url, reader).status_code == 200, url
    stranger = token_headers(session, add_user(session, "stranger"))
    assert client.get(api(job, "/dist/app.whl"), headers=stranger).status_code == 404


def test_bad_names_and_missing_files_get_clear_answers(
        client, session, resources, redis_client, redis_url, tmp_path, git_repo, registered):
    job = runner_job(client, session, redis_client, redis_url, tmp_path, git_repo,
                     [(0, files({"dist/app.whl": WHEEL}))])
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    for path in ("/dist/nothing", "/dist/../dist/app.whl", "/%1b[2J", "/.", "/dist/app.whl/"):
        answer = client.get(api(job, path))
        assert answer.status_code == 404, path
        assert "kept no file" in answer.get_json()["error"]["message"]
        assert "\x1b" not in answer.get_json()["error"]["message"]
    assert client.get("/api/repos/octo/project/builds/1/jobs/9/artifacts").status_code == 404
    os.unlink(resources.settings.artifact_dir / str(job.id) / "1" / "dist" / "app.whl")
    gone = client.get(api(job, "/dist/app.whl"))
    assert gone.status_code == 410
    assert gone.get_json()["error"]["message"].endswith("is no longer stored")


def test_a_job_that_kept_nothing_lists_nothing(client, session, registered):
    assert post_hook(client, push_payload("octo/project", "a" * 40)).status_code == 202
    job = session.scalars(select(Job)).one()
    assert client.get(api(job)).get_json()["artifacts"] == []
    assert "kept no files" in client.get(api(job, ".zip")).get_json()["error"]["message"]
    assert 'id="job-1-artifacts" hidden' in client.get("/octo/project/builds/1").get_data(
        as_text=True)


# The recorder refuses what a runner must not send ----------------------------------------


def chunks_of(redis_client, key: str, members: list[tuple[tarfile.TarInfo, bytes]]) -> int:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    data = buffer.getvalue()
    for start in range(0, len(data), 700):
        redis_client.rpush(key, data[start:start + 700])
    return -(-len(data) // 700)


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info, data


def started_job(client, session, redis_client) -> tuple[Job, Publisher]:
    assert post_hook(client, push_payload("octo/project", "b" * 40)).status_code == 202
    job = session.scalars(select(Job)).one()
    spec = JobSpec(job_id=job.id, attempt=1, build_id=job.build_id, repo="octo/project",
                   clone_url="unused", sha="b" * 40, ref="refs/heads/main", event="push")
    publisher = Publisher(redis_client, spec)
    publisher.event(EventType.JOB_STARTED, runner="test-runner")
    return job, publisher


def test_the_recorder_keeps_only_members_the_manifest_vouches_for(
        client, session, resources, redis_client, registered, tmp_path, caplog):
    job, publisher = started_job(client, session, redis_client)
    key = keys.artifact_chunks(job.id, 1)
    count = chunks_of(redis_client, key, [
        member("../../evil.txt", b"evil"), member("ok.txt", b"fine"),
        member("dist/link", kind=tarfile.SYMTYPE), member("bad.txt", b"tampered"),
        member("ok.txt", b"fine again")])
    manifest = [{"path": "ok.txt", "size": 4, "sha256": sha(b"fine")},
                {"path": "dist/link", "size": 0, "sha256": sha(b"")},
                {"path": "bad.txt", "size": 8, "sha256": sha(b"original")}]
    publisher.event(EventType.JOB_ARTIFACTS, key=key, chunks=count, files=manifest)
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    with caplog.at_level(logging.WARNING, logger="ci.artifacts.intake"):
        recorder.drain()
    session.rollback()
    (row,) = store.job_artifacts(session, job.id, 1)
    assert (row.path, row.size, row.sha256) == ("ok.txt", 4, sha(b"fine"))
    # Delivered again while the job runs: applied once, the chunks removed once.
    (_id, fields), = redis_client.xrevrange(keys.EVENTS_STREAM, count=1)
    redis_client.xadd(keys.EVENTS_STREAM, fields)
    recorder.drain()
    publisher.finished("passed", None)
    assert publisher.wait_sent()
    recorder.drain()
    session.rollback()
    assert [found.id for found in store.job_artifacts(session, job.id, 1)] == [row.id]
    assert not redis_client.exists(key)
    folder = resources.settings.artifact_dir
    assert (folder / str(job.id) / "1" / "ok.txt").read_bytes() == b"fine"
    assert not list(tmp_path.rglob("evil.txt"))
    warned = caplog.text
    assert "refused `../../evil.txt`" in warned and "refused `dist/link`" in warned
    assert "refused `bad.txt`: its bytes do not match" in warned
    assert session.get(Job, job.id).status == "passed"


def test_an_expired_key_records_nothing_and_a_bad_manifest_is_set_aside(
        client, session, resources, redis_client, registered, caplog):
    job, publisher = started_job(client, session, redis_client)
    key = keys.artifact_chunks(job.id, 1)
    good = [{"path": "a.txt", "size": 1, "sha256": sha(b"a")}]
    publisher.event(EventType.JOB_ARTIFACTS, key=key, chunks=1, files=good)  # no chunks sent
    publisher.event(EventType.JOB_ARTIFACTS, key=key, chunks=1,
                    files=[{"path": "../a.txt", "size": 1, "sha256": sha(b"a")}])
    publisher.finished("passed", None)
    with caplog.at_level(logging.WARNING):
        Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    session.rollback()
    assert store.job_artifacts(session, job.id, 1) == []
    assert "are no longer in Redis" in caplog.text
    (dead,) = redis_client.xrange(keys.EVENTS_DEAD_STREAM)
    assert b"`../a.txt` has an empty, `.` or `..` component" in dead[1][b"error"]
    assert session.get(Job, job.id).status == "passed"  # the job's end was applied after it


def test_the_live_build_page_lists_the_files_once_the_build_ends(
        server, page, phone, screenshots, client, session, resources, redis_client,
        registered):
    job, publisher = started_job(client, session, redis_client)
    publisher.event(EventType.STEPS_PLANNED, steps=["package"], image=IMAGE)
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    recorder.drain()
    page.goto(f"{server}/octo/project/builds/1")
    assert page.locator("#job-1-artifacts").is_hidden()
    key = keys.artifact_chunks(job.id, 1)
    made = {"dist/app-1.0-py3-none-any.whl": WHEEL, "reports/unit/junit.xml": REPORT}
    count = chunks_of(redis_client, key, [member(path, data) for path, data in made.items()])
    publisher.step_started(0, "package")
    publisher.output(0, "Successfully built app-1.0-py3-none-any.whl\n")
    publisher.end_output(0)
    publisher.event(EventType.STEP_FINISHED, step=0, status="passed", exit_code=0)
    publisher.info("artifacts: kept 2 files (2.4 KiB)")
    publisher.event(EventType.JOB_ARTIFACTS, key=key, chunks=count, files=[
        {"path": path, "size": len(data), "sha256": sha(data)} for path, data in made.items()])
    publisher.finished("passed", None)
    assert publisher.wait_sent()
    recorder.drain()

    box = page.locator("#job-1-artifacts")
    box.locator("text=Download all (zip)").wait_for()  # no reload: the live page put it in
    assert box.locator("h3").inner_text() == "Artifacts 2 files, 2.4 KiB"
    with page.expect_download() as download:
        box.locator("a", has_text="junit.xml").click()
    assert download.value.suggested_filename == "junit.xml"
    assert Path(download.value.path()).read_bytes() == REPORT
    shot(page, screenshots, "artifacts")
    phone.goto(f"{server}/octo/project/builds/1")
    assert phone.locator("#job-1-artifacts a[download]").count() == 3
    assert horizontal_overflow(phone) == 0


# The store -----------------------------------------------------------------------------


def test_the_store_refuses_every_path_that_would_leave_its_folder(tmp_path):
    files_ = LocalArtifactStore(tmp_path / "artifacts")
    for path in ("../x", "/etc/x", "a/../../x", "a/./b", "", "a\nb", "dir/.slipway-partial-1"):
        with pytest.raises(ArtifactError):
            files_.put(1, 1, path, io.BytesIO(b"x"))
    assert files_.put(1, 1, "dir/ok.txt", io.BytesIO(b"hello")) == 5
    (tmp_path / "outside").mkdir()
    (tmp_path / "artifacts" / "1" / "1" / "linked").symlink_to(tmp_path / "outside")
    with pytest.raises(ArtifactError, match="leads out of its job's folder"):
        files_.put(1, 1, "linked/x.txt", io.BytesIO(b"x"))
    with pytest.raises(ArtifactError, match="in the way"):
        files_.put(1, 1, "dir/ok.txt/below", io.BytesIO(b"x"))
    assert list((tmp_path / "outside").iterdir()) == []
    with files_.open(1, 1, "dir/ok.txt") as handle:
        assert handle.read() == b"hello"
    with pytest.raises(FileNotFoundError):
        files_.open(1, 2, "dir/ok.txt")
    assert [path.name for path in (tmp_path / "artifacts" / "1" / "1" / "dir").iterdir()] == [
        "ok.txt"]  # no partial file left behind by the refusals


def test_removing_a_jobs_artifacts_frees_files_and_rows(
        client, session, resources, redis_client, redis_url, tmp_path, git_repo, registered):
    job = runner_job(client, session, redis_client, redis_url, tmp_path, git_repo,
                     [(0, files({"dist/app.whl": WHEEL, "reports/a.xml": REPORT}))])
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    session.rollback()
    freed = remove_job_artifacts(session, resources.settings, [job.id])
    session.commit()
    assert freed == len(WHEEL) + len(REPORT)
    assert store.job_artifacts(session, job.id, 1) == []
    assert not (resources.settings.artifact_dir / str(job.id)).exists()
    assert remove_job_artifacts(session, resources.settings, [job.id, 999]) == 0


# With Docker ---------------------------------------------------------------------------


HOSTILE_BUILD = f"""\
image: {IMAGE}
artifacts: [dist/*, "reports/*.xml", "le*", "*.bin"]
steps:
  - name: make
    run: |
      mkdir -p dist reports
      printf 'wheel' > dist/app.whl
      printf '<testsuite/>' > reports/a.xml
      ln -s /etc/passwd leak
      ln -s /etc/hostname dist/link
      head -c 1500000 /dev/zero > big.bin
"""


@pytest.mark.docker
def test_a_real_build_keeps_its_files_and_no_link_target(
        client, session, resources, git_repo, registered, run_queue, docker_client,
        monkeypatch):
    monkeypatch.setenv("SLIPWAY_ARTIFACT_LIMIT", "1m")
    sha = git_repo.commit({".slipway.yml": HOSTILE_BUILD})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    build = session.scalars(select(Build)).one()
    job = build.jobs[0]
    assert build.status == "passed", log_of(resources, job)
    assert [(row.path, row.size) for row in store.job_artifacts(session, job.id, 1)] == [
        ("dist/app.whl", 5), ("reports/a.xml", 12)]
    text = log_of(resources, job)
    assert "artifacts: kept 2 files (17 bytes): dist/app.whl (5 bytes), reports/a.xml " \
           "(12 bytes)" in text
    assert "big.bin (1.4 MiB) is over the job's artifact limit of 1 MiB and was not kept" in text
    assert "`leak` is a link or a special file" in text
    assert "`dist/link` is a link or a special file" in text
    assert fetched(client, api(job, "/dist/app.whl")).data == b"wheel"
    with zipfile.ZipFile(io.BytesIO(fetched(client, api(job, ".zip")).data)) as archive:
        assert sorted(archive.namelist()) == ["dist/app.whl", "reports/a.xml"]
    stored = resources.settings.artifact_dir
    assert not any(b"root:" in path.read_bytes() for path in stored.rglob("*") if path.is_file())


@pytest.mark.docker
def test_a_failing_build_keeps_its_reports_when_asked_always(
        client, session, resources, git_repo, registered, run_queue, docker_client):
    sha = git_repo.commit({".slipway.yml": f"""\
image: {IMAGE}
artifacts: {{paths: ["reports/**/*.xml"], when: always}}
steps:
  - run: mkdir -p reports/unit && echo '<failure/>' > reports/unit/junit.xml && exit 3
"""})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    job = session.scalars(select(Build)).one().jobs[0]
    assert job.status == "failed"
    assert fetched(client, api(job, "/reports/unit/junit.xml")).data == b"<failure/>\n"
