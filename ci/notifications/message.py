"""What a notification says: a mail's subject and plain-text body, a webhook's JSON body.

Written once, when the notification is queued, so that every retry sends the same bytes
(and a receiver can drop a repeated ``X-Slipway-Delivery``).
"""

from __future__ import annotations

import json
from typing import Any

from ci.notifications.outcome import Outcome
from ci.pipeline.status import Status
from ci.store.models import Build, Job

#: How much of a commit message a subject shows, and a webhook carries.
SUBJECT_MESSAGE_CHARS = 100
BODY_MESSAGE_CHARS = 4000


def build_url(base_url: str, build: Build) -> str:
    return f"{base_url}/{build.repo.full_name}/builds/{build.number}"


def _first_line(text: str) -> str:
    line = (text.strip().splitlines() or [""])[0].strip()
    return line if len(line) <= SUBJECT_MESSAGE_CHARS else line[:SUBJECT_MESSAGE_CHARS - 1] + "…"


def _where(build: Build) -> str:
    """``main``, ``tag v1.2`` or ``pull request #7``: what the build built."""
    if build.tag:
        return f"tag {build.tag}"
    if build.pr_number is not None:
        return f"pull request #{build.pr_number}"
    return build.branch or build.sha[:12]


def subject(build: Build, outcome: Outcome) -> str:
    """``[octo/project] #12 failed on main: first line of the message``."""
    return (f"[{build.repo.full_name}] #{build.number} {outcome.word} on {_where(build)}: "
            f"{_first_line(build.message)}")


def _job_name(job: Job) -> str:
    return f"job {job.number}" + ("" if job.name == "default" else f" ({job.name})")


def _failures(build: Build) -> list[str]:
    """The failed jobs, each with its failed steps and their exit codes."""
    lines = []
    for job in build.jobs:
        if job.status not in (Status.FAILED, Status.ERRORED):
            continue
        allowed = " (allowed to fail)" if job.allow_failure else ""
        lines.append(f"  {_job_name(job)}: {job.status}{allowed}"
                     + (f": {job.error}" if job.error else ""))
        for step in job.steps:
            if step.status in (Status.FAILED, Status.ERRORED):
                code = "no exit code" if step.exit_code is None else f"exit code {step.exit_code}"
                lines.append(f"    step {step.number} {step.name!r}: {step.status}, {code}")
    return lines


def mail_body(base_url: str, build: Build, outcome: Outcome) -> str:
    """The plain-text body: what was built, by whom, what failed and where to look."""
    if outcome.fixed:
        headline = (f"Build #{build.number} of {build.repo.full_name} passed; the previous "
                    f"build of {_where(build)} {outcome.previous}.")
    else:
        headline = f"Build #{build.number} of {build.repo.full_name} {outcome.word}."
    lines = [
        headline, "",
        f"Repository: {build.repo.full_name}",
        f"Build:      #{build.number} ({build.event})",
        f"Branch:     {_where(build)}",
        f"Commit:     {build.sha}",
        f"Author:     {build.author or 'unknown'}",
        f"Message:    {_first_line(build.message)}",
    ]
    if build.error:
        lines.append(f"Error:      {build.error}")
    failures = _failures(build)
    if failures:
        lines += ["", "Failed jobs:", *failures]
    lines += ["", build_url(base_url, build), ""]
    return "\n".join(lines)


def _slack_escaped(text: str) -> str:
    """``text`` as Slack and Mattermost show it literally: no links, no @channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(base_url: str, build: Build, outcome: Outcome) -> str:
    """One line for a chat: ``<url|octo/project #12> failed on main: message (author)``."""
    name = _slack_escaped(f"{build.repo.full_name} #{build.number}")
    text = (f"<{build_url(base_url, build)}|{name}> {outcome.word} on "
            f"{_slack_escaped(_where(build))}: {_slack_escaped(_first_line(build.message))}")
    return text + (f" ({_slack_escaped(build.author)})" if build.author else "")


def hook_body(base_url: str, build: Build, outcome: Outcome) -> str:
    """The webhook's JSON body; ``text`` makes a Slack or Mattermost incoming-webhook URL
    work as it is."""
    data: dict[str, Any] = {
        "repository": build.repo.full_name, "build": build.number,
        "status": str(build.status), "outcome": outcome.word,
        "previous_status": str(outcome.previous) if outcome.previous else None,
        "event": build.event, "branch": build.branch, "tag": build.tag,
        "pull_request": build.pr_number, "sha": build.sha,
        "message": build.message[:BODY_MESSAGE_CHARS], "author": build.author,
        "error": build.error, "url": build_url(base_url, build),
        "jobs": [{"number": job.number, "name": job.name, "status": str(job.status),
                  "allow_failure": job.allow_failure, "error": job.error,
                  "steps": [{"number": step.number, "name": step.name,
                             "status": str(step.status), "exit_code": step.exit_code}
                            for step in job.steps]}
                 for job in build.jobs],
        "text": slack_text(base_url, build, outcome),
    }
    return json.dumps(data)
