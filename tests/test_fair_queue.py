"""Fair queueing on a real Redis (and SQL, and real runners where it says so): repositories
take turns for the runners, each within its limit of jobs at once; what waits, and why, is on
the queue page and the API; cancels, dead runners and stale Redis state lose nothing and
block nothing."""

from __future__ import annotations

import html
import re

import pytest
from click.testing import CliRunner
from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import select

from ci import store
from ci.accounts import job_limits
from ci.builds import dispatch
from ci.builds import service as build_service
from ci.builds.recorder import Recorder
from ci.cli.main import main
from ci.pipeline import fair_queue, keys
from ci.pipeline.status import Status
from ci.settings import SettingsError, load_settings
from ci.store.models import Build, Job, utcnow
from tests.conftest import (IMAGE, SECRET, GitRepo, add_user, csrf_of, post_hook, push_payload,
                            sign_in, token_headers, wait_for)

#: A pipeline that runs as little as a real job can.
TRIVIAL = {".slipway.yml": f"image: {IMAGE}\nsteps:\n  - name: nothing\n    run: 'true'\n"}
#: A pipeline for schedules only: a push's job starts, checks out, reads it and ends skipped,
#: with no container, for a third of a container's time; what is tested is when each starts.
SCHEDULED_ONLY = {".slipway.yml": f"image: {IMAGE}\nwhen: {{event: [cron]}}\n"
                                  "steps:\n  - run: 'true'\n"}


def queued(redis_client, rq_job_id: str) -> None:
    """A job's hash as RQ makes it, for the script, which reads only its status."""
    redis_client.hset(keys.RQ_JOB_KEY_PREFIX + rq_job_id, "status", "queued")


def take(redis_client) -> str:
    """What a runner does with the next job: RQ's worker pops it and marks it started, then
    the runner's claim admits the next one."""
    rq_job_id = redis_client.lpop(keys.JOBS_QUEUE_KEY).decode()
    redis_client.hset(keys.RQ_JOB_KEY_PREFIX + rq_job_id, "status", "started")
    fair_queue.admit(redis_client)
    return rq_job_id


def finish(redis_client, repo_id: int, rq_job_id: str) -> None:
    redis_client.hset(keys.RQ_JOB_KEY_PREFIX + rq_job_id, "status", "finished")
    fair_queue.release(redis_client, repo_id, rq_job_id)


def rq_id(job: Job) -> str:
    return keys.rq_job_id(job.id, job.attempt)


def jobs_of(session, full_name: str) -> list[Job]:
    """A repository's jobs, oldest build first, as committed now."""
    session.rollback()
    session.expire_all()
    repo = store.get_repo(session, full_name)
    return list(session.scalars(select(Job).join(Build).where(Build.repo_id == repo.id)
                                .order_by(Build.number)))


def push(client, full_name: str, count: int = 1, sha: str = "c" * 40) -> None:
    for index in range(count):
        body = push_payload(full_name, sha, message=f"change {index}")
        assert post_hook(client, body).status_code == 202


@pytest.fixture
def others(session, tmp_path):
    """Two more registered repositories, each with a repository on disk."""
    made = {}
    for name in ("other", "third"):
        source = GitRepo(tmp_path / "src" / name)
        made[name] = (store.add_repo(session, f"octo/{name}", "github", str(source.path),
                                     SECRET), source)
    return made


# The script alone ------------------------------------------------------------------------

def test_the_names_the_script_uses_are_rqs(redis_client):
    assert Queue(keys.JOBS_QUEUE, connection=redis_client).key == keys.JOBS_QUEUE_KEY
    assert RQJob.key_for("x") == keys.RQ_JOB_KEY_PREFIX + "x"


