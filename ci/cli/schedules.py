"""``slipway cron``: schedules that build a branch at the times of a cron expression.

Like every command, they call the services (``ci.builds.schedules``), not HTTP; the
recorders make the builds. The connections come from the root command (``ci.cli.main``)
as the context object.
"""

from __future__ import annotations

import getpass

import click

from ci import store
from ci.builds import cron, schedules
from ci.cli.repos import Connect, repo_or_fail
from ci.cli.users import echo_rows
from ci.store import Session
from ci.store.models import Repo, Schedule, utcnow

#: How many of a new schedule's times ``cron add`` shows, to check it means what was meant.
SHOWN_TIMES = 3


@click.group("cron")
def cron_group() -> None:
    """Build a branch at the times of a cron expression (builds of event "cron")."""


def _local_user() -> str:
    """Who runs the command, recorded as the schedule's author."""
    try:
        return f"{getpass.getuser()} (CLI)"
    except (KeyError, OSError):  # a user without a login name, as in some containers
        return "CLI"


def _schedule_or_fail(session: Session, repo: Repo, schedule_id: int) -> Schedule:
    found = store.get_schedule(session, repo, schedule_id)
    if found is None:
        raise click.ClickException(f"{repo.full_name} has no schedule {schedule_id}; see "
                                   f"`slipway cron list {repo.full_name}`")
    return found


@cron_group.command("add")
@click.argument("full_name")
@click.option("--branch", help="The branch whose head is built (default: the default branch).")
@click.option("--schedule", "expression", required=True, metavar="EXPRESSION",
              help="Five cron fields, minute hour day-of-month month day-of-week, e.g. "
                   "'0 3 * * *' (03:00 every day), or @hourly, @daily, @weekly, @monthly.")
@click.option("--timezone", "time_zone", default=cron.DEFAULT_TIME_ZONE, show_default=True,
              help="The IANA time zone the times are in, e.g. Europe/Paris.")
@click.pass_obj
def cron_add(connect: Connect, full_name: str, branch: str | None, expression: str,
             time_zone: str) -> None:
    """Build a branch of FULL_NAME on a schedule.

    Prints its next times, to check that the expression means what was meant.
    """
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        now = utcnow()
        try:
            added = schedules.add(session, repo, branch or repo.default_branch, expression,
                                  time_zone, _local_user(), now)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"schedule {added.id} of {full_name}: builds {added.branch} at "
                   f"'{added.expression}' ({added.time_zone}); the next times:")
        for time in cron.next_times(added.expression, added.time_zone, now, SHOWN_TIMES):
            click.echo(f"  {cron.shown(time, added.time_zone)}")


def _line(schedule: Schedule) -> str:
    """One schedule, tab-separated: id, repository, branch, expression, time zone, when it
    builds next, and what its last time made."""
    upcoming = (f"next {cron.shown(schedule.next_due, schedule.time_zone)}"
                if schedule.enabled else "disabled")
    build = schedule.last_build
    last = f"last build #{build.number} {build.status}" if build else "no build yet"
    if schedule.error:
        last += f"; last time: {schedule.error}"
    return (f"{schedule.id}\t{schedule.repo.full_name}\t{schedule.branch}\t"
            f"{schedule.expression}\t{schedule.time_zone}\t{upcoming}\t{last}")


@cron_group.command("list")
@click.argument("full_name", required=False)
@click.pass_obj
def cron_list(connect: Connect, full_name: str | None) -> None:
    """List the schedules of FULL_NAME (of every repository without it)."""
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name) if full_name else None
        echo_rows(store.list_schedules(session, repo),
                  "no schedules; add one with `slipway cron add`", _line)


@cron_group.command("remove")
@click.argument("full_name")
@click.argument("schedule_id", metavar="ID", type=int)
@click.pass_obj
def cron_remove(connect: Connect, full_name: str, schedule_id: int) -> None:
    """Remove schedule ID of FULL_NAME (its builds stay)."""
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        _schedule_or_fail(session, repo, schedule_id)
        store.remove_schedule(session, repo, schedule_id)
    click.echo(f"schedule {schedule_id} of {full_name} removed")


def _switch(connect: Connect, full_name: str, schedule_id: int, enabled: bool) -> None:
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        found = schedules.switch(session, _schedule_or_fail(session, repo, schedule_id),
                                 enabled, utcnow())
        if enabled:
            click.echo(f"schedule {schedule_id} of {full_name} enabled; next build "
                       f"{cron.shown(found.next_due, found.time_zone)}")
        else:
            click.echo(f"schedule {schedule_id} of {full_name} disabled")


@cron_group.command("disable")
@click.argument("full_name")
@click.argument("schedule_id", metavar="ID", type=int)
@click.pass_obj
def cron_disable(connect: Connect, full_name: str, schedule_id: int) -> None:
    """Stop schedule ID of FULL_NAME from building; it is kept."""
    _switch(connect, full_name, schedule_id, False)


@cron_group.command("enable")
@click.argument("full_name")
@click.argument("schedule_id", metavar="ID", type=int)
@click.pass_obj
def cron_enable(connect: Connect, full_name: str, schedule_id: int) -> None:
    """Let schedule ID of FULL_NAME build again.

    From its next time on: times missed while it was disabled are not made up for.
    """
    _switch(connect, full_name, schedule_id, True)
