"""How builds, jobs and steps are shown: JSON for the API, small helpers for templates."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ci import store
from ci.pipeline.durations import human_duration
from ci.store.models import Build, Job, Repo, Step, utcnow


def iso(value: datetime | None) -> str | None:
    return value.replace(tzinfo=timezone.utc).isoformat() if value else None


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((end or utcnow()) - start).total_seconds(), 3)


def duration(item: Build | Job | Step) -> str:
    """How long a build, job or step took (so far, while it runs), for people."""
    return human_duration(seconds_between(item.started_at, item.finished_at))


def time_ago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = int((utcnow() - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


def trigger_label(build: Build) -> str:
    if build.pr_number:
        return f"PR #{build.pr_number}"
    if build.tag:
        return f"tag {build.tag}"
    return build.branch or build.ref


#: An absolute http(s) URL with nothing a browser would strip or reinterpret before it.
_WEB_URL = re.compile(r"https?://[^\x00-\x20\x7f]+", re.IGNORECASE)


def web_url(url: str | None) -> str | None:
    """``url`` when it may be a link: a forge-supplied URL (a webhook's compare or pull
    request URL) could be ``javascript:`` or ``data:``, which would run in this page."""
    return url if isinstance(url, str) and _WEB_URL.fullmatch(url) else None


def repo_json(repo: Repo, latest: Build | None, base_url: str) -> dict[str, Any]:
    return {
        "full_name": repo.full_name, "forge": repo.forge, "default_branch": repo.default_branch,
        "private": repo.private,
        "url": f"{base_url}/{repo.full_name}",
        "badge_url": f"{base_url}/{repo.full_name}/badge.svg",
        "latest_build": build_json(latest, base_url, repo) if latest else None,
    }


def build_json(build: Build, base_url: str, repo: Repo, with_jobs: bool = False) -> dict[str, Any]:
    data = {
        "id": build.id, "number": build.number, "status": str(build.status),
        "event": build.event, "ref": build.ref, "branch": build.branch, "tag": build.tag,
        "pull_request": build.pr_number, "sha": build.sha, "message": build.message,
        "author": build.author, "error": build.error,
        "created_at": iso(build.created_at), "started_at": iso(build.started_at),
        "finished_at": iso(build.finished_at),
        "duration_seconds": seconds_between(build.started_at, build.finished_at),
        "url": f"{base_url}/{repo.full_name}/builds/{build.number}",
    }
    if with_jobs:
        data["jobs"] = [job_json(job, base_url, repo, build) for job in build.jobs]
    return data


def job_json(job: Job, base_url: str, repo: Repo, build: Build) -> dict[str, Any]:
    page = f"{base_url}/{repo.full_name}/builds/{build.number}/jobs/{job.number}"
    return {
        "number": job.number, "name": job.name, "status": str(job.status),
        "attempt": job.attempt, "image": job.image, "runner": job.runner, "error": job.error,
        "created_at": iso(job.created_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "duration_seconds": seconds_between(job.started_at, job.finished_at),
        "pruned_at": iso(job.pruned_at),
        "log_url": f"{page}/log.txt", "events_url": f"{page}/events",
        "artifacts_url": f"{base_url}/api/repos/{repo.full_name}/builds/{build.number}"
                         f"/jobs/{job.number}/artifacts",
        "steps": [step_json(step) for step in job.steps],
        "attempts": [attempt_json(attempt, page) for attempt in store.list_attempts(job)],
    }


def attempt_json(attempt: store.Attempt, job_page: str) -> dict[str, Any]:
    """One attempt of a job (``job_page`` is the job's URL), with where to read its log."""
    return {
        "number": attempt.number, "current": attempt.current, "status": str(attempt.status),
        "image": attempt.image, "runner": attempt.runner, "error": attempt.error,
        "started_at": iso(attempt.started_at), "finished_at": iso(attempt.finished_at),
        "duration_seconds": seconds_between(attempt.started_at, attempt.finished_at),
        "log_url": f"{job_page}/attempts/{attempt.number}/log.txt",
        "steps": [step_json(step) for step in attempt.steps],
    }


def step_json(step: Step | store.AttemptStep) -> dict[str, Any]:
    return {
        "number": step.number, "name": step.name, "status": str(step.status),
        "exit_code": step.exit_code, "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "duration_seconds": seconds_between(step.started_at, step.finished_at),
    }


@dataclass(frozen=True)
class Grid:
    """A two-axis matrix laid out as a table: one row per value of the first axis."""

    row_axis: str
    column_axis: str
    rows: list[str]
    columns: list[str]
    jobs: dict[tuple[str, str], Job]


def job_grid(jobs: list[Job]) -> Grid | None:
    """The jobs as a grid when every cell names the same two axes, else None."""
    cells = [json.loads(job.cell or "{}") for job in jobs]
    axes = list(cells[0]) if cells else []
    if len(axes) != 2 or any(set(cell) != set(axes) for cell in cells):
        return None
    row_axis, column_axis = axes
    return Grid(row_axis=row_axis, column_axis=column_axis,
                rows=list(dict.fromkeys(cell[row_axis] for cell in cells)),
                columns=list(dict.fromkeys(cell[column_axis] for cell in cells)),
                jobs={(cell[row_axis], cell[column_axis]): job
                      for cell, job in zip(cells, jobs)})
