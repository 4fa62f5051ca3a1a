"""Schedules: a ``cron`` build of a branch's head at each time of a cron expression, made
once whatever the number of recorders, once after downtime, and from the database's state
after a restart; added, listed, switched and removed from the CLI, the API and the
settings page, each refusing bad input with a clear message and storing nothing.

Times are passed to ``fire_due`` as ``now``: no test waits for the clock."""

from __future__ import annotations

import html
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from rq import Queue

from ci import store
from ci.builds import cron, schedules
from ci.builds.recorder import Recorder
from ci.pipeline import keys
from ci.store import db
from tests.conftest import (IMAGE, add_user, csrf_of, git, log_of, post_hook, push_payload,
                            sign_in, token_headers)

#: A Tuesday noon, UTC, as the database keeps times.
T0 = datetime(2025, 3, 4, 12, 0)
API = "/api/repos/octo/project/schedules"
SETTINGS = "/octo/project/settings"


def add(resources, expression: str = "0 3 * * *", branch: str = "main",
        time_zone: str = "UTC", now: datetime = T0) -> int:
    """Add a schedule to octo/project as of ``now``; its id."""
    with resources.write_sessions() as db_session:
        repo = store.get_repo(db_session, "octo/project")
        return schedules.add(db_session, repo, branch, expression, time_zone, "dev", now).id


def fire(resources, redis_client, now: datetime, sessions=None) -> list[schedules.Fired]:
    """One recorder's look at the schedules at ``now``."""
    with (sessions or resources.write_sessions)() as db_session:
        return schedules.fire_due(db_session, redis_client, resources.settings, now)


def fresh_schedule(session, schedule_id: int):
    """The schedule as committed now."""
    session.rollback()
    session.expire_all()
    return store.get_schedule(session, store.get_repo(session, "octo/project"), schedule_id)


def builds(session) -> list:
    """octo/project's builds as committed now, oldest first."""
    session.rollback()
    session.expire_all()
    found, _total = store.search_builds(session, store.get_repo(session, "octo/project"), 1, 100)
    return found[::-1]


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def post_form(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf_of(client), **fields})


# The times --------------------------------------------------------------------------------

def test_times_count_in_the_schedules_time_zone_across_daylight_saving_time():
    # Paris goes from UTC+1 to UTC+2 on 30 March 2025: 03:00 there moves from 02:00 UTC
    # to 01:00 UTC.
    assert cron.next_times("0 3 * * *", "Europe/Paris", datetime(2025, 3, 28, 12), 3) == [
        datetime(2025, 3, 29, 2), datetime(2025, 3, 30, 1), datetime(2025, 3, 31, 1)]
    assert cron.due_and_following("0 * * * *", "UTC", datetime(2025, 3, 4, 17, 30)) == (
        datetime(2025, 3, 4, 17), datetime(2025, 3, 4, 18))
    assert cron.shown(datetime(2025, 7, 1, 1), "Europe/Paris") == "2025-07-01 03:00 CEST"


@pytest.mark.parametrize(("expression", "message"), [
    ("", "the schedule is empty; write five fields"),
    ("0 3 * *", "'0 3 * *' has 4 fields; a schedule has five"),
    ("0 0 3 * * *", "'0 0 3 * * *' has 6 fields; a schedule has five"),
    ("61 * * * *", "'61 * * * *' is not a cron schedule"),
    ("@reboot", "'@reboot' is not a cron schedule"),
    ("0 0 30 2 *", "'0 0 30 2 *' names no time that ever comes"),
    ("* " * 60, "characters long; at most 100"),
])
def test_bad_expressions_are_refused_saying_why(expression, message):
    with pytest.raises(store.StoreError, match=re.escape(message)):
        cron.check_expression(expression)


def test_time_zones_are_names_of_the_zone_database_only():
    assert cron.check_time_zone("europe/paris") == "Europe/Paris"
    assert cron.check_time_zone("") == "UTC"
    for name in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Europe"):
        with pytest.raises(store.StoreError, match="unknown time zone"):
            cron.check_time_zone(name)


