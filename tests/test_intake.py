"""The webhook's bare-cursor SQL (``ci.store.intake``) against a real database:
what it writes reads back through the ORM unchanged, and a failed write leaves no
trace and no lock behind."""

import threading
from datetime import datetime

import pytest
from sqlalchemy import func, select, text

from ci.forges.types import Trigger
from ci.store import intake
from ci.store.db import raw_write
from ci.store.models import Build, Job, Repo, Secret

SHA = "b" * 40


def trigger(delivery: str | None = "d-1") -> Trigger:
    return Trigger(repo="octo/project", event="push", ref="refs/heads/main", sha=SHA,
                   branch="main", message="Fix it", author="octo", delivery=delivery)


def test_a_build_written_raw_reads_back_through_the_orm_as_written(session, registered):
    made = intake.create_build(session, registered, trigger())

    session.expire_all()
    build = session.get(Build, made.id)
    job = session.scalars(select(Job).where(Job.build_id == made.id)).one()
    assert (build.number, build.status, build.event, build.sha) == (1, "queued", "push", SHA)
    assert build.fork is False and build.started_at is None
    assert isinstance(build.created_at, datetime) and build.created_at == made.created_at
    assert (job.id, job.number, job.status, job.attempt) == (made.jobs[0].id, 1, "queued", 1)
    assert job.log_archived is False and job.enqueued_at == build.created_at


def test_the_returned_build_needs_no_session(session, registered):
    made = intake.create_build(session, registered, trigger())
    session.close()

    assert made.repo.full_name == "octo/project"
    assert made.jobs[0].build is made and made.jobs[0].steps == []
    assert made.finished_at is None and made.jobs[0].image is None


def test_numbers_follow_each_other_and_a_repeated_delivery_returns_the_first_build(
        session, registered):
    first = intake.create_build(session, registered, trigger("d-1"))
    second = intake.create_build(session, registered, trigger("d-2"))

    with pytest.raises(intake.DuplicateDelivery) as duplicate:
        intake.create_build(session, registered, trigger("d-1"))

    assert (first.number, second.number) == (1, 2)
    assert duplicate.value.build.id == first.id
    assert session.scalar(select(func.count()).select_from(Build)) == 2


def test_the_repo_and_its_secrets_come_back_typed_like_the_orm_loads_them(
        session, registered, resources):
    from ci.accounts import repo_secrets

    repo_secrets.set_secret(session, resources.settings, registered, "TOKEN", "s3cret")
    session.execute(text("UPDATE repos SET private = :yes, job_cpus = 1.5 WHERE id = :id"),
                    {"yes": True, "id": registered.id})
    session.commit()

    repo = intake.get_repo_with_secrets(session, "octo/project")

    loaded = session.get(Repo, registered.id)
    session.refresh(loaded)
    assert repo.private is True and repo.job_cpus == 1.5
    assert repo.created_at == loaded.created_at
    assert [(s.name, s.value) for s in repo.secrets] == [
        (s.name, s.value) for s in session.scalars(select(Secret))]
    assert intake.get_repo_with_secrets(session, "octo/nothing") is None


def test_a_failed_write_is_rolled_back_and_releases_the_writer_lock(session, registered,
                                                                      resources):
    with pytest.raises(RuntimeError):
        with raw_write(resources.engine) as cursor:
            cursor.execute("UPDATE repos SET last_build_number = 99")
            raise RuntimeError("the webhook failed half way")

    finished = threading.Event()

    def write_again() -> None:
        with raw_write(resources.engine) as cursor:
            cursor.execute("UPDATE repos SET last_build_number = last_build_number + 1")
        finished.set()

    threading.Thread(target=write_again, daemon=True).start()
    assert finished.wait(timeout=10), "the writer lock was not released"
    session.rollback()
    assert session.scalar(select(Repo.last_build_number)) == 1
