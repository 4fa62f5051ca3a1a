"""``slipway secret`` and ``slipway repo limits``: a repository's secrets and job limits
(with how many of its jobs may run at once).

Like every command, they call the services (``ci.accounts.repo_secrets``,
``ci.accounts.job_limits``), not HTTP. The connections come from the root command
(``ci.cli.main``) as the context object.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable

import click

from ci import store
from ci.accounts import job_limits, repo_secrets
from ci.builds import fair_queue
from ci.store import Session
from ci.store.models import Repo

if TYPE_CHECKING:
    from ci.cli.main import Context

Connect = Callable[[], "Context"]


@click.group()
def secret() -> None:
    """Secrets given to the steps that name them (push, tag, manual and cron builds only)."""


def repo_or_fail(session: Session, full_name: str) -> Repo:
    found = store.get_repo(session, full_name)
    if found is None:
        raise click.ClickException(f"{full_name} is not registered")
    return found


@secret.command("set")
@click.argument("full_name")
@click.argument("name")
@click.pass_obj
def secret_set(connect: Connect, full_name: str, name: str) -> None:
    """Set secret NAME of FULL_NAME to the value read from standard input."""
    value = sys.stdin.read().rstrip("\n")
    ctx = connect()
    with ctx.sessions() as session:
        try:
            repo_secrets.set_secret(session, ctx.settings, repo_or_fail(session, full_name), name,
                                    value)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"secret {name} of {full_name} set")


@secret.command("list")
@click.argument("full_name")
@click.pass_obj
def secret_list(connect: Connect, full_name: str) -> None:
    """List the names of FULL_NAME's secrets (never their values)."""
    ctx = connect()
    with ctx.sessions() as session:
        for name in repo_secrets.names(repo_or_fail(session, full_name)):
            click.echo(name)


@secret.command("remove")
@click.argument("full_name")
@click.argument("name")
@click.pass_obj
def secret_remove(connect: Connect, full_name: str, name: str) -> None:
    """Remove secret NAME of FULL_NAME."""
    ctx = connect()
    with ctx.sessions() as session:
        if not repo_secrets.remove_secret(session, repo_or_fail(session, full_name), name):
            raise click.ClickException(f"{full_name} has no secret {name}")
    click.echo(f"secret {name} of {full_name} removed")


@click.command("limits")
@click.argument("full_name")
@click.option("--memory", help="Memory of each job container, e.g. 4g.")
@click.option("--cpus", type=float, help="CPUs of each job container, e.g. 2.")
@click.option("--pids", type=int, help="Processes in each job container, e.g. 2048.")
@click.option("--max-jobs", metavar="N",
              help="How many of its jobs may run at once, e.g. 2; default: the "
                   "administrator's maximum (SLIPWAY_MAX_JOBS_PER_REPO).")
@click.pass_obj
def repo_limits(connect: Connect, full_name: str, memory: str | None, cpus: float | None,
                pids: int | None, max_jobs: str | None) -> None:
    """Show or change FULL_NAME's job limits, within the administrator's maxima."""
    ctx = connect()
    with ctx.sessions() as session:
        found = repo_or_fail(session, full_name)
        try:
            now = job_limits.set_limits(session, ctx.settings, found, memory, cpus, pids,
                                        max_jobs)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
        at_once = job_limits.max_jobs_for(ctx.settings, found)
        if max_jobs is not None:
            fair_queue.apply_limit(ctx.redis, found.id, at_once)
    click.echo(f"{full_name}: memory {now.memory}, cpus {now.cpus:g}, pids {now.pids}, "
               f"jobs at once {at_once or 'no limit'}")