# Firing -----------------------------------------------------------------------------------

def test_a_schedule_builds_the_branch_head_once_at_its_time(
        resources, redis_client, registered, git_repo, session, caplog):
    sha = git_repo.commit({"a.txt": "1"})
    schedule_id = add(resources, "0 3 * * *")
    assert fresh_schedule(session, schedule_id).next_due == datetime(2025, 3, 5, 3)

    assert fire(resources, redis_client, datetime(2025, 3, 5, 2, 59, 59)) == []
    with caplog.at_level(logging.INFO, logger="ci.builds.schedules"):
        fired = fire(resources, redis_client, datetime(2025, 3, 5, 3, 0, 4))
    assert fire(resources, redis_client, datetime(2025, 3, 5, 3, 0, 19)) == []

    assert [(item.slot, item.error) for item in fired] == [(datetime(2025, 3, 5, 3), None)]
    [build] = builds(session)
    assert (build.event, build.branch, build.ref, build.sha) == (
        "cron", "main", "refs/heads/main", sha)
    assert (build.message, build.author) == (
        "scheduled build for 2025-03-05 03:00 UTC (0 3 * * *)", "schedule 0 3 * * *")
    assert Queue(keys.JOBS_QUEUE, connection=redis_client,
                 serializer=keys.RQ_SERIALIZER).count == 1
    schedule = fresh_schedule(session, schedule_id)
    assert (schedule.next_due, schedule.last_slot, schedule.last_build_id, schedule.error) == (
        datetime(2025, 3, 6, 3), datetime(2025, 3, 5, 3), build.id, None)
    assert f"schedule {schedule_id} of octo/project: build #1 of main" in caplog.text


def test_recorders_racing_make_one_build_per_time(
        resources, redis_client, registered, git_repo, database_url, session):
    git_repo.commit({"a.txt": "1"})
    add(resources, "*/10 * * * *")
    # Four recorders, each with its engine as if in a process of its own.
    engines = [db.make_engine(database_url) for _ in range(4)]
    recorders = [db.make_sessionmaker(engine, writes=True) for engine in engines]
    try:
        for minutes in (10, 20, 30):
            now = T0 + timedelta(minutes=minutes, seconds=2)
            start = threading.Barrier(len(recorders))

            def race(sessions) -> list[schedules.Fired]:
                start.wait(timeout=30)
                return fire(resources, redis_client, now, sessions)

            with ThreadPoolExecutor(len(recorders)) as pool:
                fired = [item for result in pool.map(race, recorders) for item in result]
            assert [item.slot for item in fired] == [now.replace(second=0)], minutes
    finally:
        for engine in engines:
            engine.dispose()
    made = builds(session)
    assert [(build.number, build.event) for build in made] == [
        (1, "cron"), (2, "cron"), (3, "cron")]


def test_after_five_missed_times_one_build_for_the_newest_and_then_the_future(
        resources, redis_client, registered, git_repo, session):
    git_repo.commit({"a.txt": "1"})
    schedule_id = add(resources, "0 * * * *")  # due at 13:00, 14:00 … while nobody looks
    now = datetime(2025, 3, 4, 17, 30)

    fired = fire(resources, redis_client, now)

    assert [item.slot for item in fired] == [datetime(2025, 3, 4, 17)]
    assert len(builds(session)) == 1
    schedule = fresh_schedule(session, schedule_id)
    assert schedule.next_due == datetime(2025, 3, 4, 18) and schedule.next_due > now
    assert fire(resources, redis_client, now + timedelta(minutes=15)) == []


