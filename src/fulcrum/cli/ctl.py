"""`fulcrum ctl`: run a command of the one command table on a running node, through its
control socket (control.socket), or through a node's admin REST API (--url).

    fulcrum ctl -c /etc/fulcrum/fulcrum.toml server.drain 10.0.0.11:8080
    fulcrum ctl -s /run/fulcrum/control.sock server.weight server=10.0.0.11:8080 weight=3
    fulcrum ctl status          (a table; --json for the data)
    FULCRUM_TOKEN=... fulcrum ctl --url https://lb1:3636 server.drain 10.0.0.11:8080
    fulcrum ctl help

Arguments are given in the command's order, or as name=value. Credentials for --url:
FULCRUM_TOKEN (bearer), or FULCRUM_USER and FULCRUM_PASSWORD (Basic), or a file given
with --credentials holding `user:password` or a token on its first line."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
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
    if not reply.strip():
        raise ValueError("the node closed the connection without an answer (its log says why)")
    try:
        answer: dict[str, Any] = json.loads(reply)
    except ValueError:
        raise ValueError(f"the node's answer is not JSON: {reply[:80]!r}") from None
    return answer


def print_help() -> None:
    for command in describe():
        args = " ".join(a["name"] if a["required"] else f"[{a['name']}]" for a in command["args"])
        click.echo(f"{command['name']:22} {args}")
        click.echo(f"{'':22} {command['help']}")


def resolve_socket(socket_path: str | None, config_path: str | None, who: str = "fulcrum ctl") -> str:
    """-s PATH, else control.socket of -c FILE, else the default place (control/socket.py)."""
    from fulcrum.control.socket import default_socket_path
    from fulcrum.control.socket import socket_path as configured_path

    if socket_path is not None:
        return socket_path
    if config_path is not None:
        from fulcrum.config.load import load_file

        try:
            found = configured_path(load_file(config_path).control.socket)
        except ConfigError as err:
            click.echo(f"{who}: {str(err).replace(chr(10), '; ')}", err=True)
            sys.exit(2)
        if found is None:
            click.echo(f"{who}: {config_path} turns the control socket off (control.socket = 'off')", err=True)
            sys.exit(2)
        return found
    found = default_socket_path()
    if found is None:
        click.echo(f"{who}: no control socket: give -s PATH or -c FILE "
                   "(no $XDG_RUNTIME_DIR for the default place)", err=True)
        sys.exit(2)
    return found


@dataclass(frozen=True)
class Remote:
    """A node's admin API (--url) in place of a control socket."""

    url: str
    authorization: str
    cafile: str | None

    def __str__(self) -> str:
        return self.url


def credentials_header(path: str | None) -> str:
    """The Authorization header for --url, from a file or the environment."""
    import base64

    if path is not None:
        try:
            with open(path) as handle:
                line = handle.readline().strip()
        except OSError as err:
            raise CommandError(f"credentials file {path}: {err.strerror}") from err
    elif os.environ.get("FULCRUM_TOKEN"):
        line = os.environ["FULCRUM_TOKEN"]
    elif os.environ.get("FULCRUM_USER"):
        line = f"{os.environ['FULCRUM_USER']}:{os.environ.get('FULCRUM_PASSWORD', '')}"
    else:
        raise CommandError("--url needs credentials: FULCRUM_TOKEN, FULCRUM_USER and "
                           "FULCRUM_PASSWORD, or --credentials FILE")
    if ":" in line:
        return "Basic " + base64.b64encode(line.encode()).decode()
    return f"Bearer {line}"


def send_http(remote: Remote, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """POST /api/v1/commands/NAME; the answer in the control socket's shape."""
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        remote.url.rstrip("/") + f"/api/v1/commands/{name}", method="POST",
        data=json.dumps({"args": args}).encode(),
        headers={"Content-Type": "application/json", "Authorization": remote.authorization})
    context = ssl.create_default_context(cafile=remote.cafile) if remote.url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return {"ok": True, "result": json.loads(response.read()).get("result")}
    except urllib.error.HTTPError as err:
        try:
            body = json.loads(err.read())
        except ValueError:
            body = {"error": err.reason}
        message = str(body.get("error", err.reason))
        for item in body.get("problems") or []:
            message += f"; {item.get('path')}: {item.get('reason')}"
        return {"ok": False, "error": f"{err.code}: {message}"}


