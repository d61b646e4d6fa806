"""pen's command line, read into the one model: `fulcrum pen [options] [host:]port server...`.

Parsed as pen 0.34 parses it: POSIX getopt with pen's own option string (clustered
flags `-fdr`, option arguments attached `-x6144` or separate `-x 6144`, and, as glibc
does, options after the positional arguments). Options that are settings become lines
of pen's control language (`-c 100` is `clients_max 100`), applied through the same
translation (pen_commands) and command table as -o options, -F files and the control
port, so each setting has one meaning. docs/pen.md lists every option."""

from __future__ import annotations

import getopt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Config
from fulcrum.config.types import join_host_port, parse_duration
from fulcrum.control.commands import CommandError, edit_dict, lookup
from fulcrum.control.pen_commands import (
    PenRefused,
    parse_listen,
    parse_server,
    pen_port,
    translate_pen_command,
)

# pen 0.34.1's getopt string, built with SSL (Debian's build): `strings $(which pen)`.
PEN_OPTIONS = "B:C:F:O:S:T:b:c:e:i:j:l:m:o:p:q:t:u:w:x:DHNPQWXUadfhnrsE:K:G:A:ZRL:"

SERVICE = "pen"
POOL = "pen"

# pen's defaults (pen -h prints them), where they differ from fulcrum's model defaults.
PEN_CONNECTIONS_MAX = 500
PEN_CLIENTS_MAX = 2048
PEN_LISTEN_QUEUE = 500  # pen: listen_queue = CONNECTIONS_MAX
PEN_LISTEN_QUEUE_MIN = 50
CONTROL_HOST = "127.0.0.1"  # pen binds a bare -C port to 0.0.0.0; fulcrum to localhost

_TLS = "TLS termination is not available in `fulcrum pen` (pen's -E/-K/-G/-A/-Z/-R/-L)"
REFUSED_OPTIONS = {
    "-B": "the abuse server needs pen's access lists, which fulcrum does not have; filter clients with nftables",
    "-U": "UDP is not supported: fulcrum balances TCP",
    "-N": "pen 0.34 lists -N in its help but does not implement it (it prints its usage); use -h for hash selection",
    "-a": "fulcrum does not dump relayed traffic (pen -dd -a); use tcpdump",
    "-i": "installing a Windows service is not supported",
    "-j": "fulcrum does not chroot itself; confine it with systemd (RootDirectory=, ProtectSystem=) or a container",
    "-m": "the multi-accept batch size is not adjustable: the event loop accepts pending connections in batches itself",
    "-E": _TLS, "-K": _TLS, "-G": _TLS, "-A": _TLS, "-Z": _TLS, "-R": _TLS, "-L": _TLS,
}
# Options pen itself accepts and does nothing with: accepted, with pen's own notice.
OBSOLETE_OPTIONS = {
    "-D": "pen 0.26.0 removed the delayed forward feature, making -D obsolete",
    "-n": "pen 0.26.0 and up use only nonblocking sockets, making -n obsolete",
    "-Q": "kqueue is chosen automatically where it exists, making -Q obsolete",
    "-S": "as of pen 0.28.1 the server table grows as needed, making -S obsolete; fulcrum has no server limit",
    "-P": "fulcrum's event loop (uvloop or asyncio on epoll) is used; -P (poll) changes nothing",
}


@dataclass
class PenInvocation:
    """A pen command line: the configuration plus the process-level options."""

    config: Config
    foreground: bool = False  # -f; pen daemonizes by default
    debug: int = 0  # -d, repeatable
    logfile: str | None = None  # -l
    user: str | None = None  # -u
    exit_enabled: bool = False  # -X: allow `exit` on the control port
    config_file: str | None = None  # -F: re-read on SIGHUP, default target of `write`
    notices: list[str] = field(default_factory=list)  # accepted options that change nothing


# -- the command line --------------------------------------------------------------------

def _control_endpoint(text: str) -> str:
    if "/" in text:
        raise ConfigError.at("pen -C", f"{text!r}: Unix-domain control sockets are not supported; give [host:]port")
    if ":" not in text or text.startswith(":") and text.count(":") == 1:
        return join_host_port(CONTROL_HOST, pen_port(text.lstrip(":"), "pen -C"))
    return parse_listen(text)[0]