def test_a_disabled_schedule_builds_nothing_and_enabled_again_does_not_catch_up(
        resources, redis_client, registered, git_repo, session):
    git_repo.commit({"a.txt": "1"})
    schedule_id = add(resources, "0 3 * * *")

    def switch(enabled: bool, now: datetime) -> None:
        with resources.write_sessions() as db_session:
            repo = store.get_repo(db_session, "octo/project")
            schedules.switch(db_session, store.get_schedule(db_session, repo, schedule_id),
                             enabled, now)

    switch(False, T0)
    assert fire(resources, redis_client, datetime(2025, 3, 7, 12)) == []
    switch(True, datetime(2025, 3, 7, 12))
    assert fresh_schedule(session, schedule_id).next_due == datetime(2025, 3, 8, 3)
    assert fire(resources, redis_client, datetime(2025, 3, 7, 12, 0, 15)) == []
    assert [item.slot for item in fire(resources, redis_client, datetime(2025, 3, 8, 3, 0, 9))
            ] == [datetime(2025, 3, 8, 3)]


def test_a_schedule_goes_on_after_a_restart_from_what_the_database_says(
        resources, redis_client, registered, git_repo, database_url, session):
    git_repo.commit({"a.txt": "1"})
    add(resources, "0 3 * * *")
    assert len(fire(resources, redis_client, datetime(2025, 3, 5, 3, 0, 1))) == 1
    resources.engine.dispose()

    # Another process: a new engine, nothing kept in memory.
    engine = db.make_engine(database_url)
    try:
        restarted = db.make_sessionmaker(engine, writes=True)
        assert fire(resources, redis_client, datetime(2025, 3, 5, 3, 0, 40), restarted) == []
        fired = fire(resources, redis_client, datetime(2025, 3, 6, 3, 0, 2), restarted)
    finally:
        engine.dispose()
    assert [item.build.number for item in fired] == [2]
    assert [build.message for build in builds(session)] == [
        "scheduled build for 2025-03-05 03:00 UTC (0 3 * * *)",
        "scheduled build for 2025-03-06 03:00 UTC (0 3 * * *)"]


def test_the_recorder_fires_what_is_due_now(resources, redis_client, registered, git_repo):
    sha = git_repo.commit({"a.txt": "1"})
    add(resources, "@yearly", now=datetime(2020, 6, 1))  # due since 1 January 2021
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)

    fired = recorder.fire_schedules()

    assert [(item.build.number, item.build.sha) for item in fired] == [(1, sha)]
    assert recorder.fire_schedules() == []


def test_a_branch_that_is_gone_records_the_error_and_the_schedule_goes_on(
        resources, redis_client, registered, git_repo, session, client, cli):
    add_user(session, "wes", grants={registered: "write"})
    sign_in(client, "wes")
    git_repo.commit({"a.txt": "1"})
    git(git_repo.path, "branch", "nightly")
    schedule_id = add(resources, "0 3 * * *", branch="nightly")
    git(git_repo.path, "branch", "-D", "nightly")
    gone = "branch 'nightly' does not exist in the repository"

    fired = fire(resources, redis_client, datetime(2025, 3, 5, 3, 0, 3))

    assert [(item.build, item.error) for item in fired] == [(None, gone)]
    assert builds(session) == []
    schedule = fresh_schedule(session, schedule_id)
    assert (schedule.next_due, schedule.error) == (datetime(2025, 3, 6, 3), gone)
    assert f"no build yet; last time: {gone}" in cli("cron", "list").output
    assert client.get(f"{API}/{schedule_id}").get_json()["error"] == gone
    assert f"2025-03-05 03:00 UTC: {gone}" in text(client.get(SETTINGS))

    git(git_repo.path, "branch", "nightly")
    fired = fire(resources, redis_client, datetime(2025, 3, 6, 3, 0, 3))
    assert [(item.build.number, item.error) for item in fired] == [(1, None)]
    assert fresh_schedule(session, schedule_id).error is None
    page = text(client.get(SETTINGS))
    assert '<a href="/octo/project/builds/1">#1</a>' in page and gone not in page


