"""How the CLI reports a configuration that will not do: every problem on its own line,
then the exit status the error carries. A leaf, so every command module can use it."""

from __future__ import annotations

import sys

import click

from fulcrum.config.errors import ConfigError


def fail_config(err: ConfigError) -> None:
    for path, reason in err.problems:
        click.echo(f"fulcrum: {path}: {reason}", err=True)
    sys.exit(err.exit_status)
