"""Retention: old builds lose their logs (every attempt's) and artifacts, then may be deleted;
the newest builds of each branch, pull request and of the tags stay whole, unfinished builds
are never touched, and a pass stopped half-way or run twice at once does each thing once.
Real log files and artifact files, on SQLite and PostgreSQL; ``slipway prune`` as a
subprocess; the pages of a pruned job in Chromium."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ci import store
from ci.artifacts import artifact_store
from ci.builds import retention, service
from ci.cli.main import main
from ci.forges.types import Trigger
from ci.logs import storage
from ci.pipeline import keys
from ci.pipeline.logformat import OUT, LogEntry
from ci.pipeline.status import Status
from ci.settings import SettingsError, load_settings
from ci.store import intake
from ci.store.models import Build, Job, Repo, Schedule, utcnow
from tests.browser import shot
from tests.conftest import SLIPWAY
from tests.reported_jobs import report_job

KEEP_TWO = retention.Policy(keep_days=90, keep_build_days=0, keep_builds=2)
ARTIFACT = b"wheel bytes " * 100


@dataclass
class Made:
    """A build the test made, with the files it wrote for it."""

    build_id: int
    number: int
    job_id: int
    files: list[Path]
    artifact_bytes: int = 0

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path in self.files) + self.artifact_bytes


@pytest.fixture
def builds(session, redis_client, resources, registered):
    """Makes builds of ``registered`` that finished ``days`` ago, with real log files (and
    the logs of earlier ``attempts``, and an artifact when asked)."""
    settings = resources.settings

    def make(branch: str | None = "main", *, pr: int | None = None, tag: str | None = None,
             days: float = 100, status: Status = Status.PASSED, attempts: int = 1,
             artifact: bool = False) -> Made:
        event = "pull_request" if pr else "tag" if tag else "push"
        ref = f"refs/pull/{pr}/head" if pr else f"refs/tags/{tag}" if tag else \
            f"refs/heads/{branch}"
        made = intake.create_build(session, registered, Trigger(
            repo=registered.full_name, event=event, ref=ref, sha="a" * 40,
            branch=None if tag else branch, tag=tag, pr_number=pr))
        build = session.get(Build, made.id)
        job = build.jobs[0]
        at = utcnow() - timedelta(days=days)
        build.created_at = job.created_at = at
        files = []
        if status.finished:
            for attempt in range(1, attempts):
                write_log(redis_client, job.id, f"attempt {attempt} failed\n")
                files.append(storage.keep_attempt_log(redis_client, settings.log_dir, job.id,
                                                      attempt, archived=False))
            write_log(redis_client, job.id, f"build #{build.number} passed\n")
            files.append(storage.archive(redis_client, settings.log_dir, job.id))
            job.log_archived, job.runner, job.attempt = True, "runner-1", attempts
            job.finished_at = build.finished_at = at + timedelta(minutes=1)
        job.status = build.status = status
        if status != Status.QUEUED:
            job.started_at = build.started_at = at
        kept = 0
        if artifact:
            kept = artifact_store(settings).put(job.id, attempts, "dist/app.whl",
                                                io.BytesIO(ARTIFACT))
            store.replace_artifacts(session, job.id, attempts, [store.KeptFile(
                "dist/app.whl", kept, hashlib.sha256(ARTIFACT).hexdigest())])
        session.commit()
        return Made(build.id, build.number, job.id, files, kept)

    return make


def write_log(redis_client, job_id: int, text: str) -> None:
    """A log in the job's live stream, as a runner writes one (the archive copies it)."""
    stream = keys.log_stream(job_id)
    redis_client.delete(stream)
    redis_client.xadd(stream, LogEntry(id="", kind=OUT, step=0, data=text).to_fields())


def prune(resources, policy=KEEP_TWO, dry_run=False, now=None) -> retention.Report:
    return retention.prune(resources.write_sessions, resources.settings, policy,
                           now or utcnow(), dry_run=dry_run)


