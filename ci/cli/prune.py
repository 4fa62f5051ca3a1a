"""``slipway prune``: remove old builds' logs and artifacts, and old builds, now.

The recorders prune on their own every ``SLIPWAY_PRUNE_INTERVAL_SECONDS``; this runs the
same pass (``ci.builds.retention``) by hand: to see what the settings would remove before
setting them (``--dry-run``), or to free space at once with a shorter time for one run.
The connections come from the root command (``ci.cli.main``) as the context object.
"""

from __future__ import annotations

import click

from ci.builds import retention
from ci.cli.repos import Connect
from ci.settings import SettingsError
from ci.store.models import utcnow


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Print what would go; change nothing.")
@click.option("--keep-days", type=click.IntRange(min=0), metavar="N",
              help="Remove the logs and artifacts of builds that finished more than N days "
                   "ago, for this run (default: SLIPWAY_KEEP_DAYS; 0 keeps them).")
@click.option("--keep-builds", type=click.IntRange(min=1), metavar="N",
              help="Keep the newest N builds of each branch, pull request and of the tags "
                   "whole, for this run (default: SLIPWAY_KEEP_BUILDS).")
@click.pass_obj
def prune(connect: Connect, dry_run: bool, keep_days: int | None,
          keep_builds: int | None) -> None:
    """Remove the logs and artifacts of old builds, and delete builds past
    SLIPWAY_KEEP_BUILD_DAYS; never a build still queued or running."""
    ctx = connect()
    try:
        policy = retention.Policy.of(ctx.settings, keep_days=keep_days, keep_builds=keep_builds)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    report = retention.prune(ctx.sessions, ctx.settings, policy, utcnow(), dry_run=dry_run)
    if dry_run:
        for gone in report.pruned:
            click.echo(f"would prune the logs and artifacts of {_named(gone)}")
        for gone in report.deleted:
            click.echo(f"would delete {_named(gone)}")
    click.echo(report.summary())


def _named(gone: retention.Gone) -> str:
    return f"{gone.repo} #{gone.number} (finished {gone.finished_at:%Y-%m-%d})"
