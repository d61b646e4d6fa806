"""`fulcrum admin passwd [USER]` and `fulcrum admin token NAME`: the lines to put in the
configuration's [admin.users] and [admin.tokens] tables."""

from __future__ import annotations

import getpass
import sys

import click

from fulcrum.admin.auth import hash_password, new_token, token_digest


@click.group("admin")
def admin_group() -> None:
    """Credentials for the admin web UI and REST API."""


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise click.ClickException("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@admin_group.command("passwd")
@click.argument("user", default="admin")
def passwd(user: str) -> None:
    """Read a password (no echo on a terminal, else one line of stdin); print USER's line."""
    if not user or ":" in user:
        raise click.ClickException("a user name must be non-empty and have no ':'")
    password = _read_password()
    if len(password) < 8:
        raise click.ClickException("use at least 8 characters")
    click.echo("# put this line in the [admin.users] table")
    click.echo(f'{_key(user)} = "{hash_password(password)}"')


@admin_group.command("token")
@click.argument("name")
def token(name: str) -> None:
    """Make a bearer token for scripts: prints the token (once) and its configuration line."""
    value = new_token()
    click.echo(f"# token (give it to the script; it is not stored): {value}", err=True)
    click.echo("# put this line in the [admin.tokens] table")
    click.echo(f'{_key(name)} = "{token_digest(value)}"')


def _key(name: str) -> str:
    bare = all(c.isalnum() or c in "-_" for c in name)
    return name if bare else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
