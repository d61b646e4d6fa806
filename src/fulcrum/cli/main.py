"""The `fulcrum` command: run, check, pen, demo."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

import click

from fulcrum import __version__
from fulcrum.cli.admin import admin_group
from fulcrum.cli.ctl import ctl, reload_command
from fulcrum.cli.errors import fail_config
from fulcrum.cli.ipvsadm import ipvsadm
from fulcrum.cli.realserver import realserver
from fulcrum.cli.sync import sync_group
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_file
from fulcrum.config.model import Config
from fulcrum.logs import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fulcrum")
def main() -> None:
    """fulcrum: a high-availability TCP and HTTP load balancer (pen, mod_proxy_balancer, keepalived in one tool)."""


def absolute_paths(config: Config, base: str) -> Config:
    """The configuration with its relative file names (log file, pid file, status page,
    control socket) made absolute against `base`, the directory fulcrum was started in."""
    def fix(value: str | None) -> str | None:
        return os.path.join(base, value) if value and value != "off" and not os.path.isabs(value) else value

    log = config.log.model_copy(update={"file": fix(config.log.file)})
    control = config.control.model_copy(update={
        "pidfile": fix(config.control.pidfile), "status_file": fix(config.control.status_file),
        "socket": fix(config.control.socket)})
    return config.model_copy(update={"log": log, "control": control})


@main.command()
@click.option("-c", "--config", "path", required=True, type=click.Path(dir_okay=False),
              help="configuration file (TOML)")
@click.option("--daemon", is_flag=True, help="detach from the terminal")
@click.option("--pidfile", type=click.Path(dir_okay=False), help="write the process id here")
def run(path: str, daemon: bool, pidfile: str | None) -> None:
    """Run a node in the foreground (SIGHUP reloads, SIGTERM drains and stops)."""
    from fulcrum.cli.process import run_node

    # --daemon changes to /: a relative -c or --pidfile must name the same files afterwards
    path = os.path.abspath(path)
    pidfile = os.path.abspath(pidfile) if pidfile else None
    start_dir = os.getcwd()

    def load() -> Config:
        # ... and so must relative file names in it, at start and at every reload
        return absolute_paths(load_file(path), start_dir)

    try:
        config = load()
    except ConfigError as err:
        fail_config(err)
    setup_logging(config.log)
    sys.exit(run_node(config, load, daemon=daemon, pidfile=pidfile,
                      prepare=lambda node: setattr(node, "config_path", path)))  # config sync writes it


@main.command()
@click.option("-c", "--config", "path", required=True, type=click.Path(dir_okay=False),
              help="configuration file (TOML)")
@click.option("-q", "--quiet", is_flag=True, help="print only problems and warnings, not the effective configuration")
def check(path: str, quiet: bool) -> None:
    """Validate a configuration (and the certificates and files it names), warn about likely
    mistakes, and print the effective configuration (defaults filled in, secrets redacted).
    Exit 2 when invalid."""
    import tomli_w

    from fulcrum.config.advice import redacted, warnings
    from fulcrum.reload import check_files

    try:
        config = load_file(path)
    except ConfigError as err:
        fail_config(err)
    problems = check_files(config)
    if problems:
        fail_config(ConfigError(problems))
    for where, advice in warnings(config):
        click.echo(f"warning: {where}: {advice}", err=True)
    if not quiet:
        click.echo(tomli_w.dumps(redacted(config.model_dump(mode="json", exclude_none=True))), nl=False)
    from fulcrum.config.kernel import notes

    for note in notes(config):
        click.echo(f"note: {note}", err=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                "help_option_names": []})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def pen(argv: tuple[str, ...]) -> None:
    """Behave as pen: `fulcrum pen [options] [host:]port server ...`"""
    from fulcrum.cli.process import run_node
    from fulcrum.importers.pen import parse_pen_argv
    from fulcrum.node import Node

    try:
        invocation = parse_pen_argv(list(argv))
    except ConfigError as err:
        fail_config(err)
    for notice in invocation.notices:
        click.echo(f"fulcrum pen: {notice}", err=True)
    config = invocation.config
    setup_logging(config.log, debug=bool(invocation.debug))

    def reload_config() -> Config:
        # SIGHUP: read the command line and the -F file again, as pen does
        return parse_pen_argv(list(argv)).config

    def prepare(node: Node) -> None:
        node.pen_invocation = invocation

    sys.exit(run_node(config, reload_config, daemon=not invocation.foreground,
                      pidfile=config.control.pidfile, user=invocation.user, prepare=prepare))


@main.command()
@click.option("--listen-port", default=8080, show_default=True, help="fulcrum's demo port")
@click.option("--backend-port", default=9101, show_default=True, help="first demo backend port")
@click.option("--no-wait", is_flag=True, help="exit after the demonstration instead of serving")
def demo(listen_port: int, backend_port: int, no_wait: bool) -> None:
    """Start three demo backends and fulcrum in front of them; show the balancing."""
    from fulcrum.cli.demo import run_demo

    sys.exit(run_demo(listen_port, backend_port, wait=not no_wait))


@main.group("import")
def import_() -> None:
    """Turn another tool's configuration into a fulcrum configuration."""


