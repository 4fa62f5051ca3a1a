"""``slipway user``, ``slipway token`` and ``slipway repo grant/revoke``: who may do what.

Like every command, they call the services (``ci.accounts.users``, ``ci.accounts.access``),
not HTTP. The connections come from the root command (``ci.cli.main``) as the context object.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

import click

from ci import store
from ci.accounts import access, users
from ci.store import Session
from ci.store.models import Repo, User

if TYPE_CHECKING:
    from ci.cli.main import Context

Connect = Callable[[], "Context"]
T = TypeVar("T")


def _user_or_fail(session: Session, name: str) -> User:
    found = store.get_user(session, name)
    if found is None:
        raise click.ClickException(f"there is no user {name}; see `slipway user list`")
    return found


def _repo_or_fail(session: Session, full_name: str) -> Repo:
    found = store.get_repo(session, full_name)
    if found is None:
        raise click.ClickException(f"{full_name} is not registered")
    return found


def echo_rows(rows: Sequence[T], empty: str, line: Callable[[T], str]) -> None:
    """One tab-separated line per row, or, when there are none, what to do about it."""
    if not rows:
        click.echo(empty)
    for row in rows:
        click.echo(line(row))


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.read().rstrip("\n")


# Users -----------------------------------------------------------------------------------

@click.group()
def user() -> None:
    """People who sign in to the pages and own API tokens."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May do everything, on every repository.")
@click.pass_obj
def user_add(connect: Connect, name: str, admin: bool) -> None:
    """Create user NAME; the password is read from standard input (or asked for)."""
    password = _read_password()
    with connect().sessions() as session:
        try:
            users.add_user(session, name, password, admin)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"user {name} added{' (admin)' if admin else ''}")


@user.command("list")
@click.pass_obj
def user_list(connect: Connect) -> None:
    """List users and whether they are admins."""
    with connect().sessions() as session:
        echo_rows(store.list_users(session),
                  "no users; add one with `slipway user add NAME --admin`",
                  lambda item: f"{item.name}\t{'admin' if item.admin else 'user'}\t"
                               f"{item.created_at:%Y-%m-%d %H:%M} UTC")


@user.command("remove")
@click.argument("name")
@click.pass_obj
def user_remove(connect: Connect, name: str) -> None:
    """Remove user NAME with their API tokens and access (they are signed out)."""
    with connect().sessions() as session:
        if not store.remove_user(session, name):
            raise click.ClickException(f"there is no user {name}")
    click.echo(f"removed user {name}")


# API tokens ------------------------------------------------------------------------------

@click.group()
def token() -> None:
    """API tokens: `Authorization: Bearer <token>` acts as their user."""


@token.command("create")
@click.argument("user_name", metavar="USER")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
@click.pass_obj
def token_create(connect: Connect, user_name: str, name: str) -> None:
    """Make an API token for USER and print it (the only time it is shown)."""
    with connect().sessions() as session:
        try:
            made, plain = users.create_token(session, _user_or_fail(session, user_name), name)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"token {made.id} ({made.name}) for {user_name}; it is shown only now:",
               err=True)
    click.echo(plain)


@token.command("list")
@click.pass_obj
def token_list(connect: Connect) -> None:
    """List API tokens: id, the start of the token, user, name, created."""
    with connect().sessions() as session:
        echo_rows(store.list_tokens(session),
                  "no API tokens; make one with `slipway token create USER`",
                  lambda item: f"{item.id}\t{item.prefix}…\t{item.user.name}\t{item.name}\t"
                               f"{item.created_at:%Y-%m-%d %H:%M} UTC")


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(1, 2**62))
@click.pass_obj
def token_revoke(connect: Connect, token_id: int) -> None:
    """Revoke API token ID (see `slipway token list`); requests with it get 401 at once."""
    with connect().sessions() as session:
        if not store.remove_token(session, token_id):
            raise click.ClickException(f"there is no API token {token_id}")
    click.echo(f"revoked API token {token_id}")


# Repository access -----------------------------------------------------------------------

@click.command("grant")
@click.argument("full_name")
@click.argument("user_name", metavar="USER")
@click.option("--permission", type=click.Choice([p.value for p in access.Permission]),
              default="read", show_default=True,
              help="write: also trigger, cancel, restart, settings, secrets.")
@click.pass_obj
def repo_grant(connect: Connect, full_name: str, user_name: str, permission: str) -> None:
    """Let USER read (or also change) FULL_NAME, replacing what they had."""
    with connect().sessions() as session:
        access.grant(session, _repo_or_fail(session, full_name),
                     _user_or_fail(session, user_name), permission)
    click.echo(f"{user_name} may now {permission} {full_name}")


@click.command("revoke")
@click.argument("full_name")
@click.argument("user_name", metavar="USER")
@click.pass_obj
def repo_revoke(connect: Connect, full_name: str, user_name: str) -> None:
    """Take USER's access to FULL_NAME away."""
    with connect().sessions() as session:
        if not access.revoke(session, _repo_or_fail(session, full_name),
                             _user_or_fail(session, user_name)):
            raise click.ClickException(f"{user_name} had no access to {full_name}")
    click.echo(f"{user_name} no longer has access to {full_name}")
