"""What a build was triggered by: a push to a branch, a tag, a pull (merge) request, a
person, or a repository's schedule. One list for the pipeline's ``when: {event: …}``, the
API's filters, and the rules on secrets and badges. (What runners report while a job runs
is something else: :class:`ci.pipeline.spec.EventType`.)"""

from __future__ import annotations

PUSH = "push"
PULL_REQUEST = "pull_request"
TAG = "tag"
MANUAL = "manual"
#: A schedule's build of a branch's head (``ci.builds.schedules``), at a time its cron
#: expression names.
CRON = "cron"
EVENTS = (PUSH, PULL_REQUEST, TAG, MANUAL, CRON)
#: Builds of code the repository's writers chose to run: only they get its secrets.
TRUSTED_EVENTS = (PUSH, TAG, MANUAL, CRON)
#: Builds that say how a branch is doing (its badge): a pull request's say how the
#: pull request is doing.
BRANCH_EVENTS = (PUSH, MANUAL, CRON)
