"""`fulcrum sync versions|rollback`: the versions config sync keeps, and going back.

A rollback is a forward change: the chosen version's shared part, merged with this
node's local settings, is written to this node's file and the running node is told
to reload (SIGHUP to the pid in control.pidfile). The reload makes it a new version,
higher than every other, so every node moves to it and none moves back again."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from fulcrum.cli.errors import fail_config
from fulcrum.cluster.sync_state import Document, digest
from fulcrum.cluster.sync_store import SyncStore
from fulcrum.config.errors import ConfigError
from fulcrum.config.model import Config


def _store_of(config: Config) -> SyncStore:
    if config.sync is None:
        raise click.ClickException("this configuration has no [sync] section")
    try:
        secret = config.sync.read_secret()
    except (OSError, ValueError) as err:
        raise click.ClickException(f"sync secret: {err}") from err
    return SyncStore(config.sync.state_dir, secret, config.sync.keep)


def _load(path: str) -> Config:
    from fulcrum.config.load import load_file

    try:
        return load_file(path)
    except ConfigError as err:
        fail_config(err)
        raise  # not reached: fail_config exits


def rollback_file(path: str, version: int) -> Config:
    """Write version `version` (with this node's local settings) to the file `path`."""
    from fulcrum.cluster.sync import write_config_file
    from fulcrum.config.split import merge

    config = _load(path)
    document = _store_of(config).find(version)
    if document is None:
        raise click.ClickException(f"version {version} is not kept here; see `fulcrum sync versions`")
    rolled = merge(document.config, config)
    write_config_file(path, rolled, f"rollback to version {version} (from node {document.node})")
    return rolled


@click.group("sync")
def sync_group() -> None:
    """Config sync between cluster nodes: kept versions and rollback."""


@sync_group.command("versions")
@click.option("-c", "--config", "path", required=True, type=click.Path(dir_okay=False))
def versions(path: str) -> None:
    """List the kept versions, oldest first; `*` marks what the file holds now."""
    from fulcrum.config.split import shared_part

    config = _load(path)
    current = digest(shared_part(config))
    documents: list[Document] = _store_of(config).documents()
    if not documents:
        click.echo("no versions kept yet")
    for document in documents:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(document.time))
        mark = "*" if digest(document.config) == current else " "
        click.echo(f"{mark} {document.version:>6}  {document.node:<16} {when} UTC")


@sync_group.command("rollback")
@click.argument("version", type=int)
@click.option("-c", "--config", "path", required=True, type=click.Path(dir_okay=False))
@click.option("--no-reload", is_flag=True, help="only rewrite the file")
def rollback(version: int, path: str, no_reload: bool) -> None:
    """Go back to VERSION on every node: rewrite this node's file and reload it."""
    try:
        rolled = rollback_file(path, version)
    except ConfigError as err:
        for where, reason in err.problems:
            click.echo(f"fulcrum: version {version} does not fit this node: {where}: {reason}", err=True)
        sys.exit(err.exit_status)
    click.echo(f"{path}: now holds version {version}")
    pidfile = rolled.control.pidfile
    if no_reload:
        return
    if pidfile and Path(pidfile).exists():
        pid = int(Path(pidfile).read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
        click.echo(f"reload sent to pid {pid}: the peers follow")
    else:
        click.echo("reload fulcrum (SIGHUP) to apply it here; the peers follow")
