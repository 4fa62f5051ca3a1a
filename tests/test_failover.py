"""No single process the builds depend on: two recorders and two reporters, as real
processes on the test's Redis and database; one of each is killed with SIGKILL while it
holds work, and every event is still applied once and in order, every status sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.exceptions import ResponseError
from rq import Queue
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from sqlalchemy import select, update

from ci import store
from ci.builds import dispatch, service
from ci.builds import recorder as recorder_module
from ci.builds.recorder import Recorder
from ci.forges import statuses
from ci.forges.types import Trigger
from ci.pipeline import fair_queue, keys
from ci.pipeline.spec import Event, EventType
from ci.store import db
from ci.store.models import Job, Repo, Step
from runners.publisher import Publisher
from tests.conftest import IMAGE, SECRET, SLIPWAY, post_hook, push_payload, wait_for

JOBS = 8
STEPS = ("install", "lint", "test")


class HeldForge:
    """A GitHub status API that holds requests while :attr:`holding` is set, so that a test
    can kill a reporter in the middle of one; records the statuses it answered."""

    def __init__(self) -> None:
        self.answered: list[dict] = []
        self.held = 0
        self.holding = threading.Event()
        self.released = threading.Event()
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if forge.holding.is_set():
                    forge.held += 1
                    forge.released.wait(60)
                try:
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except BrokenPipeError:  # the reporter was killed while waiting
                    return
                forge.answered.append({"sha": self.path.rsplit("/", 1)[-1], **body})

            def log_message(self, *args) -> None:
                """Quiet: the test asserts on what was answered instead."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last_state(self, sha: str, context: str) -> str | None:
        states = [s["state"] for s in self.answered if s["sha"] == sha and s["context"] == context]
        return states[-1] if states else None

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forge():
    api = HeldForge()
    yield api
    api.close()


def start(role: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as output:
        return subprocess.Popen([SLIPWAY, role], env=env, stdout=output,
                                stderr=subprocess.STDOUT)


def tails(folder: Path) -> str:
    """The end of each process's log in ``folder``, to explain a test that failed."""
    return "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}"
                   for log in sorted(folder.glob("*.log")))


def consumers(redis_client) -> list[dict]:
    try:
        return redis_client.xinfo_consumers(keys.EVENTS_STREAM, keys.RECORDER_GROUP)
    except ResponseError:  # no stream yet: the recorders are starting
        return []


def blocked_reading(redis_client, pid: int, redis_port: int, fresh: bool = True) -> bool:
    """Whether process ``pid`` is blocked in a read of the events stream, as Redis sees it: a
    client from one of its sockets (``ss`` names the process) waiting in XREADGROUP; when
    ``fresh``, for less than a second, so that its read lasts seconds more."""
    listing = subprocess.run(["ss", "-tnpH", "state", "established", "dport", f"= :{redis_port}"],
                             capture_output=True, text=True, check=True).stdout
    ports = {int(line.split()[2].rsplit(":", 1)[1]) for line in listing.splitlines()
             if f"pid={pid}," in line}
    return any(client["cmd"] == "xreadgroup" and "b" in client["flags"]
               and (not fresh or int(client["idle"]) == 0)
               and int(client["addr"].rsplit(":", 1)[1]) in ports
               for client in redis_client.client_list())


def stopped_while_reading(redis_client, process: subprocess.Popen, redis_port: int) -> bool:
    """Stop ``process`` if it blocks in a read of the events stream, and keep it stopped only
    if its read still blocks then: on a loaded machine the read may end between the look and
    the signal, and a recorder stopped between two reads would never get an entry."""
    if not blocked_reading(redis_client, process.pid, redis_port):
        return False
    process.send_signal(signal.SIGSTOP)
    if blocked_reading(redis_client, process.pid, redis_port, fresh=False):
        return True
    process.send_signal(signal.SIGCONT)
    return False


def pending_of(redis_client, consumer: str) -> int:
    return len(redis_client.xpending_range(keys.EVENTS_STREAM, keys.RECORDER_GROUP, "-", "+",
                                           1000, consumername=consumer))


