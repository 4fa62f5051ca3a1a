"""A finished job with a log of the test's choosing, without Docker: the runner's own
publisher reports steps and output as a runner would, and the recorder records them and
archives the log."""

from __future__ import annotations

from sqlalchemy import select

from ci.builds.recorder import Recorder
from ci.pipeline.spec import EventType, JobSpec
from ci.store.models import Job
from runners.publisher import Publisher
from tests.conftest import IMAGE, post_hook, push_payload


def report_job(client, session, resources, redis_client, steps: dict[str, str],
               sha: str = "a" * 40, full_name: str = "octo/project") -> Job:
    """Build the head ``sha`` of ``full_name`` (registered) and report its one job: each
    step of ``steps`` printed its text and passed. Returns the job, finished."""
    assert post_hook(client, push_payload(full_name, sha)).status_code == 202
    job = session.scalars(select(Job).order_by(Job.id.desc())).first()
    spec = JobSpec(job_id=job.id, attempt=job.attempt, build_id=job.build_id,
                   repo=full_name, clone_url="x", sha=sha, ref="refs/heads/main",
                   event="push")
    publisher = Publisher(redis_client, spec)
    publisher.event(EventType.JOB_STARTED, runner="runner-1")
    publisher.event(EventType.STEPS_PLANNED, steps=list(steps), image=IMAGE)
    for index, (name, text) in enumerate(steps.items()):
        publisher.step_started(index, name)
        publisher.output(index, text)
        publisher.end_output(index)
        publisher.event(EventType.STEP_FINISHED, step=index, status="passed", exit_code=0)
    publisher.finished("passed", None)
    assert publisher.wait_sent()
    Recorder(resources.write_sessions, redis_client, resources.settings).drain()
    session.rollback()
    finished = session.get(Job, job.id)
    assert (finished.status, finished.log_archived) == ("passed", True)
    return finished
