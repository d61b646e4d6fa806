"""`fulcrum ipvsadm -L -n [--stats | --rate | -c]`: the running node's kernel services in
ipvsadm's layout, read through the node's control socket (the `kernel.list` command).

    fulcrum ipvsadm --config /etc/fulcrum/fulcrum.toml -L -n
    fulcrum ipvsadm --socket /run/fulcrum/control.sock -L -n --stats

ipvsadm's `-c` means connections, so the node is named with the long options only."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from fulcrum.cli.ctl import call, resolve_socket
from fulcrum.kernel import ipvsadm_view as view

RATE_INTERVAL = 1.0  # seconds between the two samples of --rate


WHO = "fulcrum ipvsadm"


def ask(socket_path: str) -> dict[str, Any]:
    result: dict[str, Any] = call(socket_path, "kernel.list", {}, WHO)
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False),
              help="the node's control socket (default: as `fulcrum ctl`)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="read control.socket from this configuration")
@click.option("-L", "-l", "--list", "list_", is_flag=True, help="list the virtual services (the default)")
@click.option("-n", "--numeric", is_flag=True, help="numeric addresses and ports (always so)")
@click.option("--stats", is_flag=True, help="packets and bytes (nftables counters)")
@click.option("--rate", is_flag=True, help="per-second rates, measured over one second")
@click.option("-c", "--connection", is_flag=True, help="the connection entries (conntrack)")
def ipvsadm(socket_path: str | None, config_path: str | None, list_: bool, numeric: bool, stats: bool,
            rate: bool, connection: bool) -> None:
    """Show the running node's kernel services as `ipvsadm -L -n` does."""
    if sum((stats, rate, connection)) > 1:
        click.echo(f"{WHO}: --stats, --rate and -c exclude each other", err=True)
        sys.exit(2)
    path = resolve_socket(socket_path, config_path, WHO)
    report = ask(path)
    services = view.from_stats(report["services"])
    size = int(report.get("size") or 0)
    if connection or not (stats or rate):
        if report.get("conntrack_error"):
            click.echo(f"{WHO}: {report['conntrack_error']}", err=True)
        flows = view.count_connections(services, view.parse_conntrack(report.get("conntrack") or ""))
        click.echo(view.list_connections(flows) if connection else view.list_services(services, size), nl=False)
        return
    if stats:
        click.echo(view.list_stats(services, size), nl=False)
        return
    started = time.monotonic()
    time.sleep(RATE_INTERVAL)
    later = view.from_stats(ask(path)["services"])
    elapsed = time.monotonic() - started
    before = {(s.protocol, s.address, s.port): s for s in services}
    for service in later:
        old = before.get((service.protocol, service.address, service.port))
        old_servers = {(r.address, r.port): r for r in old.servers} if old else {}
        service.counters = view.rate(old.counters if old else view.Counters(), service.counters, elapsed)
        for server in service.servers:
            previous = old_servers.get((server.address, server.port))
            server.counters = view.rate(previous.counters if previous else view.Counters(),
                                        server.counters, elapsed)
    click.echo(view.list_rate(later, size), nl=False)
