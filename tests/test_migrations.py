"""Migrations on SQLite and PostgreSQL: from an empty database and from every earlier
revision, an upgrade ends at exactly the schema a new installation gets, and that
schema is the models' own."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from ci.store import db
from ci.store.models import Base


def revisions() -> list[str]:
    """Every revision, oldest first: whatever revisions exist when the tests run."""
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    return [script.revision
            for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]


REVISIONS = revisions()


def schema(url: str) -> dict[str, dict]:
    """Tables with their columns, keys, constraints and indexes, as the database reports."""
    engine = db.make_engine(url)
    inspector = inspect(engine)
    tables = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [(column["name"], str(column["type"]), column["nullable"],
                         column.get("default")) for column in inspector.get_columns(table)],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (tuple(key["constrained_columns"]), key["referred_table"],
                 tuple(key["referred_columns"]), key["options"].get("ondelete"))
                for key in inspector.get_foreign_keys(table)),
            "unique": sorted(tuple(unique["column_names"])
                             for unique in inspector.get_unique_constraints(table)),
            "indexes": sorted((index["name"], tuple(index["column_names"]), index["unique"])
                              for index in inspector.get_indexes(table)),
        }
    engine.dispose()
    return tables


def upgraded(url: str, *revisions: str) -> str:
    engine = db.make_engine(url)
    for revision in revisions:
        db.upgrade(engine, revision)
    engine.dispose()
    return url


def downgraded(url: str, revision: str) -> str:
    engine = db.make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.execution_options(**{db.WRITES: True}).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    engine.dispose()
    return url


def test_there_are_revisions_to_test():
    assert REVISIONS[0] == "0001" and len(REVISIONS) >= 9
    assert "0009" in REVISIONS  # every earlier attempt of a job
    assert "0010" in REVISIONS  # the pull requests view's index
    assert "0011" in REVISIONS  # schedules
    assert "0012" in REVISIONS  # notifications


def test_revision_0009_adds_the_attempts_table_and_takes_it_away_again(new_database):
    url = upgraded(new_database(migrated=False), "0008")
    before = schema(url)

    after = schema(upgraded(url, "0009"))
    assert set(after) - set(before) == {"job_attempts"}
    assert [column[0] for column in after["job_attempts"]["columns"]] == [
        "id", "job_id", "number", "status", "error", "runner", "image", "started_at",
        "finished_at", "steps"]
    assert after["job_attempts"]["foreign keys"] == [(("job_id",), "jobs", ("id",), "CASCADE")]

    assert schema(downgraded(url, "0008")) == before


def test_revision_0011_adds_the_schedules_table_and_takes_it_away_again(new_database):
    url = upgraded(new_database(migrated=False), "0010")
    before = schema(url)

    after = schema(upgraded(url, "0011"))
    assert set(after) - set(before) == {"schedules"}
    assert [column[0] for column in after["schedules"]["columns"]] == [
        "id", "repo_id", "branch", "expression", "time_zone", "enabled", "created_by",
        "created_at", "next_due", "last_slot", "last_build_id", "error"]
    assert after["schedules"]["foreign keys"] == [
        (("last_build_id",), "builds", ("id",), "SET NULL"),
        (("repo_id",), "repos", ("id",), "CASCADE")]
    assert [index[0] for index in after["schedules"]["indexes"]] == [
        "ix_schedules_next_due", "ix_schedules_repo"]

    assert schema(downgraded(url, "0010")) == before


def test_revision_0012_adds_the_notification_tables_and_takes_them_away_again(new_database):
    url = upgraded(new_database(migrated=False), "0011")
    before = schema(url)

    after = schema(upgraded(url, "0012"))
    assert set(after) - set(before) == {"notification_emails", "notification_hooks"}
    assert [column[0] for column in after["notification_emails"]["columns"]] == [
        "id", "repo_id", "address", "created_at"]
    assert after["notification_emails"]["unique"] == [("repo_id", "address")]
    assert [column[0] for column in after["notification_hooks"]["columns"]] == [
        "id", "repo_id", "url", "secret", "events", "created_at"]
    for table in ("notification_emails", "notification_hooks"):
        assert after[table]["foreign keys"] == [(("repo_id",), "repos", ("id",), "CASCADE")]
    assert [index[0] for index in after["notification_hooks"]["indexes"]] == [
        "ix_notification_hooks_repo"]

    assert schema(downgraded(url, "0011")) == before


@pytest.mark.parametrize("revision", REVISIONS)
def test_upgrading_from_each_revision_ends_at_the_schema_of_a_new_installation(
        new_database, revision):
    fresh = schema(upgraded(new_database(migrated=False), "head"))

    assert schema(upgraded(new_database(migrated=False), revision, "head")) == fresh
    assert {"repos", "builds", "jobs", "steps", "users", "alembic_version"} <= set(fresh)


def test_a_new_installation_has_the_models_schema(new_database):
    engine = db.make_engine(upgraded(new_database(migrated=False), "head"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
        revision = context.get_current_revision()
    engine.dispose()

    assert differences == []
    assert revision == REVISIONS[-1]
