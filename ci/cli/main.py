"""The ``slipway`` command: the composition root for admins on the box.

Server commands (repos, triggers, the recorder, migrations) call the same service
layer as the web app, never HTTP. Runner commands (``worker``, ``images``) are
the only place the server side's package reaches into ``runners``, and only
inside those commands, so the server's modules still never import the runner.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import click
from redis import Redis

from ci.cli import (artifacts, exec_command, notifications, prune, queue, repos, schedules,
                    users)
from ci.forges import FORGES
from ci.redis_client import connect
from ci.settings import Settings, SettingsError, load_settings
from ci.store import Session, Sessions


@dataclass
class Context:
    settings: Settings
    sessions: Sessions
    redis: Redis


def _context(migrate: bool = True) -> Context:
    from ci.accounts import webhook_secrets
    from ci.store import db

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    engine = db.make_engine(settings.database_url)
    # Closed with the command: PostgreSQL's connections are not left to the collector.
    click.get_current_context().call_on_close(engine.dispose)
    sessions = db.make_sessionmaker(engine, writes=True)
    if migrate:
        db.upgrade(engine)
        # Secrets stored before they were encrypted; a migration has no key to do it.
        with sessions() as session:
            webhook_secrets.encrypt_clear(session, settings)
    # Longer than any blocking read Slipway makes (the recorder blocks for 5 s).
    redis = connect(settings.redis_url, socket_timeout=60, socket_connect_timeout=5)
    return Context(settings, sessions, redis)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Slipway: continuous integration on your own servers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Commands defined in other modules (ci.cli.users, ci.cli.repos) connect
    # through this.
    ctx.obj = _context


# Repositories ---------------------------------------------------------------------------

@main.group()
def repo() -> None:
    """Register, list and remove repositories."""


API_URL_HELP = ("The forge's API base URL, for commit statuses: https://HOST/api/v3 for "
                "GitHub Enterprise, https://HOST/api/v4 for GitLab, https://HOST/api/v1 for "
                "Gitea, Forgejo and Gogs (which have no default).")


@repo.command("add")
@click.argument("full_name")
@click.option("--forge", type=click.Choice(list(FORGES)), default="github", show_default=True,
              help="Forgejo and Gogs repositories are gitea.")
@click.option("--clone-url", required=True, help="https, ssh, file:// URL or a local path.")
@click.option("--secret", required=True, help="The webhook secret configured on the forge.")
@click.option("--default-branch", default="main", show_default=True)
@click.option("--token-stdin", is_flag=True,
              help="Read a forge API token from standard input; commit statuses need one.")
@click.option("--api-url", help=API_URL_HELP)
@click.option("--private", is_flag=True,
              help="Only users granted access (`slipway repo grant`) see it; its badge says "
                   "unknown.")
def repo_add(full_name: str, forge: str, clone_url: str, secret: str, default_branch: str,
             token_stdin: bool, api_url: str | None, private: bool) -> None:
    """Register FULL_NAME (OWNER/NAME) so its webhooks start builds."""
    from ci import store
    from ci.accounts import webhook_secrets
    from ci.forges import statuses

    token = _read_token() if token_stdin else None
    ctx = _context()
    with ctx.sessions() as session:
        try:
            if api_url is not None:
                statuses.validate_api_url(api_url)
            added = webhook_secrets.register(session, ctx.settings, full_name, forge, clone_url,
                                             secret, default_branch)
            if private:
                store.update_repo(session, added, private=True)
            if token is not None or api_url is not None:
                statuses.set_forge_access(session, ctx.settings, added, token, api_url)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
        missing = statuses.missing_access(added)
    base = ctx.settings.base_url
    click.echo(f"registered {full_name}\n  webhook URL: {base}/hooks/{forge} "
               f"(content type application/json, the secret you gave)\n"
               f"  badge:       {base}/{full_name}/badge.svg\n"
               f"  statuses:    {'reported' if missing is None else 'not reported: ' + missing}")


def _read_token() -> str:
    return sys.stdin.read().strip()


@repo.command("set-token")
@click.argument("full_name")
@click.option("--api-url", help=API_URL_HELP)
def repo_set_token(full_name: str, api_url: str | None) -> None:
    """Set the forge API token of FULL_NAME, read from standard input, for commit statuses."""
    from ci import store
    from ci.forges import statuses

    token = _read_token()
    ctx = _context()
    with ctx.sessions() as session:
        found = repos.repo_or_fail(session, full_name)
        try:
            statuses.set_forge_access(session, ctx.settings, found, token, api_url)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
        missing = statuses.missing_access(found)
    click.echo(f"forge token of {full_name} set; commit statuses "
               f"{'will be reported' if missing is None else 'still not reported: ' + missing}")


@repo.command("list")
def repo_list() -> None:
    """List registered repositories with their latest build (clone URLs without credentials)."""
    from ci import store
    from runners.checkout import CloneUrl

    ctx = _context()
    with ctx.sessions() as session:
        rows = store.list_repos(session)
        if not rows:
            click.echo("no repositories; add one with `slipway repo add`")
        for item, latest in rows:
            status = f"#{latest.number} {latest.status}" if latest else "no builds"
            visibility = "\tprivate" if item.private else ""
            shown = CloneUrl.parse(item.clone_url).shown
            click.echo(f"{item.full_name}\t{item.forge}\t{shown}\t{status}{visibility}")


@repo.command("remove")
@click.argument("full_name")
def repo_remove(full_name: str) -> None:
    """Remove FULL_NAME and all its builds."""
    from ci import store

    ctx = _context()
    with ctx.sessions() as session:
        if not store.remove_repo(session, full_name):
            raise click.ClickException(f"{full_name} is not registered")
    click.echo(f"removed {full_name}")


# Builds ----------------------------------------------------------------------------------

@main.command()
@click.argument("full_name")
@click.option("--branch", help="Build the head of this branch (default: the default branch).")
@click.option("--sha", help="Build this exact commit.")
def trigger(full_name: str, branch: str | None, sha: str | None) -> None:
    """Start a build of FULL_NAME by hand, in the name of the local user."""
    import getpass

    from ci import store
    from ci.builds import service
    from ci.pipeline.redact import without_credentials

    try:
        who = f"{getpass.getuser()} (CLI)"
    except (KeyError, OSError):  # a user without a login name, as in some containers
        who = "CLI"
    ctx = _context()
    with ctx.sessions() as session:
        found = store.get_repo(session, full_name)
        if found is None:
            raise click.ClickException(f"{full_name} is not registered")
        try:
            wanted = service.manual_trigger(session, found, branch=branch, sha=sha, who=who)
        except store.StoreError as exc:
            raise click.ClickException(without_credentials(str(exc))) from None
        accepted = service.accept(session, ctx.redis, ctx.settings, found, wanted)
        build = accepted.build
        click.echo(f"build #{build.number} of {wanted.sha[:12]} queued: "
                   f"{ctx.settings.base_url}/{full_name}/builds/{build.number}")
        if not accepted.enqueued:
            click.echo("Redis is not reachable; the build will start once it is", err=True)


def _find_build(session: Session, full_name: str, number: int):
    from ci import store

    found = store.get_repo(session, full_name)
    build = store.get_build(session, found, number) if found else None
    if build is None:
        raise click.ClickException(f"{full_name} has no build #{number}")
    return build


@main.command()
@click.argument("full_name")
@click.argument("number", type=int)
def cancel(full_name: str, number: int) -> None:
    """Stop build NUMBER of FULL_NAME (queued jobs never start, running ones are killed)."""
    from ci import store
    from ci.builds import service

    ctx = _context()
    with ctx.sessions() as session:
        build = _find_build(session, full_name, number)
        try:
            count = service.cancel(session, ctx.redis, build, "an admin (CLI)")
        except store.StoreError as exc:
            raise click.ClickException(f"nothing was canceled: {exc}") from None
    click.echo(f"asked {count} job(s) of build #{number} to stop")


@main.command()
@click.argument("full_name")
@click.argument("number", type=int)
@click.option("--failed", is_flag=True, help="Rerun only the failed jobs, in the same build.")
def restart(full_name: str, number: int, failed: bool) -> None:
    """Run finished build NUMBER of FULL_NAME again."""
    from ci import store
    from ci.builds import service

    ctx = _context()
    with ctx.sessions() as session:
        build = _find_build(session, full_name, number)
        try:
            if failed:
                count = service.rerun_failed(session, ctx.redis, ctx.settings, build)
                click.echo(f"rerunning {count} job(s) of build #{number}")
            else:
                again = service.restart(session, ctx.redis, ctx.settings, build).build
                click.echo(f"build #{again.number} queued: "
                           f"{ctx.settings.base_url}/{full_name}/builds/{again.number}")
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None


# Processes -------------------------------------------------------------------------------

@main.command()
def recorder() -> None:
    """Apply runner events to the database, reconcile the queue and fire schedules (run one
    or more)."""
    from ci.builds.recorder import Recorder

    ctx = _context()
    click.echo("recorder: waiting for runner events")
    Recorder(ctx.sessions, ctx.redis, ctx.settings).run_forever()


@main.command()
def reporter() -> None:
    """Report commit statuses to the forges and send notifications (run one or more; each
    sends one at a time)."""
    from ci.forges import statuses

    ctx = _context()
    click.echo("reporter: sending commit statuses and notifications")
    # The scheduler puts a report or a notification that failed back in the queue after
    # its backoff. RQ forks it into a process of its own, which must not outlive this one.
    reporter_pid = os.getpid()
    os.register_at_fork(after_in_child=lambda: _end_with(reporter_pid))
    statuses.reporter(ctx.redis).work(with_scheduler=True, logging_level="INFO")


def _end_with(parent_pid: int) -> None:
    """In a child just forked from ``parent_pid``: have the kernel send it SIGTERM when the
    parent dies. RQ's scheduler process would otherwise live on after a SIGKILL of its
    reporter, holding the scheduler's lock with the settings of a process that is gone."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