def pruned_ids(session) -> set[int]:
    session.rollback()
    return set(session.scalars(select(Job.build_id).where(Job.pruned_at.is_not(None))))


def files_exist(made: Made) -> bool:
    return all(path.exists() for path in made.files)


def test_old_logs_and_artifacts_go_but_each_groups_newest_builds_stay(builds, session,
                                                                     resources):
    main = [builds("main", attempts=2, artifact=True), builds("main")]
    pulls = [builds("main", pr=7, artifact=True), builds("main", pr=7)]
    main += [builds("main"), builds("main")]
    pulls.append(builds("main", pr=7))
    tags = [builds(tag=f"v{number}") for number in (1, 2, 3)]
    feature = [builds("feature"), builds("feature")]
    docs = [builds("docs"), builds("docs", days=10), builds("docs", days=10),
            builds("docs", days=10)]
    gone = [*main[:2], pulls[0], tags[0], docs[0]]
    artifact_folder = resources.settings.artifact_dir / str(main[0].job_id)
    assert artifact_folder.exists()
    size = sum(made.size for made in gone)

    report = prune(resources)

    assert sorted(item.number for item in report.pruned) == sorted(m.number for m in gone)
    assert report.deleted == [] and report.bytes_freed == size
    assert pruned_ids(session) == {made.build_id for made in gone}
    assert not any(path.exists() for made in gone for path in made.files)
    kept = [*main[2:], *pulls[1:], *tags[1:], *feature, *docs[1:]]
    assert all(files_exist(made) for made in kept)
    assert not artifact_folder.exists()
    assert store.artifact_bytes(session, [pulls[0].job_id, main[0].job_id]) == 0
    assert session.scalar(select(Build.status).where(Build.id == main[0].build_id)) == "passed"
    assert report.summary() == (f"pruned the logs and artifacts of 5 builds "
                                f"({retention.human_bytes(size)}), deleted 0 builds")

    again = prune(resources)
    assert (again.pruned, again.deleted, again.bytes_freed) == ([], [], 0)


def test_unfinished_builds_and_the_newest_of_a_branch_are_never_pruned(builds, session,
                                                                       resources):
    running = builds("main", days=200, status=Status.RUNNING)
    queued = builds("main", days=200, status=Status.QUEUED)
    older = builds("main", days=150)
    newest = builds("main", days=120)
    alone = builds("lonely", days=300)

    report = prune(resources, retention.Policy(keep_days=90, keep_build_days=100,
                                               keep_builds=1))

    assert [item.number for item in report.pruned] == [older.number]
    assert [item.number for item in report.deleted] == [older.number]
    session.rollback()
    left = set(session.scalars(select(Build.id)))
    assert left == {running.build_id, queued.build_id, newest.build_id, alone.build_id}
    assert files_exist(newest) and files_exist(alone)
    assert pruned_ids(session) == set()


def test_a_dry_run_changes_nothing_and_names_what_would_go(builds, session, resources):
    made = [builds("main", artifact=True, attempts=3), builds("main"), builds("main"),
            builds("main", days=400)]
    policy = retention.Policy(keep_days=30, keep_build_days=365, keep_builds=1)

    dry = prune(resources, policy, dry_run=True)

    assert [item.number for item in dry.pruned] == [m.number for m in made[:3]]
    assert dry.deleted == []  # the newest of main, however old
    assert dry.bytes_freed == sum(m.size for m in made[:3])
    assert dry.summary().startswith("would prune the logs and artifacts of 3 builds (")
    assert all(files_exist(m) for m in made) and pruned_ids(session) == set()
    assert store.artifact_bytes(session, [made[0].job_id]) == len(ARTIFACT)

    done = prune(resources, policy)
    assert (done.pruned, done.bytes_freed) == (dry.pruned, dry.bytes_freed)