def test_repositories_take_turns_least_recently_served_first(redis_client):
    for repo, count in ((1, 3), (2, 2), (3, 1)):
        for index in range(count):
            queued(redis_client, f"r{repo}-{index}")
            fair_queue.enter(redis_client, repo, f"r{repo}-{index}", 0)
    state = fair_queue.snapshot(redis_client)
    assert state.ready == ["r1-0"]  # one at a time: the rest waits in the lines
    assert state.order == [2, 3, 1]  # never served yet, by name; then the one just served
    assert [take(redis_client) for _ in range(6)] == ["r1-0", "r2-0", "r3-0", "r1-1", "r2-1",
                                                      "r1-2"]
    assert redis_client.llen(keys.JOBS_QUEUE_KEY) == 0
    assert redis_client.zcard(keys.FAIR_REPOS) == 0  # nothing waits: nobody in line
    # Back with a job each while a runner's place is taken: 3 was served longest ago, then
    # 2; having nothing waiting for a while does not send a repository to the back.
    queued(redis_client, "busy")
    redis_client.rpush(keys.JOBS_QUEUE_KEY, "busy")
    for repo, rq_job_id in ((1, "r1-3"), (2, "r2-2"), (3, "r3-1")):
        queued(redis_client, rq_job_id)
        fair_queue.enter(redis_client, repo, rq_job_id, 0)
    assert [take(redis_client) for _ in range(4)] == ["busy", "r3-1", "r2-2", "r1-3"]


def test_a_repository_at_its_limit_lets_the_others_pass(redis_client):
    for rq_job_id in ("a1", "a2", "a3"):
        queued(redis_client, rq_job_id)
        fair_queue.enter(redis_client, 1, rq_job_id, 1)
    queued(redis_client, "b1")
    fair_queue.enter(redis_client, 2, "b1", 0)
    assert take(redis_client) == "a1"
    # Two runners: the second gets b1, never a2, while a1 runs.
    assert fair_queue.snapshot(redis_client).ready == ["b1"]
    assert take(redis_client) == "b1"
    state = fair_queue.snapshot(redis_client)
    assert state.ready == [] and state.lines[1].waiting == ["a2", "a3"]
    assert state.lines[1].active == {"a1"} and state.lines[1].at_limit
    finish(redis_client, 1, "a1")
    assert fair_queue.snapshot(redis_client).ready == ["a2"]
    # A higher limit applies at once, not with the next job.
    fair_queue.set_limit(redis_client, 1, 2)
    assert take(redis_client) == "a2"
    assert fair_queue.snapshot(redis_client).ready == ["a3"]


# With the server: enqueue, cancel, reconcile ---------------------------------------------

def test_enqueue_makes_the_rq_job_as_rq_does_and_puts_it_in_line(client, registered, session,
                                                                 redis_client, resources):
    push(client, "octo/project", 3)
    first, second, third = jobs_of(session, "octo/project")
    queue = Queue(keys.JOBS_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)
    assert queue.get_job_ids() == [rq_id(first)]
    for job in (first, second, third):
        rq_job = queue.fetch_job(rq_id(job))
        assert (rq_job.get_status(), rq_job.origin) == ("queued", keys.JOBS_QUEUE)
        assert rq_job.func_name == keys.RUN_JOB and rq_job.args[0]["repo_id"] == registered.id
        assert rq_job.enqueued_at is not None
    assert redis_client.smembers("rq:queues") == {keys.JOBS_QUEUE_KEY.encode()}
    state = fair_queue.snapshot(redis_client)
    assert state.lines[registered.id].waiting == [rq_id(second), rq_id(third)]
    assert state.lines[registered.id].active == {rq_id(first)}
    # Waiting in a line is held: the reconciler enqueues none of them again.
    for job in (first, second, third):
        job.enqueued_at = utcnow() - dispatch.REQUEUE_GRACE * 2
    session.commit()
    result = dispatch.reconcile(session, redis_client, resources.settings)
    assert result.requeued == [] and fair_queue.snapshot(redis_client).held() == {
        rq_id(first), rq_id(second), rq_id(third)}