@pytest.mark.docker
def test_a_step_for_cron_builds_runs_only_in_scheduled_builds(
        client, resources, redis_client, registered, git_repo, run_queue, session,
        docker_client):
    sha = git_repo.commit({".slipway.yml": f"""\
image: {IMAGE}
steps:
  - name: test
    run: echo "event $SLIPWAY_EVENT"
  - name: nightly
    run: echo nightly-only
    when: {{event: [cron]}}
"""})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    add(resources, "@daily")
    assert len(fire(resources, redis_client, datetime(2025, 3, 5, 0, 0, 5))) == 1

    run_queue()

    push, scheduled = builds(session)
    assert (push.event, push.status, scheduled.event, scheduled.status) == (
        "push", "passed", "cron", "passed")
    assert [(step.name, step.status) for step in push.jobs[0].steps] == [
        ("test", "passed"), ("nightly", "skipped")]
    assert [(step.name, step.status) for step in scheduled.jobs[0].steps] == [
        ("test", "passed"), ("nightly", "passed")]
    assert "nightly-only" not in log_of(resources, push.jobs[0])
    assert "event cron" in (log := log_of(resources, scheduled.jobs[0]))
    assert "nightly-only" in log


# The CLI ----------------------------------------------------------------------------------

def test_the_cli_adds_lists_switches_and_removes_schedules(cli, registered):
    added = cli("cron", "add", "octo/project", "--branch", "main", "--schedule", "0  3 * * *",
                "--timezone", "Europe/Paris")

    assert added.exit_code == 0, added.output
    heading, *times = added.output.splitlines()
    assert heading == ("schedule 1 of octo/project: builds main at '0 3 * * *' "
                       "(Europe/Paris); the next times:")
    assert len(times) == 3 and sorted(set(times)) == times
    assert all(re.fullmatch(r"  \d{4}-\d\d-\d\d 03:00 CES?T", time) for time in times), times
    listed = cli("cron", "list", "octo/project").output
    assert re.fullmatch(r"1\tocto/project\tmain\t0 3 \* \* \*\tEurope/Paris\tnext "
                        r"\d{4}-\d\d-\d\d 03:00 CES?T\tno build yet\n", listed), listed
    assert cli("cron", "list").output == listed

    assert cli("cron", "disable", "octo/project", "1").output == (
        "schedule 1 of octo/project disabled\n")
    assert "\tdisabled\t" in cli("cron", "list").output
    enabled = cli("cron", "enable", "octo/project", "1").output
    assert enabled.startswith("schedule 1 of octo/project enabled; next build ")
    assert cli("cron", "remove", "octo/project", "1").output == (
        "schedule 1 of octo/project removed\n")
    assert cli("cron", "list").output == "no schedules; add one with `slipway cron add`\n"
    again = cli("cron", "remove", "octo/project", "1")
    assert again.exit_code == 1 and "octo/project has no schedule 1" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (("--schedule", "0 3 * *"), "'0 3 * *' has 4 fields; a schedule has five"),
    (("--schedule", "61 * * * *"), "'61 * * * *' is not a cron schedule"),
    (("--schedule", "0 3 * * *", "--timezone", "Mars/Olympus"),
     "unknown time zone 'Mars/Olympus'"),
    (("--schedule", "0 3 * * *", "--branch", "bad..branch"),
     "'bad..branch' is not a branch name git accepts"),
])
def test_the_cli_refuses_bad_input_and_stores_nothing(cli, registered, session, args, message):
    refused = cli("cron", "add", "octo/project", *args)

    assert refused.exit_code == 1
    assert f"Error: {message}" in refused.output
    session.rollback()
    assert store.list_schedules(session) == []


def test_the_cli_names_what_is_not_there(cli, registered):
    unknown = cli("cron", "add", "octo/nope", "--schedule", "@daily")
    assert unknown.exit_code == 1 and "octo/nope is not registered" in unknown.output
    missing = cli("cron", "disable", "octo/project", "99999999999")
    assert missing.exit_code == 1 and "octo/project has no schedule 99999999999" in missing.output


# The API ----------------------------------------------------------------------------------

