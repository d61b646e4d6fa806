"""`fulcrum realserver setup --vip ADDR [--vip ...]` and `fulcrum realserver teardown`:
prepare (and restore) a real server of a dsr service. See fulcrum/kernel/realserver.py."""

from __future__ import annotations

import sys

import click

from fulcrum.kernel.realserver import DEFAULT_STATE, RealserverError


@click.group("realserver")
def realserver() -> None:
    """Prepare a real server for dsr: VIPs on lo, no ARP/ND answers for them."""


@realserver.command("setup")
@click.option("--vip", "vips", multiple=True, required=True, help="a VIP of a dsr service (repeat for several)")
@click.option("--state", "state_file", default=DEFAULT_STATE, show_default=True,
              help="where setup records what it changed, for teardown")
def setup_command(vips: tuple[str, ...], state_file: str) -> None:
    """Add the VIPs to lo and set arp_ignore/arp_announce (idempotent)."""
    from fulcrum.cluster.vip import Interface
    from fulcrum.kernel.realserver import setup

    _report(lambda: setup(list(vips), Interface, state_file), "already set up; nothing changed")


@realserver.command("teardown")
@click.option("--state", "state_file", default=DEFAULT_STATE, show_default=True,
              help="the state file setup wrote")
def teardown_command(state_file: str) -> None:
    """Remove exactly what setup added and restore the sysctls it changed."""
    from fulcrum.cluster.vip import Interface
    from fulcrum.kernel.realserver import teardown

    _report(lambda: teardown(Interface, state_file), "nothing to undo")


def _report(action, nothing: str) -> None:  # type: ignore[no-untyped-def]
    try:
        done = action()
    except (RealserverError, OSError) as err:
        click.echo(f"fulcrum realserver: {err}", err=True)
        sys.exit(1)
    for line in done or [nothing]:
        click.echo(line)