@main.command()
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 64),
              help="How many jobs this host runs at once.")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty.")
def worker(count: int, burst: bool) -> None:
    """Run builds: take jobs from the queue and run them in Docker."""
    from redis.exceptions import RedisError

    from ci.redis_client import RedisUrlError, without_password
    from runners.service import start_workers
    from runners.settings import load_runner_settings

    try:
        settings = load_runner_settings()
        redis = connect(settings.redis_url)
    except RedisUrlError as exc:
        raise click.ClickException(f"SLIPWAY_REDIS_URL={exc}") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        redis.ping()
    except RedisError as exc:
        raise click.ClickException(f"Redis at {without_password(settings.redis_url)} does "
                                   f"not answer: {exc}") from None
    start_workers(settings, redis, count=count, burst=burst)


@main.group()
def images() -> None:
    """Build images."""


@images.command("build")
@click.argument("names", nargs=-1)
def images_build(names: tuple[str, ...]) -> None:
    """Make sure the build images exist (all known ones when no NAMES are given)."""
    import docker

    from runners import images as image_builder

    settings = load_settings()
    client = docker.from_env()
    for name in names or tuple(image_builder.IMAGES):
        if name not in image_builder.IMAGES:
            raise click.ClickException(f"no recipe for {name}; known: "
                                       f"{', '.join(image_builder.IMAGES)}")
        try:
            message = image_builder.ensure_image(client, name, settings.data_dir / "images")
        except image_builder.ImageBuildError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(message or f"{name}: present")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version."""
    _context(migrate=True)
    click.echo("database schema is up to date")


@db.command("copy")
@click.option("--from", "source", required=True, metavar="URL",
              help="The database to copy, e.g. sqlite:///var/slipway.db.")
@click.option("--to", "target", required=True, metavar="URL", envvar="SLIPWAY_DATABASE_URL",
              help="An empty database, e.g. postgresql+psycopg://slipway:PASSWORD@HOST/slipway "
                   "(default: SLIPWAY_DATABASE_URL, which keeps a password off the command "
                   "line).")
def db_copy(source: str, target: str) -> None:
    """Copy every row of one database into another, empty one (SQLite to PostgreSQL).

    Stop Slipway first: builds recorded during the copy would be missing from it.
    """
    from ci.store.copy import CopyError, copy_database

    try:
        counts = copy_database(source, target)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    for table, rows in counts.items():
        click.echo(f"{table}: {rows} rows")
    click.echo(f"copied {sum(counts.values())} rows; start Slipway with SLIPWAY_DATABASE_URL "
               "set to the target")


@main.command()
@click.option("--stop", is_flag=True, help="Stop the services an earlier bootstrap started.")
@click.option("--without-redis", is_flag=True,
              help="Leave Redis alone: the tests and the benchmarks start servers of their own.")
def bootstrap(stop: bool, without_redis: bool) -> None:
    """Make sure Redis, the Docker engine and the default build image are there."""
    from ci.cli import bootstrap as services

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    run_dir = settings.data_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    if stop:
        for line in services.stop_started(run_dir):
            click.echo(line)
        return
    if not without_redis and not os.environ.get("SLIPWAY_REDIS_URL"):
        # The local Redis asks for a password kept in the data folder; settings read it.
        made = services.keep_redis_password(settings.data_dir)
        if made:
            click.echo(made)
        settings = load_settings()
    try:
        if not without_redis:
            _echo_if(services.ensure_redis(settings.redis_url, run_dir))
        _echo_if(services.ensure_docker(run_dir))
    except services.BootstrapError as exc:
        raise click.ClickException(str(exc)) from None
    from runners import images as image_builder

    if settings.default_image in image_builder.IMAGES:
        click.get_current_context().invoke(images_build, names=(settings.default_image,))
    else:
        click.echo(f"{settings.default_image} is not one Slipway can build; the runner "
                   "pulls it when a job needs it")


def _echo_if(message: str | None) -> None:
    if message:
        click.echo(message)


main.add_command(repos.secret)
main.add_command(exec_command.exec_command)
repo.add_command(repos.repo_limits)
main.add_command(users.user)
main.add_command(users.token)
repo.add_command(users.repo_grant)
repo.add_command(users.repo_revoke)
main.add_command(schedules.cron_group)
main.add_command(notifications.notify_group)
main.add_command(prune.prune)
main.add_command(artifacts.artifacts)
main.add_command(queue.queue)


if __name__ == "__main__":
    sys.exit(main())