def test_the_api_adds_reads_switches_and_removes_schedules(client, api_token):
    created = client.post(API, json={"expression": "0 3 * * *", "time_zone": "europe/paris"},
                          headers=api_token)

    assert created.status_code == 201, created.get_json()
    data = created.get_json()
    assert (data["branch"], data["expression"], data["time_zone"], data["enabled"],
            data["created_by"], data["last_build"], data["error"]) == (
        "main", "0 3 * * *", "Europe/Paris", True, "dev", None, None)
    next_due = datetime.fromisoformat(data["next_due"])
    assert next_due > datetime.now(timezone.utc)
    assert next_due.astimezone(ZoneInfo("Europe/Paris")).hour == 3
    url = f"http://ci.test{API}/{data['id']}"
    assert created.headers["Location"] == data["url"] == url
    assert client.get(API).get_json() == {"schedules": [data]}  # a public repository's
    assert client.get(url).get_json() == data

    off = client.patch(url, json={"enabled": False}, headers=api_token).get_json()
    assert (off["enabled"], off["next_due"]) == (False, None)
    on = client.patch(url, json={"enabled": True}, headers=api_token).get_json()
    assert on["enabled"] is True and datetime.fromisoformat(on["next_due"]) >= next_due
    assert client.delete(url, headers=api_token).status_code == 204
    gone = client.delete(url, headers=api_token)
    assert (gone.status_code, gone.get_json()["error"]["code"]) == (404, "not_found")
    assert client.get(API).get_json() == {"schedules": []}


@pytest.mark.parametrize(("body", "message"), [
    ({"expression": "every night"}, "'every night' has 2 fields; a schedule has five"),
    ({"expression": "0 3 * * *", "time_zone": "Paris"}, "unknown time zone 'Paris'"),
    ({"expression": "0 3 * * *", "branch": "-rf"}, "'-rf' is not a branch name git accepts"),
    ({"expression": "0 3 * * *", "branch": "\ud800"}, "the branch name is not valid Unicode"),
    ({"branch": "main"}, "expression is missing"),
    ({"expression": 3}, "expression must be a string"),
    ({"expression": "0 3 * * *", "at": "now"}, "unknown field(s) at"),
])
def test_the_api_refuses_bad_schedules_with_a_400_that_says_why(client, api_token, body,
                                                                 message):
    refused = client.post(API, json=body, headers=api_token)

    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["code"] == "bad_request" and message in error["message"], error
    assert client.get(API).get_json() == {"schedules": []}


def test_the_api_asks_write_permission_to_change_and_read_access_to_see(
        client, session, registered):
    reader = token_headers(session, add_user(session, "rita", grants={registered: "read"}))
    writer = token_headers(session, add_user(session, "wes", grants={registered: "write"}))
    stranger = token_headers(session, add_user(session, "sam"))
    body = {"expression": "@daily"}

    assert client.post(API, json=body).status_code == 401
    refused = client.post(API, json=body, headers=reader)
    assert refused.status_code == 403
    assert "slipway repo grant octo/project rita --permission write" in (
        refused.get_json()["error"]["message"])
    url = client.post(API, json=body, headers=writer).get_json()["url"]
    for headers, status in (({}, 401), (reader, 403)):
        assert client.patch(url, json={"enabled": False}, headers=headers).status_code == status
        assert client.delete(url, headers=headers).status_code == status
    assert client.get(url, headers=reader).get_json()["enabled"] is True

    store.update_repo(session, registered, private=True)
    assert client.get(API).status_code == 404
    assert client.get(API, headers=stranger).status_code == 404
    assert client.delete(url, headers=stranger).status_code == 404
    assert len(client.get(API, headers=reader).get_json()["schedules"]) == 1


