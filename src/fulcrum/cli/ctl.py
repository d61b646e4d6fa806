"""`fulcrum ctl`: run a command of the one command table on a running node, through its
control socket (control.socket).

    fulcrum ctl -c /etc/fulcrum/fulcrum.toml server.drain 10.0.0.11:8080
    fulcrum ctl -s /run/fulcrum/control.sock server.weight server=10.0.0.11:8080 weight=3
    fulcrum ctl help

Arguments are given in the command's order, or as name=value."""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import click

from fulcrum.config.errors import ConfigError
from fulcrum.control.commands import CommandError, describe, lookup

TIMEOUT = 15.0


def bind_args(name: str, words: tuple[str, ...]) -> dict[str, str]:
    """`a b name=value` -> {first arg: a, second arg: b, name: value}."""
    command = lookup(name)
    names = [arg.name for arg in command.args]
    args: dict[str, str] = {}
    positional = 0
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key in names:
            args[key] = value
            continue
        while positional < len(names) and names[positional] in args:
            positional += 1
        if positional >= len(names):
            raise CommandError(f"{name}: too many arguments (takes {', '.join(names) or 'none'})")
        args[names[positional]] = word
        positional += 1
    return args


def send(path: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        sock.sendall(json.dumps({"command": name, "args": args}).encode() + b"\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    return answer


def print_help() -> None:
    for command in describe():
        args = " ".join(a["name"] if a["required"] else f"[{a['name']}]" for a in command["args"])
        click.echo(f"{command['name']:22} {args}")
        click.echo(f"{'':22} {command['help']}")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-s", "--socket", "socket_path", type=click.Path(dir_okay=False),
              help="the node's control socket")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="read control.socket from this configuration")
@click.argument("command")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def ctl(socket_path: str | None, config_path: str | None, command: str, words: tuple[str, ...]) -> None:
    """Run COMMAND on a running node (`fulcrum ctl help` lists them)."""
    if command == "help":
        print_help()
        return
    if socket_path is None and config_path is not None:
        from fulcrum.config.load import load_file

        try:
            socket_path = load_file(config_path).control.socket
        except ConfigError as err:
            click.echo(f"fulcrum ctl: {err}", err=True)
            sys.exit(2)
    if socket_path is None:
        click.echo("fulcrum ctl: no control socket: give -s PATH, or -c FILE with control.socket set", err=True)
        sys.exit(2)
    try:
        args = bind_args(command, words)
        answer = send(socket_path, command, args)
    except CommandError as err:
        click.echo(f"fulcrum ctl: {err}", err=True)
        sys.exit(2)
    except (OSError, ValueError) as err:
        click.echo(f"fulcrum ctl: {socket_path}: {err}", err=True)
        sys.exit(1)
    if not answer.get("ok"):
        click.echo(f"fulcrum ctl: {answer.get('error')}", err=True)
        sys.exit(1)
    click.echo(json.dumps(answer.get("result"), indent=2, default=str))