def test_old_builds_are_deleted_but_numbers_are_never_given_twice(builds, session, resources,
                                                                  registered):
    made = [builds("main", days=400, artifact=True) for _ in range(3)]
    scheduled = builds("nightly", days=400)
    builds("nightly", days=1)
    size = sum(m.size for m in [*made, scheduled])
    session.add(Schedule(repo_id=registered.id, branch="nightly", expression="@daily",
                         created_by="test", next_due=utcnow(), last_build_id=scheduled.build_id))
    session.commit()
    builds("main", days=1)
    policy = retention.Policy(keep_days=90, keep_build_days=365, keep_builds=1)

    report = prune(resources, policy)

    assert sorted(item.number for item in report.deleted) == [m.number for m in made]
    assert report.bytes_freed == size
    session.rollback()
    numbers = set(session.scalars(select(Build.number)))
    assert numbers.isdisjoint(m.number for m in made) and scheduled.number in numbers
    assert session.scalars(select(Job).where(Job.id == made[0].job_id)).first() is None
    assert not (resources.settings.artifact_dir / str(made[0].job_id)).exists()
    assert session.scalar(select(Repo.last_build_number)
                          .where(Repo.id == registered.id)) == 6
    new = intake.create_build(session, registered, Trigger(
        repo=registered.full_name, event="push", ref="refs/heads/main", sha="b" * 40,
        branch="main"))
    assert new.number == 7


def test_a_pass_stopped_after_removing_files_is_finished_by_the_next(builds, session,
                                                                     resources):
    half = builds("main")
    builds("main")
    # What a pruner killed between removing the files and committing leaves behind.
    storage.remove_logs(resources.settings.log_dir, half.job_id, 1)
    assert not files_exist(half) and pruned_ids(session) == set()

    report = prune(resources, retention.Policy(keep_days=90, keep_build_days=0,
                                               keep_builds=1))

    assert [item.number for item in report.pruned] == [half.number]
    assert report.bytes_freed == 0
    assert pruned_ids(session) == {half.build_id}