@import_.command("apache")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write")
def import_apache(path: str, output: str) -> None:
    """Apache mod_proxy_balancer: <VirtualHost>, ProxyPass, <Proxy balancer://>, BalancerMember."""
    from fulcrum.importers.apache import convert_file

    def convert() -> tuple[dict[str, object], list[str]]:
        try:
            data, warnings = convert_file(path)
        except ValueError as err:  # a file Apache itself would refuse: name it
            raise ValueError(f"{path}: {err}") from err
        # the apache importer's warnings carry the line only; name the file as the others do
        return data, [f"{path}: {warning}" for warning in warnings]

    run_import(output, convert)


def run_import(output: str, convert: Callable[[], tuple[dict[str, object], list[str]]]) -> None:
    """Convert; warnings (each `file:line: ...`) to stderr, the configuration as TOML to
    `output`. A file the tool would refuse, or a value the model refuses: exit 2."""
    from pathlib import Path

    import tomli_w

    try:
        data, warnings = convert()
    except ConfigError as err:
        fail_config(err)
    except ValueError as err:
        click.echo(f"fulcrum: {err}", err=True)
        sys.exit(2)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    try:
        Path(output).write_text(tomli_w.dumps(data))
    except OSError as err:
        click.echo(f"fulcrum: cannot write {output}: {err.strerror or err}", err=True)
        sys.exit(1)


@import_.command("keepalived")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write")
def import_keepalived(path: str, output: str) -> None:
    """keepalived.conf: vrrp_instance, virtual_server, real_server and checkers (includes followed)."""
    from fulcrum.importers.keepalived import convert_file

    run_import(output, lambda: convert_file(path))


@import_.command("heartbeat")
@click.argument("ha_cf", type=click.Path(exists=True, dir_okay=False))
@click.argument("haresources", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write")
@click.option("--node", required=True, help="the node (its `uname -n`) this configuration is for")
@click.option("--interface", help="interface of the virtual IPs when haresources does not name one")
@click.option("--resource-dir", "resource_dirs", multiple=True, type=click.Path(file_okay=False),
              help="where resource scripts are looked for (default: resource.d beside ha.cf, /etc/init.d)")
def import_heartbeat(ha_cf: str, haresources: str, output: str, node: str, interface: str | None,
                     resource_dirs: tuple[str, ...]) -> None:
    """Heartbeat v1: ha.cf and haresources (`lb0 198.18.0.20 pen httpd`) for one node."""
    from fulcrum.importers.heartbeat import convert_files

    run_import(output, lambda: convert_files(ha_cf, haresources, node, interface=interface,
                                             resource_dirs=list(resource_dirs) or None))


@import_.command("ipvsadm")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write")
def import_ipvsadm(path: str, output: str) -> None:
    """IPVS rules as `ipvsadm -S -n` (ipvsadm-save) writes them."""
    from fulcrum.importers.ipvsadm import convert_file

    run_import(output, lambda: convert_file(path))


@import_.command("piranha")
@click.argument("lvs_cf", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write")
@click.option("--node", required=True, help="the node this configuration is for: primary, backup or its address")
def import_piranha(lvs_cf: str, output: str, node: str) -> None:
    """Pulse/Piranha's lvs.cf, for one of its two nodes."""
    from fulcrum.importers.piranha import convert_file

    run_import(output, lambda: convert_file(lvs_cf, node))


@main.command("schema")
def schema() -> None:
    """Print the JSON schema of the configuration."""
    from fulcrum.config.model import Config

    click.echo(json.dumps(Config.model_json_schema(), indent=2))


main.add_command(sync_group)
main.add_command(ctl)
main.add_command(realserver)
main.add_command(reload_command)
main.add_command(admin_group)
main.add_command(ipvsadm)

if __name__ == "__main__":
    main()