def test_a_canceled_job_leaves_its_line_and_the_next_goes(client, registered, session,
                                                          redis_client):
    push(client, "octo/project", 3)
    first, second, third = jobs_of(session, "octo/project")
    build_service.cancel(session, redis_client, second.build, "dev")
    state = fair_queue.snapshot(redis_client)
    assert state.ready == [rq_id(first)]
    assert state.lines[registered.id].waiting == [rq_id(third)]
    build_service.cancel(session, redis_client, first.build, "dev")
    state = fair_queue.snapshot(redis_client)
    assert state.ready == [rq_id(third)] and state.lines[registered.id].waiting == []
    assert state.lines[registered.id].active == {rq_id(third)}
    assert [job.status for job in jobs_of(session, "octo/project")] == [
        "canceled", "canceled", "queued"]


def test_a_runner_dead_between_admission_and_start_heals_through_reconcile(
        client, registered, session, redis_client, resources):
    job_limits.set_limits(session, resources.settings, registered, max_jobs="1")
    push(client, "octo/project", 2)
    first, second = jobs_of(session, "octo/project")
    assert take(redis_client) == rq_id(first)  # ...and its runner died before its claim
    assert fair_queue.snapshot(redis_client).lines[registered.id].at_limit
    for job in (first, second):
        job.enqueued_at = utcnow() - dispatch.REQUEUE_GRACE * 2
    session.commit()

    assert dispatch.reconcile(session, redis_client, resources.settings).requeued == [first.id]
    first, second = jobs_of(session, "octo/project")
    state = fair_queue.snapshot(redis_client)
    assert first.attempt == 2 and state.ready == [rq_id(second)]
    assert state.lines[registered.id].active == {rq_id(second)}
    assert state.lines[registered.id].waiting == [rq_id(first)]

    # The second job's runner ends it, and dies before it frees its place: the database
    # says it ended, so the reconciler frees it, and the first job's new attempt goes.
    assert take(redis_client) == rq_id(second)
    store.finish_job(session, second, Status.PASSED, utcnow(), None)
    session.commit()
    dispatch.reconcile(session, redis_client, resources.settings)
    state = fair_queue.snapshot(redis_client)
    assert state.ready == [rq_id(first)] and state.lines[registered.id].active == {rq_id(first)}


def test_enqueue_while_redis_holds_stale_state(client, registered, session, redis_client,
                                               resources):
    job_limits.set_limits(session, resources.settings, registered, max_jobs="1")
    repo_id = registered.id
    # Left from before (a restored snapshot, processes killed): jobs long gone still counted
    # as running, and ids of jobs that no longer exist on RQ's queue and in the line.
    redis_client.sadd(keys.fair_active(repo_id), "slipway-job-900-1", "slipway-job-901-1")
    redis_client.hset(keys.FAIR_LIMITS, repo_id, 1)
    redis_client.rpush(keys.JOBS_QUEUE_KEY, "slipway-job-902-1")
    redis_client.rpush(keys.fair_waiting(repo_id), "slipway-job-903-1")
    redis_client.zadd(keys.FAIR_REPOS, {str(repo_id): 7})
    redis_client.hset(keys.FAIR_SERVED, repo_id, 7)

    push(client, "octo/project")
    [job] = jobs_of(session, "octo/project")
    state = fair_queue.snapshot(redis_client)
    assert state.ready == [rq_id(job)] and state.lines[repo_id].waiting == []
    assert state.lines[repo_id].active == {rq_id(job)}
    assert redis_client.zcard(keys.FAIR_REPOS) == 0


# What waits and why: the queue page, the API, the limit's settings ----------------------

