"""``slipway queue``: what waits for a runner and why, per repository, as the queue page
(``/admin/queue``) shows it to an administrator.

The connections come from the root command (``ci.cli.main``) as the context object.
"""

from __future__ import annotations

import click

from ci.builds.queue_depth import queue_depth
from ci.cli.repos import Connect


@click.command("queue")
@click.pass_obj
def queue(connect: Connect) -> None:
    """Jobs running and waiting per repository, its limit of jobs at once, and why its
    jobs wait (fair queueing serves the repository served least recently first)."""
    ctx = connect()
    with ctx.sessions() as session:
        depth = queue_depth(session, ctx.redis, ctx.settings)
    if depth.redis_length is None:
        click.echo("Redis does not answer: counts from the database only")
    if not depth.repos:
        click.echo("nothing waits and nothing runs")
    for row in depth.repos:
        limit = row.max_jobs or "no limit"
        why = f"\t{row.why}" if row.why else ""
        click.echo(f"{row.repo.full_name}\trunning {row.running}\twaiting {row.waiting}\t"
                   f"at once {limit}{why}")
    if depth.redis_length is not None:
        click.echo(f"Redis holds {depth.redis_length} jobs for the runners")