def call(path: str | Remote, command: str, args: dict[str, Any], who: str = "fulcrum ctl") -> Any:
    """Run one command on the node; a refusal or an unreachable node exits 1 with the reason."""
    try:
        answer = send_http(path, command, args) if isinstance(path, Remote) else send(path, command, args)
    except FileNotFoundError:
        click.echo(f"{who}: {path}: no control socket there (is the node running? "
                   "give -s PATH or -c FILE)", err=True)
        sys.exit(1)
    except (OSError, ValueError) as err:
        click.echo(f"{who}: {path}: {err}", err=True)
        sys.exit(1)
    if not answer.get("ok"):
        click.echo(f"{who}: {answer.get('error')}", err=True)
        sys.exit(1)
    return answer.get("result")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-s", "--socket", "socket_path", type=click.Path(dir_okay=False),
              help="the node's control socket (default: /run/fulcrum/control.sock as root, "
                   "$XDG_RUNTIME_DIR/fulcrum/control.sock otherwise)")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="read control.socket from this configuration")
@click.option("--json", "as_json", is_flag=True, help="status: print the JSON instead of the table")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0, 60),
              help="status: seconds between the two samples rates are measured over (0 = no rates)")
@click.option("--url", help="a node's admin API instead of the socket, e.g. https://lb1:3636")
@click.option("--credentials", "credentials_path", type=click.Path(dir_okay=False),
              help="--url: file with user:password or a token (default: FULCRUM_TOKEN, "
                   "or FULCRUM_USER and FULCRUM_PASSWORD)")
@click.option("--cacert", type=click.Path(dir_okay=False), help="--url: CA certificate of an https node")
@click.argument("command")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def ctl(socket_path: str | None, config_path: str | None, as_json: bool, interval: float,
        url: str | None, credentials_path: str | None, cacert: str | None,
        command: str, words: tuple[str, ...]) -> None:
    """Run COMMAND on a running node (`fulcrum ctl help` lists them); `status` prints a table."""
    if command == "help":
        print_help()
        return
    try:
        path: str | Remote = (Remote(url, credentials_header(credentials_path), cacert) if url
                              else resolve_socket(socket_path, config_path))
        args = bind_args(command, words)
    except CommandError as err:
        click.echo(f"fulcrum ctl: {err}", err=True)
        sys.exit(2)
    if command == "status" and not as_json:
        from fulcrum.control.status_table import render

        first = call(path, command, args)
        if interval <= 0:
            click.echo(render(first), nl=False)
            return
        time.sleep(interval)
        click.echo(render(call(path, command, args), first, interval), nl=False)
        return
    click.echo(json.dumps(call(path, command, args), indent=2, default=str))


@click.command("reload")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="the configuration file the node runs")
@click.option("-s", "--socket", "socket_path", type=click.Path(dir_okay=False),
              help="the node's control socket (default: control.socket of the file, or its default place)")
def reload_command(config_path: str, socket_path: str | None) -> None:
    """Check FILE, then have the running node re-read it and wait for the result.

    Exit 0: applied (runtime changes kept or overridden are listed). Exit 2: FILE is invalid
    and the node was not asked. Exit 1: the node refused it (nothing changed) or is unreachable."""
    from fulcrum.config.load import load_file
    from fulcrum.reload import check_files

    try:
        config = load_file(config_path)
    except ConfigError as err:
        for where, reason in err.problems:
            click.echo(f"fulcrum reload: {where}: {reason}", err=True)
        sys.exit(2)
    problems = check_files(config)
    if problems:
        for where, reason in problems:
            click.echo(f"fulcrum reload: {where}: {reason}", err=True)
        sys.exit(2)
    path = resolve_socket(socket_path, config_path, who="fulcrum reload")
    result = call(path, "reload", {}, who="fulcrum reload")
    if not isinstance(result, dict):
        click.echo(f"reloaded: {result}")
        return
    source = result.get("source")
    if source and os.path.abspath(source) != os.path.abspath(config_path):
        click.echo(f"fulcrum reload: note: the node runs {source}, not {config_path}; it re-read {source}", err=True)
    click.echo(f"reloaded: {result.get('services')} service(s), {result.get('pools')} pool(s)")
    for note in result.get("runtime_kept", []):
        click.echo(f"  runtime change kept: {note}")
    for note in result.get("runtime_overridden", []):
        click.echo(f"  runtime change overridden by the file: {note}")