def _whole(text: str, what: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError.at(what, f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError.at(what, f"must be at least {minimum}")
    return value


def _seconds(text: str, what: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise ConfigError.at(what, str(err)) from None


def _pen_defaults() -> dict[str, Any]:
    """pen's behaviour with no options, in the model's terms."""
    return {
        "services": {SERVICE: {"listen": [], "pool": POOL, "backlog": PEN_LISTEN_QUEUE}},
        "pools": {POOL: {
            "scheduler": "rr",
            "servers": [],
            # pen has no health checks: a refused connect blacklists the server for -b seconds.
            "health": {"kind": "none", "passive": True},
            "sticky": {"mode": "source", "table_size": PEN_CLIENTS_MAX, "expiry": 0},
            "stubborn": False,
            "blacklist": 30,
        }},
        "timeouts": {"connect": 3, "idle": 0},  # pen: connect timeout 3 s, no idle timeout
        "max_connections": PEN_CONNECTIONS_MAX,
        "control": {},
        "log": {},
    }


def parse_pen_argv(argv: list[str]) -> PenInvocation:
    """Read a pen command line (without the program name) into a PenInvocation.

    Raises ConfigError (exit status 2) naming the option for anything fulcrum does
    not support or cannot read."""
    try:
        options, positional = getopt.gnu_getopt(list(argv), PEN_OPTIONS)
    except getopt.GetoptError as err:
        option = f"-{err.opt}" if err.opt else "pen"
        reason = "needs an argument" if "requires argument" in err.msg else \
            "is not a pen option (see `pen -h`; docs/pen.md lists what fulcrum accepts)"
        raise ConfigError.at(f"pen {option}", reason) from None
    data = _pen_defaults()
    pool = data["pools"][POOL]
    invocation = PenInvocation(config=None)  # type: ignore[arg-type]  # set below
    deferred: list[tuple[str, list[str]]] = []  # option -> control words, applied after the servers
    emergency: str | None = None
    for option, value in options:
        what = f"pen {option}"
        if option in REFUSED_OPTIONS:
            raise ConfigError.at(what, REFUSED_OPTIONS[option])
        if option in OBSOLETE_OPTIONS:
            invocation.notices.append(f"{option}: {OBSOLETE_OPTIONS[option]}")
        elif option == "-f":
            invocation.foreground = True
        elif option == "-d":
            invocation.debug += 1
        elif option == "-X":
            invocation.exit_enabled = True
        elif option == "-u":
            invocation.user = data["user"] = value
        elif option == "-F":
            invocation.config_file = value
        elif option == "-p":
            data["control"]["pidfile"] = value
        elif option == "-l":
            if ":" in value and not value.startswith("/"):
                raise ConfigError.at(what, f"{value!r}: logging to a penlogd server is not supported; give a file")
            invocation.logfile = value
        elif option == "-C":
            data["control"]["pen_port"] = _control_endpoint(value)
        elif option == "-q":
            backlog = _whole(value, what, 1)
            if backlog < PEN_LISTEN_QUEUE_MIN:
                invocation.notices.append(f"-q: listen_queue bumped to {PEN_LISTEN_QUEUE_MIN}, as pen does")
            data["services"][SERVICE]["backlog"] = max(backlog, PEN_LISTEN_QUEUE_MIN)
        elif option == "-t":
            if _seconds(value, what) <= 0:
                raise ConfigError.at(what, "the connect timeout must be at least 1 second")
            deferred.append((option, ["timeout", value]))
        elif option in ("-x", "-c"):
            _whole(value, what, 1 if option == "-c" else 0)
            deferred.append((option, ["conn_max" if option == "-x" else "clients_max", value]))
        elif option in ("-b", "-T"):
            _seconds(value, what)
            deferred.append((option, ["blacklist" if option == "-b" else "tracking", value]))
        elif option == "-w":
            deferred.append((option, ["web_stats", value]))
        elif option == "-e":
            emergency = value
        elif option in ("-o", "-O"):
            deferred.append((option, value.split()))
        else:  # the flags: -h -r -s -W -H
            word = {"-h": "hash", "-r": "roundrobin", "-s": "stubborn", "-W": "weight", "-H": "http"}[option]
            deferred.append((option, [word]))
    if positional:
        data["services"][SERVICE]["listen"] = parse_listen(positional[0])
    listen_port = int(data["services"][SERVICE]["listen"][0].rsplit(":", 1)[1]) if positional else None
    for spec in positional[1:]:
        pool["servers"].append(parse_server(spec, listen_port))
    if emergency is not None:
        pool["emergency"] = parse_server(emergency, listen_port, "pen -e")
    for option, words in deferred:
        _apply_line(data, words, f"pen {option}", invocation)
    if invocation.config_file:
        apply_pen_file(data, invocation.config_file, invocation, command_line_servers=len(positional[1:]))
    if invocation.debug:
        data["log"]["level"] = "debug"
    if invocation.logfile:
        # pen -l logs each connection (client, server, bytes): fulcrum's access log, not the daemon log
        data["log"]["access"] = os.path.abspath(invocation.logfile)
    _check_complete(data)
    _weights_as_pen_reads_them(pool, invocation)
    invocation.config = load_dict(data)
    return invocation


def _check_complete(data: dict[str, Any]) -> None:
    if not data["services"][SERVICE]["listen"]:
        raise ConfigError.at("pen", "no listen address: give [host:]port (or a `listen` line in the -F file)")
    if not data["pools"][POOL]["servers"]:
        raise ConfigError.at("pen", "no servers: give host[:port] after the listen address (or `server N address A` lines)")


def _weights_as_pen_reads_them(pool: dict[str, Any], invocation: PenInvocation) -> None:
    """pen ignores weights unless the weight scheduler (-W) is on, and its servers have
    weight 0 when none is written. In fulcrum weight 0 quiesces a server, so outside
    the weight scheduler an explicit 0 is read as 1: the server stays in use, as in pen."""
    if pool["scheduler"] == "weight":
        return
    for i, server in enumerate(pool["servers"]):
        if server.get("weight") == 0:
            server["weight"] = 1
            invocation.notices.append(f"server {i}: weight 0 read as 1 (pen ignores weights without -W)")


def _apply_line(data: dict[str, Any], words: list[str], where: str, invocation: PenInvocation,
                depth: int = 0, command_line_servers: int = 0) -> None:
    """Apply one control-language line to a configuration being built."""
    if words[:1] == ["server"] and len(words) > 1 and words[1].isdigit() \
            and int(words[1]) < command_line_servers:
        # pen reads -F before it fills its server table from the command line, so
        # the command line's server N replaces the file's server N entirely.
        invocation.notices.append(f"{where}: server {words[1]} is given on the command line, which wins as in pen")
        return
    try:
        action = translate_pen_command(words, data)
        for name, args in action.calls:
            if not lookup(name).edits_config:
                raise PenRefused(f"{' '.join(words)}: {name} acts on a running balancer; use the control port")
            edit_dict(data, name, {k: v for k, v in args.items() if v is not None})
    except CommandError as err:
        raise ConfigError.at(where, str(err)) from None
    if action.notice:
        invocation.notices.append(f"{where}: {action.notice}")
    if action.process is None:
        return
    verb, arg = action.process
    if verb == "debug" and arg is not None:
        invocation.debug = _whole(arg, where)
    elif verb == "log" and arg is not None:
        invocation.logfile = arg or None
    elif verb == "include" and arg:
        if depth > 8:
            raise ConfigError.at(where, "include nested too deeply")
        apply_pen_file(data, arg, invocation, depth + 1, command_line_servers)
    elif verb in ("exit", "write"):
        raise ConfigError.at(where, f"{verb} acts on a running balancer; use the control port")


def apply_pen_file(data: dict[str, Any], path: str, invocation: PenInvocation, depth: int = 0,
                   command_line_servers: int = 0) -> None:
    """Apply a pen configuration file (penctl commands, one per line) to `data`.

    As in pen, settings in the file override the command line's options, but servers
    given on the command line replace the file's servers with the same numbers."""
    try:
        lines = Path(path).read_bytes().decode("utf-8").splitlines()
    except OSError as err:
        raise ConfigError.at(f"pen -F {path}", err.strerror or str(err)) from None
    except UnicodeDecodeError as err:
        raise ConfigError.at(f"pen -F {path}", f"not a pen configuration file: byte {err.start} is not text") from None
    for number, line in enumerate(lines, 1):
        _apply_line(data, line.split(), f"{path}:{number}", invocation, depth, command_line_servers)
