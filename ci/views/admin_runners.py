"""The runners page (anyone signed in): every runner worker Redis knows, whether it is idle
or busy and with what, when it was last heard of and whether it is alive.

What a runner runs is named from the RQ job id (``slipway-job-<job>-<attempt>``) and the
database; a job of a private repository the asker may not read is shown without its
repository or build.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, render_template
from redis.exceptions import RedisError

from ci import store
from ci.accounts import access
from ci.builds.runner_roster import RunnerSeen, runners_seen
from ci.store.models import Job, utcnow
from ci.views.admin_access import signed_in
from ci.views.resources import redis, session

bp = Blueprint("admin_runners", __name__)


@dataclass(frozen=True)
class RunnerRow:
    """A runner with the job it runs, when the asker may see that job."""

    runner: RunnerSeen
    job: Job | None
    #: What is shown instead of a job the runner runs but the asker may not see, or that
    #: is gone from the database.
    instead: str | None = None


@bp.get("/admin/runners")
def runners_page() -> str:
    user = signed_in()
    try:
        seen = runners_seen(redis(), utcnow())
    except RedisError:
        return render_template("admin/runners.html", rows=[], redis_down=True)
    wanted = [runner.job_id for runner in seen if runner.job_id is not None]
    jobs = {job.id: job for job in store.get_jobs(session(), wanted)}
    rows = []
    for runner in seen:
        job = jobs.get(runner.job_id) if runner.job_id is not None else None
        if runner.job_id is not None and job is None:
            rows.append(RunnerRow(runner, None, f"job {runner.job_id}, no longer in the database"))
        elif job is not None and not access.can_read(session(), user, job.build.repo):
            rows.append(RunnerRow(runner, None, "a job you may not see"))
        else:
            rows.append(RunnerRow(runner, job))
    return render_template("admin/runners.html", rows=rows, redis_down=False)