def test_a_schedule_id_names_only_its_own_repositorys_schedule(client, session, api_token,
                                                               git_repo):
    other = store.add_repo(session, "octo/other", "github", str(git_repo.path), "s")
    add_user(session, "olga", grants={other: "write"})
    mine = client.post(API, json={"expression": "@daily"}, headers=api_token).get_json()
    elsewhere = f"/api/repos/octo/other/schedules/{mine['id']}"

    olga = token_headers(session, store.get_user(session, "olga"))
    assert client.get(elsewhere, headers=olga).status_code == 404
    assert client.delete(elsewhere, headers=olga).status_code == 404
    assert client.get(f"{API}/{mine['id']}").status_code == 200
    assert client.get(f"{API}/{2**31}").status_code == 404


# The settings page ------------------------------------------------------------------------

@pytest.fixture
def writer_client(client, session, registered):
    add_user(session, "wes", grants={registered: "write"})
    sign_in(client, "wes")
    return client


def test_the_settings_page_adds_switches_and_removes_schedules(writer_client, session):
    assert "No schedules yet." in text(writer_client.get(SETTINGS))

    added = post_form(writer_client, f"{SETTINGS}/schedules", branch="main",
                      expression="30 2 * * 1", time_zone="UTC")

    assert (added.status_code, added.headers["Location"]) == (302, SETTINGS)
    page = text(writer_client.get(SETTINGS))
    assert "Schedule added: main builds at '30 2 * * 1' (UTC), next " in page
    assert "<code>30 2 * * 1</code>" in page and "none yet" in page
    [schedule] = store.list_schedules(session, store.get_repo(session, "octo/project"))
    assert (schedule.branch, schedule.expression, schedule.time_zone, schedule.created_by) == (
        "main", "30 2 * * 1", "UTC", "wes")
    assert f"{cron.shown(schedule.next_due, 'UTC')}</td>" in page

    post_form(writer_client, f"{SETTINGS}/schedules/{schedule.id}/disable")
    assert fresh_schedule(session, schedule.id).enabled is False
    assert '<span class="muted">disabled</span>' in text(writer_client.get(SETTINGS))
    post_form(writer_client, f"{SETTINGS}/schedules/{schedule.id}/enable")
    assert fresh_schedule(session, schedule.id).enabled is True

    removed = post_form(writer_client, f"{SETTINGS}/schedules/{schedule.id}/remove")
    page = text(writer_client.get(removed.location))
    assert f"Schedule {schedule.id} removed; its builds stay." in page
    assert "No schedules yet." in page


@pytest.mark.parametrize(("fields", "message"), [
    ({"branch": "main", "expression": "nightly", "time_zone": "UTC"},
     "'nightly' has 1 field; a schedule has five"),
    ({"branch": "main", "expression": "0 3 * * *", "time_zone": "Moon/Base"},
     "unknown time zone 'Moon/Base'"),
    ({"branch": "bad..branch", "expression": "0 3 * * *", "time_zone": "UTC"},
     "'bad..branch' is not a branch name git accepts"),
])
def test_a_refused_schedule_keeps_the_form_and_says_why(writer_client, session, fields,
                                                        message):
    refused = post_form(writer_client, f"{SETTINGS}/schedules", **fields)

    assert refused.status_code == 400
    page = text(refused)
    assert message in page
    for name, value in fields.items():
        assert f'name="{name}" value="{value}"' in page, name
    assert store.list_schedules(session) == []


def test_only_writers_open_and_change_schedules_on_the_page(client, session, registered,
                                                            resources):
    schedule_id = add(resources, "@daily")
    anonymous = client.get(SETTINGS)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]

    add_user(session, "rita", grants={registered: "read"})
    sign_in(client, "rita")
    assert client.get(SETTINGS).status_code == 403
    for path in ("schedules", f"schedules/{schedule_id}/disable",
                 f"schedules/{schedule_id}/remove"):
        assert post_form(client, f"{SETTINGS}/{path}", branch="main",
                         expression="@hourly").status_code == 403, path
    schedule = fresh_schedule(session, schedule_id)
    assert (schedule.expression, schedule.enabled) == ("@daily", True)
    assert len(store.list_schedules(session)) == 1
