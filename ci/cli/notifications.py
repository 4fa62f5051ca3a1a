"""``slipway notify``: who hears of a repository's builds, by mail and by webhook.

Like every command, they call the services (``ci.notifications.config``), not HTTP; the
reporter sends. The connections come from the root command (``ci.cli.main``) as the
context object.
"""

from __future__ import annotations

import secrets
import sys

import click

from ci import store
from ci.cli.repos import Connect, repo_or_fail
from ci.notifications import config
from ci.notifications.outcome import ALWAYS, HOOK_EVENTS
from ci.store.models import NotificationHook


@click.group("notify")
def notify_group() -> None:
    """Mail addresses when a build fails or is fixed; call webhooks when one finishes."""


@notify_group.command("email")
@click.argument("full_name")
@click.option("--add", "added", multiple=True, metavar="ADDRESS",
              help="Mail ADDRESS when a build fails or is fixed (repeatable).")
@click.option("--remove", "removed", multiple=True, metavar="ADDRESS",
              help="Stop mailing ADDRESS (repeatable).")
@click.pass_obj
def notify_email(connect: Connect, full_name: str, added: tuple[str, ...],
                 removed: tuple[str, ...]) -> None:
    """Change (or, with no option, show) the addresses mailed about FULL_NAME's builds.

    Mails need SLIPWAY_SMTP_URL (and SLIPWAY_MAIL_FROM) where `slipway reporter` runs.
    """
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        try:
            addresses = config.change_emails(session, repo, list(added), list(removed))
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{full_name} mails: {', '.join(addresses) if addresses else 'nobody'}")


@notify_group.group("hook")
def notify_hook() -> None:
    """Webhooks: a signed JSON POST to a URL when a build finishes."""


@notify_hook.command("add")
@click.argument("full_name")
@click.argument("url")
@click.option("--secret-stdin", is_flag=True,
              help="Read the secret the body is signed with from standard input (default: "
                   "make one and show it once).")
@click.option("--on", "events", type=click.Choice(HOOK_EVENTS), default=ALWAYS,
              show_default=True,
              help="Which builds: every finished one, the failed or errored ones, or the "
                   "ones that fixed their branch.")
@click.pass_obj
def notify_hook_add(connect: Connect, full_name: str, url: str, secret_stdin: bool,
                    events: str) -> None:
    """POST every finished build of FULL_NAME (or those --on names) to URL.

    The body is signed like GitHub's webhooks: X-Slipway-Signature-256 is sha256= and the
    hex HMAC-SHA256 of the body keyed with the secret. A Slack or Mattermost incoming-webhook
    URL works as it is (the body's `text`).
    """
    secret = sys.stdin.read().strip() if secret_stdin else secrets.token_hex(20)
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        try:
            hook = config.add_hook(session, ctx.settings, repo, url, secret, events)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"hook {hook.id} of {full_name} added: {events} builds to {hook.url}")
    if not secret_stdin:
        click.echo(f"its secret (shown only now): {secret}")


@notify_hook.command("remove")
@click.argument("full_name")
@click.argument("hook_id", metavar="ID", type=int)
@click.pass_obj
def notify_hook_remove(connect: Connect, full_name: str, hook_id: int) -> None:
    """Remove hook ID of FULL_NAME (see `slipway notify list`)."""
    ctx = connect()
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        if not store.remove_notification_hook(session, repo, hook_id):
            raise click.ClickException(f"{full_name} has no hook {hook_id}; see "
                                       f"`slipway notify list {full_name}`")
    click.echo(f"hook {hook_id} of {full_name} removed")


def _hook_line(full_name: str, hook: NotificationHook) -> str:
    return f"{full_name}\thook {hook.id}\t{hook.events}\t{hook.url}"


@notify_group.command("list")
@click.argument("full_name", required=False)
@click.pass_obj
def notify_list(connect: Connect, full_name: str | None) -> None:
    """List who hears of the builds of FULL_NAME (of every repository without it); hook
    secrets are never shown."""
    ctx = connect()
    with ctx.sessions() as session:
        if full_name:
            repo = repo_or_fail(session, full_name)
            rows = [(repo, store.notification_emails(session, repo),
                     store.notification_hooks(session, repo))]
        else:
            rows = store.notified_repos(session)
        lines = [line for repo, emails, hooks in rows for line in (
            [f"{repo.full_name}\temail\t{address}" for address in emails]
            + [_hook_line(repo.full_name, hook) for hook in hooks])]
    if not lines:
        click.echo("no notifications; add them with `slipway notify email` or "
                   "`slipway notify hook add`")
    for line in lines:
        click.echo(line)