def run_jobs(redis_client, specs) -> None:
    """What the jobs' runners send, interleaved: every job's events, numbered, with a lease."""
    publishers = [Publisher(redis_client, spec) for spec in specs]
    for publisher in publishers:
        assert publisher.claim() is None
        publisher.keep_lease(lambda: None)
        publisher.event(EventType.JOB_STARTED, runner="runner-1")
        publisher.event(EventType.STEPS_PLANNED, steps=list(STEPS), image=IMAGE)
    for index, name in enumerate(STEPS):
        for publisher in publishers:
            publisher.step_started(index, name)
            publisher.event(EventType.STEP_FINISHED, step=index, status="passed", exit_code=0)
    for publisher in publishers:
        publisher.finished("passed", None)
        assert publisher.wait_sent()
        publisher.release()


@pytest.mark.postgresql_only
def test_two_recorders_and_two_reporters_survive_a_sigkill_of_one_of_each(
        session, resources, redis_client, git_repo, forge, tmp_path):
    settings = resources.settings
    repo = store.add_repo(session, "octo/project", "github", str(git_repo.path), SECRET)
    statuses.set_forge_access(session, settings, repo, "t0ken", forge.url)
    session.commit()
    # No pruning pass: one in the thread of a recorder stopped below would keep the database's
    # write lock from the other recorder for db.WRITER_IDLE_TIMEOUT_MS (a test of its own).
    env = {**os.environ, "SLIPWAY_DATABASE_URL": settings.database_url,
           "SLIPWAY_REDIS_URL": settings.redis_url, "SLIPWAY_DATA_DIR": str(settings.data_dir),
           "SLIPWAY_BASE_URL": "http://ci.test", "SLIPWAY_KEEP_DAYS": "0"}
    recorders = [start("recorder", env, tmp_path / f"recorder-{n}.log") for n in (1, 2)]
    reporters = [start("reporter", env, tmp_path / f"reporter-{n}.log") for n in (1, 2)]
    try:
        builds = []
        for number in range(JOBS):
            trigger = Trigger(repo=repo.full_name, event="push", ref="refs/heads/main",
                              sha=f"{number:040x}", branch="main", message="change")
            builds.append(service.accept(session, redis_client, settings, repo, trigger).build)
        specs = [dispatch.job_spec(settings, repo, build, build.jobs[0], 1) for build in builds]

        # A recorder stopped while blocked reading the stream still gets entries: Redis answers
        # the blocked reads in turn, so with both stopped so, each gets some of the first. The
        # victim keeps them and dies without acknowledging; the survivor goes on.
        victim, survivor = recorders
        redis_port = urlsplit(settings.redis_url).port
        wait_for(lambda: len(consumers(redis_client)) == 2, what="both recorders reading")
        for recorder in (survivor, victim):
            wait_for(lambda: stopped_while_reading(redis_client, recorder, redis_port),
                     interval=0.01, what=f"recorder {recorder.pid} stopped while reading")
        victim_name = next(c["name"] for c in consumers(redis_client)
                           if c["name"].endswith(f"-{victim.pid}".encode()))
        forge.holding.set()
        runner = threading.Thread(target=run_jobs, args=(redis_client, specs))
        runner.start()
        # Never acknowledged by the victim: once these are recorded, the survivor took them over
        # (after CLAIM_IDLE_MS, before or after the kill below, as the machine's pace has it).
        held = wait_for(lambda: pending_of(redis_client, victim_name),
                        what="the stopped recorder holding events")
        survivor.send_signal(signal.SIGCONT)
        # Both reporters now hold a report the forge does not answer; one of them dies.
        wait_for(lambda: forge.held >= 2, timeout=30,
                 what=lambda: f"both reporters holding a report; logs:{tails(tmp_path)}")
        reporters[0].send_signal(signal.SIGKILL)
        reporters[0].wait()
        forge.holding.clear()
        forge.released.set()
        runner.join(timeout=60)
        victim.send_signal(signal.SIGKILL)
        victim.wait()

        def all_recorded() -> bool:
            session.rollback()
            return all(job.status == "passed" and job.event_seq == 3 + 2 * len(STEPS)
                       for job in session.scalars(select(Job)))

        # Its events are taken over after CLAIM_IDLE_MS, at the survivor's next reconcile.
        wait_for(all_recorded, timeout=60, interval=0.2)
        for job in session.scalars(select(Job)):
            steps = session.scalars(select(Step).where(Step.job_id == job.id)
                                    .order_by(Step.number)).all()
            assert [(s.name, s.status) for s in steps] == [(n, "passed") for n in STEPS]
            assert all(s.started_at <= s.finished_at for s in steps)
            assert job.build.status == "passed"
        assert redis_client.xlen(keys.EVENTS_DEAD_STREAM) == 0
        # A recorder acknowledges a batch after its commits and the archiving of the logs of
        # the jobs that ended in it: nothing stays pending once that is done.
        wait_for(lambda: redis_client.xpending(
            keys.EVENTS_STREAM, keys.RECORDER_GROUP)["pending"] == 0, timeout=30)

        # The dead reporter's report is handed to the other once its heartbeat expires.
        wait_for(lambda: all(forge.last_state(build.sha, "slipway") == "success"
                             for build in builds),
                 timeout=statuses.REPORT_TIMEOUT_SECONDS + 40, interval=0.5)
        queue = Queue(keys.STATUS_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)
        wait_for(lambda: not queue.started_job_registry.get_job_ids() and queue.is_empty(),
                 timeout=statuses.REPORT_TIMEOUT_SECONDS + 40, interval=0.5)
        # The killed reporter's report was run again by the other, not given up.
        assert queue.failed_job_registry.get_job_ids() == []
    finally:
        for process in recorders + reporters:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait()
    survivor_log = (tmp_path / "recorder-2.log").read_text()
    # Events waited for their turn; none was applied out of order after giving up on one.
    assert "never came" not in survivor_log
    print(f"\nrecorder killed holding {held} events; {len(forge.answered)} statuses answered")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, as /proc shows them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while being read
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.postgresql_only
def test_a_writer_gone_quiet_inside_its_transaction_loses_the_write_lock(
        session, resources, git_repo, monkeypatch):
    """A writer whose process froze, or whose host vanished, between two statements holds
    PostgreSQL's write lock: the server ends its session after WRITER_IDLE_TIMEOUT_MS, the
    other writers go on, and what the quiet one had written is rolled back, not half kept."""
    store.add_repo(session, "octo/project", "github", str(git_repo.path), SECRET)
    session.commit()
    monkeypatch.setattr(db, "WRITER_IDLE_TIMEOUT_MS", 300)
    engine = db.make_engine(resources.settings.database_url)
    writes = db.make_sessionmaker(engine, writes=True)
    quiet = writes()
    quiet.execute(update(Repo).values(default_branch="half-done"))  # then no word from it
    done = threading.Event()

    def other_writer() -> None:
        with writes() as other:
            other.execute(update(Repo).values(default_branch="main"))  # waits for the lock
            other.commit()
        done.set()

    threading.Thread(target=other_writer, daemon=True).start()
    try:
        assert done.wait(timeout=30), "the other writer still waits for the write lock"
        # Like any lost connection: a recorder stops there, and sets no event aside.
        with pytest.raises(db.Unavailable):
            quiet.execute(select(Repo.default_branch))
    finally:
        quiet.close()
        engine.dispose()
    session.rollback()
    assert session.scalars(select(Repo.default_branch)).all() == ["main"]