def test_the_queue_page_and_api_say_who_waits_and_why(client, registered, others, session,
                                                      redis_client, resources):
    job_limits.set_limits(session, resources.settings, registered, max_jobs="2")
    push(client, "octo/project", 3)
    for job in jobs_of(session, "octo/project")[:2]:  # two runners took two of its jobs
        take(redis_client)
        store.start_job(session, job, utcnow(), "runner")
    session.commit()
    push(client, "octo/other", 2)
    push(client, "octo/third")
    store.update_repo(session, others["third"][0], private=True)

    add_user(session, "ada", admin=True)
    add_user(session, "bob", grants={others["third"][0]: "read"})
    sign_in(client, "bob")
    page = html.unescape(client.get("/admin/queue").get_data(as_text=True))
    rows = [[" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in
             re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)][:6]
            for row in re.findall(r"<tr>(.*?)</tr>", page[page.index("<tbody>"):], re.DOTALL)]
    assert rows == [
        ["octo/other", "0", "2", "no limit", "next in line for a runner", "2"],
        ["octo/third private", "0", "1", "no limit",
         "waiting its turn behind 1 other repository", "1"],
        ["octo/project", "2", "1", "2", "at its limit of 2 jobs at once", "1"]]

    signed_in = client.get("/api/queue").get_json()  # the page's cookie will do
    assert [row["why"] for row in signed_in["repos"]] == [
        "next in line for a runner", "waiting its turn behind 1 other repository",
        "at its limit of 2 jobs at once"]
    other_client = client.application.test_client()
    anonymous = other_client.get("/api/queue")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["message"] == (
        "sign in or send an API token to see the queue")
    answer = other_client.get(
        "/api/queue", headers=token_headers(session, add_user(session, "carol"))).get_json()
    assert [row["full_name"] for row in answer["repos"]] == ["octo/other", "octo/project"]
    assert answer["redis_holds"] is None and answer["redis_answers"] is True
    project = answer["repos"][1]
    assert (project["running"], project["waiting"], project["max_jobs"], project["why"]) == (
        2, 1, 2, "at its limit of 2 jobs at once")
    assert project["waiting_longest"]["url"] == "http://ci.test/octo/project/builds/3#job-1"
    admin = other_client.get(
        "/api/queue", headers=token_headers(session, store.get_user(session, "ada")))
    assert admin.get_json()["redis_holds"] == 4

    told = CliRunner().invoke(main, ["queue"])
    assert told.exit_code == 0, told.output
    assert told.output.splitlines() == [
        "octo/other\trunning 0\twaiting 2\tat once no limit\tnext in line for a runner",
        "octo/third\trunning 0\twaiting 1\tat once no limit\t"
        "waiting its turn behind 1 other repository",
        "octo/project\trunning 2\twaiting 1\tat once 2\tat its limit of 2 jobs at once",
        "Redis holds 4 jobs for the runners"]


def test_the_limit_is_set_within_the_maximum(cli, git_repo, redis_client, monkeypatch):
    cli("repo", "add", "octo/project", "--clone-url", str(git_repo.path), "--secret", "s")
    assert cli("repo", "limits", "octo/project").output.endswith(", jobs at once no limit\n")
    assert cli("repo", "limits", "octo/project", "--max-jobs", "3").output.endswith(
        ", jobs at once 3\n")
    monkeypatch.setenv("SLIPWAY_MAX_JOBS_PER_REPO", "2")
    # Lowered since: the repository gets the maximum, and may not ask for more.
    assert cli("repo", "limits", "octo/project").output.endswith(", jobs at once 2\n")
    for value, message in (
            ("0", "jobs at once 0 must be at least 1; write default to follow the "
                  "administrator's maximum"),
            ("-1", "jobs at once -1 must be at least 1"),
            ("3", "jobs at once 3 is above the maximum of 2 (SLIPWAY_MAX_JOBS_PER_REPO)"),
            ("many", "jobs at once 'many' is not a whole number; write e.g. 2, or default")):
        refused = cli("repo", "limits", "octo/project", "--max-jobs", value)
        assert refused.exit_code == 1 and message in refused.output, value
    assert cli("repo", "limits", "octo/project", "--max-jobs", "1").output.endswith(
        ", jobs at once 1\n")
    assert redis_client.hget(keys.FAIR_LIMITS, "1") == b"1"  # applied at once
    assert cli("repo", "limits", "octo/project", "--max-jobs", "default").output.endswith(
        ", jobs at once 2\n")


