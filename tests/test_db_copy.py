"""``slipway db copy``: a SQLite installation moved to PostgreSQL keeps every row, and
goes on numbering builds (and making ids) where it left off."""

from __future__ import annotations

from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ci import create_app, store
from ci.accounts import repo_secrets
from ci.cli.main import main
from ci.pipeline.status import Status
from ci.store import db
from ci.store.models import Base, Build
from tests.conftest import SECRET, add_user, post_hook, push_payload, token_headers


@pytest.fixture
def make_app(tmp_path, redis_client, redis_url, monkeypatch):
    """An app on the database at a URL; each is closed after the test."""
    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLIPWAY_REDIS_URL", redis_url)
    made = []

    def make(url: str):
        application = create_app({"data_dir": tmp_path / "data", "database_url": url,
                                  "redis_url": redis_url, "base_url": "http://ci.test",
                                  "secret_key": "test"})
        db.upgrade(application.extensions["slipway"].engine)
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions["slipway"].engine.dispose()


@pytest.fixture
def target(postgres):
    url = postgres.create(migrated=False)
    yield url
    postgres.drop(url)


def copy(*args: str, target: str | None = None):
    """``slipway db copy ARGS``; ``target`` as SLIPWAY_DATABASE_URL, as the README has it."""
    return CliRunner().invoke(main, ["db", "copy", *args], catch_exceptions=False,
                              env={"SLIPWAY_DATABASE_URL": target})


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, typed by the models, in primary key order."""
    engine = db.make_engine(url)
    with engine.connect() as connection:
        found = {table.name: [tuple(row) for row in connection.execute(
            select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables}
    engine.dispose()
    return found


def populate(app, git_repo) -> None:
    """Repositories with builds, jobs, steps and secrets; users with tokens and access."""
    resources = app.extensions["slipway"]
    client = app.test_client()
    with resources.write_sessions() as session:
        first = store.add_repo(session, "octo/project", "github", str(git_repo.path), SECRET)
        store.add_repo(session, "octo/other", "github", str(git_repo.path), SECRET)
        repo_secrets.set_secret(session, resources.settings, first, "TOKEN", "s3cret")
        token_headers(session, add_user(session, "dev", grants={first: "write"}))
        add_user(session, "root", admin=True)
    for sha in ("a" * 40, "b" * 40, "c" * 40):
        assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    assert post_hook(client, push_payload("octo/other", "d" * 40)).status_code == 202
    with resources.write_sessions() as session:
        job = store.get_build(session, first, 2).jobs[0]
        at = datetime(2026, 1, 2, 3, 4, 5, 678901)
        store.start_job(session, job, at, "runner-1")
        store.plan_steps(session, job, ["install", "test"], "slipway/python:3.11")
        session.flush()
        store.finish_step(session, job.steps[0], Status.PASSED, 0, at)
        store.finish_job(session, job, Status.FAILED, at, None)
        session.commit()


def test_a_sqlite_installation_copied_to_postgresql_reads_the_same_and_goes_on(
        make_app, git_repo, tmp_path, target):
    source = f"sqlite:///{tmp_path / 'old' / 'slipway.db'}"
    populate(make_app(source), git_repo)

    copied = copy("--from", source, target=target)

    assert copied.exit_code == 0, copied.output
    assert "builds: 4 rows" in copied.output and "steps: 2 rows" in copied.output
    before = rows(source)
    assert rows(target) == before
    assert all(before[table] for table in ("repos", "builds", "jobs", "steps", "secrets",
                                            "users", "api_tokens", "repo_access"))

    app = make_app(target)
    client = app.test_client()
    page = client.get("/octo/project/builds/2")
    assert page.status_code == 200 and "install" in page.get_data(as_text=True)
    answer = post_hook(client, push_payload("octo/project", "e" * 40)).get_json()
    assert answer["build"]["number"] == 4
    assert answer["build"]["id"] == max(row[0] for row in before["builds"]) + 1
    with app.extensions["slipway"].write_sessions() as session:
        assert add_user(session, "new").id == len(before["users"]) + 1
        assert session.scalar(select(Build.status).where(Build.number == 2)) == "failed"


def test_a_target_that_is_not_empty_is_refused_and_left_as_it_was(
        make_app, git_repo, tmp_path, target):
    source = f"sqlite:///{tmp_path / 'old' / 'slipway.db'}"
    populate(make_app(source), git_repo)
    assert copy("--from", source, "--to", target).exit_code == 0
    copied = rows(target)

    again = copy("--from", source, "--to", target)

    assert again.exit_code == 1
    assert "the target is not empty: its table repos has 2 rows" in again.output
    assert rows(target) == copied


def test_a_missing_or_outdated_source_is_refused_naming_what_to_do(tmp_path, target):
    missing = copy("--from", f"sqlite:///{tmp_path / 'none.db'}", "--to", target)
    assert missing.exit_code == 1
    assert f"no SQLite database at '{tmp_path / 'none.db'}'" in missing.output
    assert not (tmp_path / "none.db").exists()

    old = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.make_engine(old)
    db.upgrade(engine, "0006")
    engine.dispose()
    outdated = copy("--from", old, "--to", target)
    assert outdated.exit_code == 1
    assert "the source's schema is at revision 0006" in outdated.output
    assert "run `slipway db upgrade`" in outdated.output

    same = copy("--from", target, "--to", target)
    assert same.exit_code == 1 and "the same database" in same.output

    nowhere = copy("--from", old)
    assert nowhere.exit_code == 2 and "Missing option '--to'" in nowhere.output