def test_two_pruners_at_once_prune_each_build_once(builds, session, resources):
    made = [builds(branch) for branch in ("main", "dev") for _ in range(6)]
    old = [m for m in made if m.number not in (6, 12)]
    size = sum(m.size for m in old)
    start = threading.Barrier(2)
    reports: list[retention.Report] = []

    def pruner() -> None:
        start.wait()
        reports.append(prune(resources, retention.Policy(90, 0, 1)))

    threads = [threading.Thread(target=pruner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(reports) == 2
    numbers = [item.number for report in reports for item in report.pruned]
    assert sorted(numbers) == sorted(m.number for m in old)
    assert sum(report.bytes_freed for report in reports) == size
    assert pruned_ids(session) == {m.build_id for m in old}


def test_recorders_prune_one_at_a_time(builds, session, resources, redis_client):
    old = builds("main")
    builds("main")
    settings = resources.settings
    first = retention.PeriodicPruning(resources.write_sessions, redis_client,
                                      replace(settings, keep_builds=1), "recorder-a")
    second = retention.PeriodicPruning(resources.write_sessions, redis_client, settings,
                                       "recorder-b")

    thread = first.tick()
    assert thread is not None and second.tick() is None
    thread.join(timeout=60)
    assert pruned_ids(session) == {old.build_id}
    assert redis_client.get(keys.PRUNE_LOCK) == b"recorder-a"
    assert 0 < redis_client.ttl(keys.PRUNE_LOCK) <= settings.prune_interval_seconds
    assert first.tick() is None  # not due again before the interval


def test_a_pass_runs_at_a_lower_cpu_priority_than_the_recorder(
        builds, session, resources, redis_client, monkeypatch):
    old = builds("main")
    builds("main")
    niceness = []

    def watched_prune(*args, **kwargs):
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_prune(*args, **kwargs)

    real_prune = retention.prune
    monkeypatch.setattr(retention, "prune", watched_prune)
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pruning = retention.PeriodicPruning(resources.write_sessions, redis_client,
                                        replace(resources.settings, keep_builds=1), "rec")
    pruning.tick().join(timeout=60)
    assert niceness == [min(ours + retention.PRUNING_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours
    assert pruned_ids(session) == {old.build_id}  # and the pass did its work


def test_a_rerun_of_a_pruned_build_keeps_its_new_log(builds, session, resources, redis_client):
    made = builds("main", status=Status.FAILED)
    builds("main")
    prune(resources, retention.Policy(90, 0, 1))
    session.expire_all()
    build = session.get(Build, made.build_id)
    assert build.jobs[0].pruned_at is not None

    assert service.rerun_failed(session, redis_client, resources.settings, build) == 1

    session.expire_all()
    assert session.get(Job, made.job_id).pruned_at is None


def aged(session, job: Job, days: int) -> Build:
    """Move a reported job's build, as if it ran ``days`` ago."""
    build = session.get(Build, job.build_id)
    for row in (build, *build.jobs, *build.jobs[0].steps):
        for column in ("created_at", "started_at", "finished_at"):
            if (value := getattr(row, column, None)) is not None:
                setattr(row, column, value - timedelta(days=days))
    session.commit()
    return build


@pytest.fixture
def pruned_job(client, session, resources, redis_client, registered):
    """Build #1 of octo/project, reported with a real log, pruned 91 days after it ran."""
    job = report_job(client, session, resources, redis_client, {"test": "hello\n"})
    session.commit()  # the next build is seen from a new transaction
    report_job(client, session, resources, redis_client, {"test": "again\n"}, sha="b" * 40)
    build = aged(session, job, 91)
    prune(resources, retention.Policy(90, 0, 1), now=build.finished_at + timedelta(days=91))
    session.expire_all()
    return session.get(Job, job.id)


def test_the_pages_and_the_api_of_a_pruned_job_say_when_its_log_went(client, pruned_job,
                                                                    api_token):
    day = f"{pruned_job.pruned_at:%Y-%m-%d}"
    notice = (f"This log was removed on {day}, 91 days after the build "
              "(logs are kept for 90 days).")
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert notice in page and "raw log" not in page and "hello" not in page
    assert 'id="job-1-removed"' in page
    assert notice not in client.get("/octo/project/builds/2").get_data(as_text=True)

    raw = client.get("/octo/project/builds/1/jobs/1/log.txt")
    assert (raw.status_code, raw.get_data(as_text=True)) == (410, notice + "\n")
    assert raw.mimetype == "text/plain"
    attempt = client.get("/octo/project/builds/1/jobs/1/attempts/1/log.txt")
    assert attempt.status_code == 410
    assert client.get("/octo/project/builds/1/jobs/1/events").status_code == 410

    api = "/api/repos/octo/project/builds/1/jobs/1"
    job = client.get(api, headers=api_token).get_json()
    assert job["pruned_at"].startswith(day)
    kept = client.get("/api/repos/octo/project/builds/2/jobs/1", headers=api_token)
    assert kept.get_json()["pruned_at"] is None
    log = client.get(api + "/log", headers=api_token)
    assert log.status_code == 410
    assert log.get_json()["error"] == {"code": "gone", "message": notice}

    stream = client.get("/octo/project/builds/1/events").get_data(as_text=True)
    assert stream.rstrip().endswith("event: end\ndata: {}")
    assert "event: log" not in stream


@pytest.mark.postgresql_only
def test_the_page_of_a_pruned_job_in_a_browser(server, page, pruned_job, screenshots):
    page.goto(f"{server}/octo/project/builds/1")
    notice = page.locator("#job-1-removed")
    assert notice.is_visible()
    assert notice.inner_text().startswith("This log was removed on ")
    assert page.locator("#job-1-step-0 summary").is_visible()  # the steps and their states
    assert page.locator("#log-tools").is_hidden()  # no log left to search
    shot(page, screenshots, "pruned-log")


def test_slipway_prune_runs_a_pass_and_refuses_bad_options(app, builds, session, resources,
                                                           monkeypatch):
    old = [builds("main"), builds("main", days=400)]
    newest = builds("main", days=300)
    monkeypatch.setenv("SLIPWAY_KEEP_BUILDS", "1")

    def slipway(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SLIPWAY, "prune", *args], capture_output=True, text=True,
                              timeout=120)

    dry = slipway("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would prune the logs and artifacts of octo/project #{old[0].number} (finished " \
        in dry.stdout
    assert dry.stdout.strip().endswith("), would delete 0 builds")
    assert all(files_exist(m) for m in old)

    monkeypatch.setenv("SLIPWAY_KEEP_BUILD_DAYS", "100")
    refused = slipway("--keep-days", "200")
    assert refused.returncode == 2
    assert "--keep-days=200 keeps logs for 200 days" in refused.stderr
    assert all(files_exist(m) for m in old)
    size = retention.human_bytes(sum(m.size for m in old))

    done = slipway("--keep-days", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"pruned the logs and artifacts of 2 builds ({size}), "
                                   "deleted 1 build")
    assert pruned_ids(session) == {old[0].build_id}
    assert files_exist(newest)


@pytest.mark.parametrize(("args", "message"), [
    (["--keep-builds", "0"], "Invalid value for '--keep-builds': 0 is not in the range x>=1"),
    (["--keep-days", "soon"], "Invalid value for '--keep-days': 'soon' is not a valid integer"),
    (["--keep-days", "-1"], "Invalid value for '--keep-days': -1 is not in the range x>=0"),
])
def test_slipway_prune_refuses_options_out_of_range(args, message):
    refused = CliRunner().invoke(main, ["prune", *args])
    assert refused.exit_code == 2 and message in refused.output, refused.output


@pytest.mark.parametrize(("env", "message"), [
    ({"SLIPWAY_KEEP_DAYS": "ninety"}, "SLIPWAY_KEEP_DAYS='ninety' is not a number of days"),
    ({"SLIPWAY_KEEP_BUILDS": "0"}, "SLIPWAY_KEEP_BUILDS='0' must be greater than zero"),
    ({"SLIPWAY_KEEP_BUILD_DAYS": "30"},
     "SLIPWAY_KEEP_BUILD_DAYS=30 deletes builds, and their logs with them, after 30 days, "
     "but SLIPWAY_KEEP_DAYS=90 keeps logs for 90 days; set SLIPWAY_KEEP_BUILD_DAYS to 90 or "
     "more"),
    ({"SLIPWAY_KEEP_DAYS": "0", "SLIPWAY_KEEP_BUILD_DAYS": "30"},
     "SLIPWAY_KEEP_DAYS=0 keeps logs forever; set SLIPWAY_KEEP_BUILD_DAYS to 0"),
])
def test_retention_settings_that_cannot_work_are_refused(env, message):
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    assert message in str(refused.value)


def test_retention_settings_have_defaults_and_zero_keeps_forever():
    settings = load_settings({})
    assert (settings.keep_days, settings.keep_build_days, settings.keep_builds,
            settings.prune_interval_seconds) == (90, 0, 10, 3600)
    kept = load_settings({"SLIPWAY_KEEP_DAYS": "0"})
    assert kept.keep_days == 0
    assert load_settings({"SLIPWAY_KEEP_BUILD_DAYS": "90"}).keep_build_days == 90


def test_the_notice_counts_days_from_the_build():
    build = Build(finished_at=datetime(2026, 8, 4, 12))
    job = Job(pruned_at=datetime(2026, 11, 2, 13), log_archived=True)
    assert retention.removal_notice(job, build, 90) == (
        "This log was removed on 2026-11-02, 90 days after the build "
        "(logs are kept for 90 days).")
    assert retention.removal_notice(job, build, 0) == (
        "This log was removed on 2026-11-02, 90 days after the build.")
    assert retention.removal_notice(Job(pruned_at=None, log_archived=True), build, 90) is None
    never_ran = Job(pruned_at=datetime(2026, 11, 2), log_archived=False)
    assert retention.removal_notice(never_ran, build, 90) is None