def test_the_scheduler_of_a_reporter_killed_with_sigkill_stops_too(
        resources, redis_client, tmp_path):
    """RQ forks the reporter's scheduler into a process of its own: it must end with its
    reporter and give the scheduler's lock back, for the reporter started in its place."""
    settings = resources.settings
    env = {**os.environ, "SLIPWAY_DATABASE_URL": settings.database_url,
           "SLIPWAY_REDIS_URL": settings.redis_url, "SLIPWAY_DATA_DIR": str(settings.data_dir)}
    reporter = start("reporter", env, tmp_path / "reporter.log")
    lock = RQScheduler.get_locking_key(keys.STATUS_QUEUE)

    def scheduler_holding_the_lock() -> tuple[bytes, int] | None:
        """The lock's holder and its pid once it is this reporter's scheduler: known by the
        pid it registers, once its signal handlers are set (the reporter forks other
        short-lived children too, and an earlier test's scheduler may hold the lock)."""
        holder = redis_client.get(lock)
        pid = holder and redis_client.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "pid")
        return (holder, int(pid)) if pid and int(pid) in children_of(reporter.pid) else None

    try:
        holder, scheduler = wait_for(scheduler_holding_the_lock,
                                     what="the reporter's scheduler holding the lock")
        reporter.kill()
        reporter.wait()
        wait_for(lambda: not alive(scheduler), what="the scheduler ended")
        # Given back: no longer this scheduler's (another test's scheduler may take it next).
        assert redis_client.get(lock) != holder
    finally:
        if reporter.poll() is None:
            reporter.kill()
            reporter.wait()