def test_the_administrators_maximum_is_a_whole_number():
    assert load_settings({}).max_jobs_per_repo == 0
    assert load_settings({"SLIPWAY_MAX_JOBS_PER_REPO": "4"}).max_jobs_per_repo == 4
    with pytest.raises(SettingsError, match=r"SLIPWAY_MAX_JOBS_PER_REPO='-2' is not a whole "
                                            r"number; use e.g. 4, or 0 for no maximum"):
        load_settings({"SLIPWAY_MAX_JOBS_PER_REPO": "-2"})


def test_the_settings_page_sets_the_limit(client, registered, session, redis_client):
    def post_form(path: str, **fields):
        return client.post(path, data={"csrf_token": csrf_of(client), **fields})

    add_user(session, "wes", grants={registered: "write"})
    sign_in(client, "wes")
    fields = {"memory": "2g", "cpus": "2", "pids": "1024"}
    refused = post_form("/octo/project/settings/limits", **fields, max_jobs="0")
    assert refused.status_code == 400
    assert "jobs at once 0 must be at least 1" in html.unescape(refused.get_data(as_text=True))
    saved = post_form("/octo/project/settings/limits", **fields, max_jobs="3")
    page = html.unescape(client.get(saved.location).get_data(as_text=True))
    assert "Jobs at once: 3." in page and 'name="max_jobs" value="3"' in page
    session.rollback()
    session.expire_all()
    assert registered.max_concurrent_jobs == 3
    assert redis_client.hget(keys.FAIR_LIMITS, str(registered.id)) == b"3"  # applied at once
    post_form("/octo/project/settings/limits", **fields, max_jobs="")
    session.rollback()
    session.expire_all()
    assert registered.max_concurrent_jobs is None


# Real runners -----------------------------------------------------------------------------

@pytest.mark.docker
def test_a_burst_of_one_repository_does_not_starve_another(client, git_repo, registered, others,
                                                           session, run_queue, docker_client):
    """The issue's case: with one runner, A queues 20 builds, then B one; B's starts before
    A's third."""
    push(client, "octo/project", 20, git_repo.commit(SCHEDULED_ONLY))
    push(client, "octo/other", 1, others["other"][1].commit(SCHEDULED_ONLY))
    run_queue()
    session.rollback()
    jobs = list(session.scalars(select(Job).order_by(Job.started_at)))
    assert [job.status for job in jobs] == ["skipped"] * 21
    started = [job.build.repo.full_name for job in jobs]
    assert started == ["octo/project", "octo/other"] + ["octo/project"] * 19


@pytest.mark.docker
def test_a_repository_never_runs_more_than_its_limit(client, git_repo, registered, others,
                                                     session, resources, redis_client,
                                                     workers, docker_client):
    job_limits.set_limits(session, resources.settings, registered, max_jobs="1")
    push(client, "octo/project", 3, git_repo.commit(TRIVIAL))
    push(client, "octo/other", 1, others["other"][1].commit(TRIVIAL))
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    seen: set[int] = set()

    def all_ended():
        seen.add(redis_client.scard(keys.fair_active(registered.id)))
        recorder.step(block_ms=50)
        session.rollback()
        return all(build.status == "passed" for build in session.scalars(select(Build)))

    wait_for(all_ended, timeout=120, interval=0, what="every build passed")
    assert max(seen) == 1
    mine = sorted(jobs_of(session, "octo/project"), key=lambda job: job.started_at)
    for before, after in zip(mine, mine[1:]):
        assert before.finished_at <= after.started_at