def numbered(job: Job, seq: int, kind: EventType, **data) -> dict[str, str]:
    event = Event(type=kind, job_id=job.id, attempt=job.attempt, at=time.time(), data=data,
                  seq=seq)
    return {"e": event.to_json()}


def test_events_wait_for_their_turn_and_a_redelivery_changes_nothing(
        session, registered, client, redis_client, resources, monkeypatch):
    post_hook(client, push_payload("octo/project", "a" * 40))
    job = session.scalar(select(Job))
    recorder = Recorder(resources.write_sessions, redis_client, resources.settings)
    events = [numbered(job, 1, EventType.JOB_STARTED, runner="r1"),
              numbered(job, 2, EventType.STEPS_PLANNED, steps=["test"], image=IMAGE),
              numbered(job, 3, EventType.STEP_STARTED, step=0),
              numbered(job, 4, EventType.STEP_FINISHED, step=0, status="passed", exit_code=0),
              numbered(job, 5, EventType.JOB_FINISHED, status="passed", error=None)]

    # Seen before the events they follow, the step's events wait.
    for fields in events[2:4]:
        redis_client.xadd(keys.EVENTS_STREAM, fields)
    assert recorder.drain() == 0
    session.rollback()
    assert (job.status, job.event_seq) == ("queued", 0)
    for fields in events[:2]:
        redis_client.xadd(keys.EVENTS_STREAM, fields)
    assert recorder.drain() == 4
    session.rollback()
    assert (job.status, job.event_seq, job.steps[0].status) == ("running", 4, "passed")

    # Read twice (its recorder died before acknowledging it): applied once.
    redis_client.xadd(keys.EVENTS_STREAM, events[1])
    assert recorder.drain() == 1
    session.rollback()
    assert [step.name for step in job.steps] == ["test"]
    assert job.event_seq == 4

    # An event of an attempt that is not the job's current one is ignored.
    stale = numbered(job, 5, EventType.JOB_FINISHED, status="failed", error=None)
    stale["e"] = stale["e"].replace('"attempt": 1', '"attempt": 0')
    redis_client.xadd(keys.EVENTS_STREAM, stale)
    assert recorder.drain() == 1
    session.rollback()
    assert job.status == "running"

    # An earlier event that never comes is given up after GAP_WAIT_SECONDS.
    monkeypatch.setattr(recorder_module, "GAP_WAIT_SECONDS", 0.2)
    redis_client.xadd(keys.EVENTS_STREAM, numbered(job, 6, EventType.JOB_FINISHED,
                                                   status="passed", error=None))
    assert recorder.drain() == 0
    wait_for(lambda: recorder.drain() == 1, timeout=5)
    session.rollback()
    assert (job.status, job.event_seq) == ("passed", 6)
    assert redis_client.xpending(keys.EVENTS_STREAM, keys.RECORDER_GROUP)["pending"] == 0


def test_reconcilers_racing_enqueue_each_lost_job_once(
        session, registered, client, redis_client, resources):
    from ci.store.models import utcnow

    for index in range(40):
        post_hook(client, push_payload("octo/project", "c" * 40, message=f"change {index}"))
    jobs = list(session.scalars(select(Job).order_by(Job.id)))
    for job in jobs:
        job.enqueued_at = utcnow() - dispatch.REQUEUE_GRACE * 2
    session.commit()
    redis_client.flushdb()  # Redis lost everything: every job must be enqueued again

    results = []

    def reconcile() -> None:
        with resources.write_sessions() as own:
            results.append(dispatch.reconcile(own, redis_client, resources.settings))

    racers = [threading.Thread(target=reconcile) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    requeued = [job_id for result in results for job_id in result.requeued]
    assert sorted(requeued) == [job.id for job in jobs]  # each by exactly one of them
    session.expire_all()
    assert {job.attempt for job in jobs} == {2}
    # One on RQ's queue for the runners, the others in the repository's line.
    assert fair_queue.snapshot(redis_client).held() == {keys.rq_job_id(job.id, 2)
                                                        for job in jobs}
